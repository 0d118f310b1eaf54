"""Repository layout contracts: the constructs/ namespace folder, pins, CI entry point and README reference."""

from __future__ import annotations

import importlib
import re

from cdk_helpers import REPO_ROOT
from stacks.config import KEYS


def test_library_construct_and_local_construct_modules_import_side_by_side():
    from constructs import Construct  # the library

    from constructs.backup_file_system import BackupFileSystem  # a local module in the same namespace
    from constructs.network_access import NetworkAccess
    from constructs.script_bucket import ScriptBucket
    from constructs.worker_identity import WorkerIdentity

    for local in (BackupFileSystem, NetworkAccess, ScriptBucket, WorkerIdentity):
        assert issubclass(local, Construct)
    import constructs

    assert str(REPO_ROOT / "constructs") in list(constructs.__path__)
    assert importlib.import_module("constructs._jsii")  # the library's own module still resolves
    import aws_cdk  # noqa: F401  (breaks if a local __init__.py shadows the library)


def test_constructs_folder_has_no_init_and_one_module_per_construct():
    folder = REPO_ROOT / "constructs"
    assert not (folder / "__init__.py").exists(), "an __init__.py here shadows the constructs library"
    modules = sorted(p.stem for p in folder.glob("*.py"))
    assert "_jsii" not in modules
    assert modules == ["backup_file_system", "backup_workflow", "fleet_workflow", "monitoring", "network_access",
                       "notifications", "restore_workflow", "run_metrics", "schedules", "script_bucket",
                       "vpc_endpoints", "worker_identity", "worker_launch_template"]


def test_stacks_and_constructs_never_read_context():
    for path in list((REPO_ROOT / "constructs").glob("*.py")) + [REPO_ROOT / "stacks" / "efs_backup_stack.py"]:
        text = path.read_text()
        assert "try_get_context" not in text and "get_all_context" not in text, path


def test_python_dependencies_are_pinned():
    """requirements.txt (the app), requirements-test.txt (+ the tests), requirements-dev.txt (+ mutmut): each pins
    its own packages and includes the one before it."""
    includes = {}
    for name in ("requirements.txt", "requirements-test.txt", "requirements-dev.txt"):
        includes[name] = []
        for line in (REPO_ROOT / name).read_text().splitlines():
            line = line.strip()
            if line.startswith("-r "):
                includes[name].append(line[3:])
            elif line and not line.startswith("#"):
                assert re.match(r"^[A-Za-z0-9_.\[\],-]+==[0-9][^ ]*$", line), (name, line)
    assert includes == {"requirements.txt": [], "requirements-test.txt": ["requirements.txt"],
                        "requirements-dev.txt": ["requirements-test.txt"]}


def test_ci_runs_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "tools/test.sh" in ci
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n\s*(.*?)\n\s*```", quick_start, re.S)
    assert commands == ["tools/setup.sh && npx cdk synth -c env=example", "tools/test.sh"]


def test_readme_configuration_reference_matches_the_code():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \| (.*?) \| (.*) \|$", section, re.M)
    assert [name for name, *_ in rows] == list(KEYS)
    for name, type_doc, default_doc, meaning in rows:
        spec = KEYS[name]
        assert (type_doc, default_doc, meaning) == (spec.type_doc, spec.default_doc, spec.meaning), name


def test_readme_keeps_the_engine_headings_for_the_engine_work():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "\n## Backup engine\n" in readme and "\n## Benchmarks\n" in readme
