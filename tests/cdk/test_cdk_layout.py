"""Repository layout contracts: the constructs/ namespace folder, pins, CI entry point and configuration reference."""

from __future__ import annotations

import ast
import importlib
import re
import sys

from cdk_helpers import REPO_ROOT
from settings.keys import KEYS


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


def _imported_modules(path):
    """The modules a source file imports (absolute names; relative imports are not used in this repository)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            yield node.module


def test_constructs_folder_has_no_init_and_one_module_per_construct():
    from constructs import Construct

    folder = REPO_ROOT / "constructs"
    assert not (folder / "__init__.py").exists(), "an __init__.py here shadows the constructs library"
    modules = sorted(p.stem for p in folder.glob("*.py"))
    assert "_jsii" not in modules
    helpers = {"nag"}  # the cdk-nag helpers the constructs share: no construct of its own
    assert helpers <= set(modules)
    # Derived from the code rather than listed: each module defines its own construct(s), or is a helper ...
    for name in modules:
        module = importlib.import_module(f"constructs.{name}")
        own = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, Construct) and value.__module__ == module.__name__]
        assert bool(own) != (name in helpers), f"constructs/{name}.py: constructs {own}, helper {name in helpers}"
    # ... and is built into the stack: reachable from stacks/efs_backup_stack.py through imports (no orphans).
    reached, pending = set(), [REPO_ROOT / "stacks" / "efs_backup_stack.py"]
    while pending:
        for imported in _imported_modules(pending.pop()):
            if imported.startswith("constructs.") and imported.split(".", 1)[1] not in reached:
                reached.add(imported.split(".", 1)[1])
                pending.append(folder / f"{imported.split('.', 1)[1]}.py")
    assert sorted(reached) == modules


def test_settings_are_a_leaf_and_constructs_take_only_the_model_and_the_contract():
    """settings/ imports the standard library and the contract only; constructs/ import of settings only its model
    (typed values), never the parsers, the key catalogue or the loader; nothing but app.py and tests load config."""
    allowed = set(sys.stdlib_module_names) | {"__future__", "efs_backup_contract", "settings"}
    settings_files = sorted((REPO_ROOT / "settings").glob("*.py"))
    assert {p.stem for p in settings_files} >= {"__init__", "model", "keys", "load", "checks", "parsers"}
    for path in settings_files:
        for imported in _imported_modules(path):
            assert imported.split(".")[0] in allowed, f"{path.name} imports {imported}"
    for path in sorted((REPO_ROOT / "constructs").glob("*.py")) + [REPO_ROOT / "stacks" / "efs_backup_stack.py"]:
        for imported in _imported_modules(path):
            top = imported.split(".")[0]
            assert top != "stacks", f"{path.name} imports {imported}: the dependency runs back up"
            if top == "settings":
                assert imported == "settings.model", f"{path.name} imports {imported}; expected settings.model only"
    assert not (REPO_ROOT / "stacks" / "config.py").exists()


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
    readme = (REPO_ROOT / "docs" / "configuration.md").read_text()  # the reference moved out of README.md
    section = readme.split("# Configuration reference", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*?) \| (.*?) \| (.*) \|$", section, re.M)
    assert [name for name, *_ in rows] == list(KEYS)
    for name, type_doc, default_doc, meaning in rows:
        spec = KEYS[name]
        assert (type_doc, default_doc, meaning) == (spec.type_doc, spec.default_doc, spec.meaning), name


def test_readme_keeps_the_engine_headings_for_the_engine_work():
    readme = (REPO_ROOT / "README.md").read_text()
    engine = (REPO_ROOT / "docs" / "engine.md").read_text()  # the engine's documentation moved to docs/engine.md
    assert "\n# Backup engine\n" in "\n" + engine and "\n## Benchmarks\n" in readme
