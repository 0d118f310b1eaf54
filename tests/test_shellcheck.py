"""Every shell script in the repository is shellcheck-clean (bash, strict mode)."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {".git", ".venv", "node_modules", "cdk.out"}


def shell_scripts():
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = [d for d in dirnames if d not in SKIP]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.endswith(".sh"):
                found.append(path)
                continue
            try:
                with open(path, "rb") as handle:
                    first = handle.readline()
            except OSError:
                continue
            if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
                found.append(path)
    return sorted(found)


def test_there_are_scripts_to_check():
    names = [os.path.relpath(p, REPO) for p in shell_scripts()]
    assert ".ci/run" in names and "tools/setup.sh" in names


def test_shellcheck_clean():
    scripts = shell_scripts()
    proc = subprocess.run(["shellcheck", "--severity=style", "--shell=bash"] + scripts, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    assert proc.returncode == 0, proc.stdout.decode()


def test_scripts_use_strict_mode():
    for path in shell_scripts():
        with open(path) as handle:
            text = handle.read()
        assert "set -euo pipefail" in text, "%s lacks set -euo pipefail" % os.path.relpath(path, REPO)
