#!/usr/bin/env bash
# The full test suite: installs everything (tools/setup.sh), then runs pytest. Extra arguments go to pytest.
# Test files are spread over TEST_WORKERS processes (pytest-xdist, default 3; TEST_WORKERS=0 runs everything in this
# process). Each file stays in one process (a module's moto world is built once), handed out in collection order,
# where tests/conftest.py puts the longest files first. Three processes on two cores: the end-to-end tests spend
# much of their time waiting (on timeouts, heartbeats, the simulated workers), which a third process fills.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
# Bytecode caching on, whatever the machine's default: with PYTHONDONTWRITEBYTECODE set, each of the thousands of
# engine processes the tests start compiled the engine again (about 30 ms of CPU each). __pycache__ is git-ignored
# and left out of the scripts asset (constructs/script_bucket.py).
unset PYTHONDONTWRITEBYTECODE
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" --dist loadfile --no-loadscope-reorder "$@"
