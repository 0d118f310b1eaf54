#!/usr/bin/env bash
# Installs everything the app, its tests and the local engine runner need, from this repository's own files:
# Debian tools (rsync, shellcheck, strace and a C compiler for the benchmark), a Python virtualenv in .venv from
# requirements-test.txt (the app's requirements.txt plus the test tools; installed with uv), the operator CLI, and the
# pinned CDK CLI (package.json + package-lock.json) in node_modules. Safe to run again: each step is idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
for tool in rsync shellcheck strace; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
# a C compiler and libc headers build the benchmark's latency model (bench/latency_shim.c)
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  need_apt+=(gcc libc6-dev)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
# The installer: uv (from PyPI, pinned) fetches and installs the pinned requirements in parallel and compiles them to
# bytecode on both cores: about 20 s on a fresh clone where pip took about 60 s (most of it compiling aws-cdk-lib's
# 177 MB of Python one file at a time). Same index (PyPI), same pins, same versions resolved.
UV_VERSION=0.13.8
if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
echo "setup: installing Python requirements"
uv_install() { .venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode "$@"; }
uv_install -r requirements-test.txt
# The operator CLI `efs-backup` (pyproject.toml), editable in setuptools' strict mode: build/__editable__.*/ holds
# links to its two packages and a plain path in a .pth puts them on sys.path. The default mode installs an import
# hook that every .venv interpreter loads at start-up (about 8 ms of CPU each; the tests start thousands: engine
# processes, servers, helpers). A new module in those packages needs this script again (tools/test.sh runs it).
uv_install -e . -C editable_mode=strict && rm -rf efs_backup_cli.egg-info

# npm ci deletes node_modules and installs it again every time: skipped while node_modules holds what this
# package-lock.json pins (a stamp written after the install).
stamp=node_modules/.installed-package-lock.sha256
if [ -f package-lock.json ] && ! sha256sum --status -c "$stamp" 2>/dev/null; then
  echo "setup: installing the pinned CDK CLI (npm ci)"
  npm ci --silent --no-audit --no-fund
  sha256sum package-lock.json > "$stamp"
fi
