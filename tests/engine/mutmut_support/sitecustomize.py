"""Loaded by every Python process the engine tests start, only while mutmut runs them (tests/engine/conftest.py
puts this directory on PYTHONPATH then). mutmut records which engine functions each test reaches inside the test
process; the engine runs in subprocesses (the real command line), so at exit each subprocess writes the functions
it reached to a file that conftest.py hands back to mutmut. Without this every engine mutant reads "no tests"."""

import atexit
import os
import sys
import uuid


def _dump():
    stats = sys.modules.get("mutmut.stats")
    directory = os.environ.get("EFS_MUTMUT_HITS")
    if stats is None or not directory:
        return
    names = sorted(stats.state()._stats)
    if names:
        with open(os.path.join(directory, "%d-%s.txt" % (os.getpid(), uuid.uuid4().hex)), "w") as handle:
            handle.write("\n".join(names))


atexit.register(_dump)
