"""The engine runs on Amazon Linux 2023's python3 (3.9) with the standard library and the contract package only
(efs_backup_contract: shipped beside it in the scripts asset)."""

import ast
import os
import subprocess
import sys

from enginekit import ENGINE

SCRIPTS = os.path.dirname(ENGINE)
PACKAGE = os.path.join(SCRIPTS, "efs_backup_engine")
CONTRACT = os.path.join(SCRIPTS, "efs_backup_contract")
STDLIB = set(sys.stdlib_module_names)


def engine_files():
    files = [ENGINE]
    for package in (PACKAGE, CONTRACT):
        for name in sorted(os.listdir(package)):
            if name.endswith(".py"):
                files.append(os.path.join(package, name))
    return files


def test_engine_needs_nothing_newer_than_python_3_9():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    proc = subprocess.run([vermin, "--no-tips", "--violations", "--eval-annotations", "-t=3.9-"] + engine_files(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode()


def test_engine_imports_only_the_standard_library_itself_and_the_contract():
    for path in engine_files():
        with open(path) as handle:
            tree = ast.parse(handle.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module] if node.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in STDLIB or top in ("efs_backup_engine", "efs_backup_contract"), "%s imports %s" % (path, name)
