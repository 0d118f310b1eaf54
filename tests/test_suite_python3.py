"""tests/conftest.py starts the worker scripts' `python3` directly: the python3 first on the suite's PATH is an
interpreter, not a shim, and the very one the machine's own PATH would have run."""

import os
import shutil

from test_suite_order import suite_conftest


def test_python3_on_the_suite_path_is_the_interpreter_the_machine_path_runs():
    conftest = suite_conftest()
    path = os.environ["PATH"]
    first = os.path.realpath(shutil.which("python3", path=path))
    assert conftest.python3_behind_path(path) == first, "python3 on PATH is still a shim"
    added = os.environ.get(conftest.PYTHON3_DIR_ENV)
    machine_path = os.pathsep.join(d for d in path.split(os.pathsep) if d != added)
    assert conftest.python3_behind_path(machine_path) == first
