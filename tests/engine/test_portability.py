"""The engine runs on Amazon Linux 2023's python3 (3.9) with the standard library only."""

import ast
import os
import subprocess
import sys

from enginekit import ENGINE

SCRIPTS = os.path.dirname(ENGINE)
PACKAGE = os.path.join(SCRIPTS, "efs_backup_engine")
STDLIB = set(sys.stdlib_module_names)


def engine_files():
    files = [ENGINE]
    for name in sorted(os.listdir(PACKAGE)):
        if name.endswith(".py"):
            files.append(os.path.join(PACKAGE, name))
    return files


def test_engine_needs_nothing_newer_than_python_3_9():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    proc = subprocess.run([vermin, "--no-tips", "--violations", "--eval-annotations", "-t=3.9-"] + engine_files(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode()


def test_engine_imports_only_the_standard_library_and_itself():
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
                assert top in STDLIB or top == "efs_backup_engine", "%s imports %s" % (path, name)
