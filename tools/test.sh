#!/usr/bin/env bash
# The full test suite: installs everything (tools/setup.sh), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
exec .venv/bin/python -m pytest "$@"
