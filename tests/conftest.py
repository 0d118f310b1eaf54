"""Suite-wide: the order in which the test files are handed to the xdist workers (tools/test.sh), and the
``python3`` that the worker scripts run.

tools/test.sh gives each worker whole files (``--dist loadfile``: a module's moto world is built once) in collection
order (``--no-loadscope-reorder``; xdist's own order, by number of tests, put the five-test moto file that runs for
minutes last). A long file started last runs alone at the end while the other workers idle, so the longest files go
first (longest first, the classic rule for spreading jobs over machines) and every other file keeps its place; a
file's own tests keep their order (several files are scenarios that build on each other).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

# The longest files, longest first: from `tools/test.sh --durations=0` on the 2-core machine (whole-file times, each
# file alone in a worker). A file not listed only starts later; tests/test_suite_order.py checks that each exists.
LONGEST_FIRST = (
    "tests/cli/test_cli_moto.py",
    "tests/orchestration/test_orchestration_moto.py",
    "tests/orchestration/test_launch_moto.py",
    "tests/engine/test_model.py",
    "tests/engine/test_crash_safety.py",
    # Long but mostly waiting (heartbeat timeouts, strace-slowed or held processes: little CPU). Started early, they
    # overlap the engine's files; started last, they ran alone at the end while the other workers idled.
    "tests/orchestration/test_lost_instances_moto.py",
    "tests/engine/test_streams.py",
    "tests/engine/test_join.py",
    "tests/engine/test_report_bounds.py",
    "tests/orchestration/test_worker_progress.py",
    "tests/engine/test_recycled_tree.py",
    "tests/engine/test_restore.py",
    "tests/engine/test_incremental.py",
    "tests/orchestration/test_monitoring_moto.py",
    "tests/cdk/test_cdk_bootstrap.py",
    "tests/cdk/test_cdk_cli.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}

    def position(item) -> int:
        try:
            path = item.path.relative_to(config.rootpath).as_posix()
        except ValueError:  # a test outside the repository (none today): after the listed ones
            return len(rank)
        return rank.get(path, len(rank))

    items.sort(key=position)  # stable: the other files, and every file's tests, keep their order


# --------------------------------------------------------------------------------------------------------------
# python3 without a version manager's shim. The worker scripts run `python3` from PATH (worker.sh: the engine, the
# helpers, each log batch; thousands of times in a run of the suite). On a machine where that is a version
# manager's shim (pyenv: a chain of about 20 bash processes per call), each call cost about 50 ms more than the
# interpreter's own start. The suite puts a directory first on PATH whose python3 is a link to the very interpreter
# the shim would have run, so the scripts run the same Python, started directly, as on a worker (AL2023's
# /usr/bin/python3). Set once, in the first process (xdist's workers inherit the environment).
PYTHON3_DIR_ENV = "EFS_BACKUP_TEST_PYTHON3_DIR"


def python3_behind_path(path: str):
    """The interpreter `python3` on `path` runs (through any shim), or None without one."""
    if shutil.which("python3", path=path) is None:
        return None
    found = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], env=dict(os.environ, PATH=path),
                           stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    return os.path.realpath(found)


def pytest_configure(config):
    if os.environ.get(PYTHON3_DIR_ENV):
        return
    path = os.environ.get("PATH", "")
    interpreter = python3_behind_path(path)
    if interpreter is None or os.path.realpath(shutil.which("python3", path=path)) == interpreter:
        return  # no python3, or it is the interpreter itself: nothing to bypass
    directory = tempfile.mkdtemp(prefix="efs-backup-python3-")
    os.symlink(interpreter, os.path.join(directory, "python3"))
    os.environ[PYTHON3_DIR_ENV] = directory
    os.environ["PATH"] = directory + os.pathsep + path
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
