"""The benchmarks' scratch directory: wiped at the start of a run (only if it is a bench workdir), removed after."""

import os
import shutil
import subprocess

MARKER = ".efs-backup-bench-workdir"


def remove_tree(path):
    """rm -rf (much faster than shutil.rmtree on trees of hundreds of thousands of files)."""
    if subprocess.run(["rm", "-rf", "--", path]).returncode != 0 or os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def prepare_workdir(path, force):
    if os.path.exists(path):
        if not os.path.exists(os.path.join(path, MARKER)) and os.listdir(path) and not force:
            raise SystemExit("refusing to wipe %s: not a bench workdir (no %s); use --force or another "
                             "--workdir" % (path, MARKER))
        remove_tree(path)
    os.makedirs(path)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("scratch directory of the efs-backup benchmark (bench/); deleted and recreated by every run\n")
