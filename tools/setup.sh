#!/usr/bin/env bash
# Installs everything the app, its tests and the local engine runner need, from this repository's own files:
# Debian tools (rsync, shellcheck, strace and a C compiler for the benchmark), a Python virtualenv in .venv from
# requirements-test.txt (the app's requirements.txt plus the test tools), the operator CLI, and the pinned CDK CLI
# (package.json + package-lock.json) in node_modules. Safe to run again: each step is idempotent.
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
echo "setup: installing Python requirements"
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -e . && rm -rf efs_backup_cli.egg-info  # the operator CLI `efs-backup` (pyproject.toml)

if [ -f package-lock.json ]; then
  echo "setup: installing the pinned CDK CLI (npm ci)"
  npm ci --silent --no-audit --no-fund
fi
