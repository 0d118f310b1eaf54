import os
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, Phase, settings

from enginekit import Engine

# Hypothesis profiles for the model-based suite (test_model.py). "ci" is the default: bounded so the suite takes
# well under 90 s on a loaded 2-core machine. "soak": `pytest tests/engine/test_model.py --hypothesis-profile soak`.
# Each step runs the real engine (a process per worker), so per-example deadlines are meaningless: none.
# "ci" does not shrink (shrinking a sequence of engine runs can take minutes): it prints the failing steps as
# found and saves them in .hypothesis/; "shrink" replays saved failures and shrinks them to the shortest
# reproduction; "soak" explores long and shrinks what it finds.
_COMMON = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("ci", max_examples=6, stateful_step_count=18,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_COMMON)
settings.register_profile("shrink", max_examples=6, stateful_step_count=18, **_COMMON)
# EFS_SOAK_EXAMPLES splits a soak over processes (each with its own --hypothesis-seed); the README logs the total.
settings.register_profile("soak", max_examples=int(os.environ.get("EFS_SOAK_EXAMPLES", "2000")),
                          stateful_step_count=30, **_COMMON)
if settings.get_current_profile_name() == "default":
    settings.load_profile("ci")


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)


# -- mutmut (pyproject.toml [tool.mutmut]) --------------------------------------------------------------------------
# The engine runs in subprocesses; their coverage comes back through mutmut_support/sitecustomize.py.
_MUTMUT_HITS = None
if "mutmut" in sys.modules:
    _MUTMUT_HITS = tempfile.mkdtemp(prefix="efs-mutmut-hits-")
    os.environ["EFS_MUTMUT_HITS"] = _MUTMUT_HITS
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(os.path.dirname(os.path.abspath(__file__)), "mutmut_support")]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    # Every engine process imports the mutated package (megabytes of source: every mutant of every function);
    # without bytecode caching each one compiles it again (seconds per process).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


# mutmut names the engine's functions by file path (assets.scripts.efs_backup_engine.<module>.<function>); the tests
# and the engine import the package as efs_backup_engine (pytest.ini pythonpath, the launcher's own directory).
_PATH_PREFIX = "assets.scripts."


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """The mutant under test, renamed to the import name the trampolines compare with (in this process and, through
    the environment, in the engine processes the test starts)."""
    if _MUTMUT_HITS is None:
        return
    from mutmut.mutation import trampoline

    name = trampoline.get_mutant_under_test()
    if name.startswith(_PATH_PREFIX):
        trampoline.set_mutant_under_test(name[len(_PATH_PREFIX):])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Functions the test reached, in this process and in its engine subprocesses, under mutmut's path names."""
    yield
    if _MUTMUT_HITS is None:
        return
    from mutmut.stats import state

    hits = set(state()._stats)
    os.makedirs(_MUTMUT_HITS, exist_ok=True)
    for name in os.listdir(_MUTMUT_HITS):
        path = os.path.join(_MUTMUT_HITS, name)
        with open(path) as handle:
            hits.update(line for line in handle.read().splitlines() if line)
        os.unlink(path)
    state()._stats.clear()
    state()._stats.update(_PATH_PREFIX + hit if hit.startswith("efs_backup_engine.") else hit for hit in hits)
