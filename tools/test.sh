#!/usr/bin/env bash
# The full test suite: installs everything (tools/setup.sh), then runs pytest. Extra arguments go to pytest.
# Test files are spread over TEST_WORKERS processes (pytest-xdist, default 2; each file stays in one process, so a
# module's moto world is built once; TEST_WORKERS=0 runs everything in this process).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
