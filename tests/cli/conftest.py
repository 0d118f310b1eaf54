"""The CLI tests reuse the orchestration harness (tests/orchestration/moto_world.py) without copying it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "orchestration"))  # moto_world, orchestration_helpers
