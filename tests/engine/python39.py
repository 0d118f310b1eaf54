"""What the portability tests of the engine, the worker helpers and the CLI share: Amazon Linux 2023 runs them on
python3 3.9, so each is checked with vermin against 3.9, for the modules it imports, and (where this machine has
one) under a real Python 3.9 interpreter."""

import ast
import functools
import glob
import os
import shutil
import subprocess
import sys

STDLIB = set(sys.stdlib_module_names)


@functools.lru_cache(maxsize=None)
def python39():
    """A working Python 3.9 interpreter (python3.9 on PATH, /usr/bin's, or pyenv's; a pyenv shim without that
    version does not count), or None when this machine has none."""
    candidates = [found for found in [shutil.which("python3.9"), "/usr/bin/python3.9"] if found]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    for candidate in candidates:
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == b"True":
            return candidate
    return None


def python_files(*folders):
    """The .py files directly in each folder, sorted by name."""
    return [os.path.join(folder, name) for folder in folders for name in sorted(os.listdir(folder))
            if name.endswith(".py")]


def vermin_report(files):
    """(exit code, output) of vermin checking that `files` need nothing newer than Python 3.9."""
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    proc = subprocess.run([vermin, "--no-tips", "--violations", "--eval-annotations", "-t=3.9-"] + list(files),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc.returncode, proc.stdout.decode()


def absolute_imports(path):
    """Every module name a file imports absolutely (`import a.b` and `from a.b import c` give 'a.b')."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module
