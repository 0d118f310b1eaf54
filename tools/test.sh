#!/usr/bin/env bash
# The full test suite: installs everything (tools/setup.sh), then runs pytest. Extra arguments go to pytest.
# Test files are spread over TEST_WORKERS processes (pytest-xdist, default 4; TEST_WORKERS=0 runs everything in this
# process). Each file stays in one process (a module's moto world is built once), handed out in collection order,
# where tests/conftest.py puts the longest files first. Four processes on two cores: the three moto end-to-end files
# (the longest) spend most of their time waiting (timeouts, heartbeats, the simulated workers) and use about half a
# core each, so a fourth process runs the engine's files meanwhile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
# Bytecode caching on, whatever the machine's default: with PYTHONDONTWRITEBYTECODE set, each of the thousands of
# engine processes the tests start compiled the engine again (about 30 ms of CPU each). __pycache__ is git-ignored
# and left out of the scripts asset (constructs/script_bucket.py).
unset PYTHONDONTWRITEBYTECODE
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-4}" --dist loadfile --no-loadscope-reorder "$@"
