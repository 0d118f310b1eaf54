"""Fixtures of the orchestration tests: the shipped environments synthesized once per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cdk"))  # cdk_helpers: synthesize like `npx cdk synth`

from cdk_helpers import synthesize  # noqa: E402


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    cache = {}

    def get(env: str, **overrides: str):
        key = (env, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = synthesize(env, tmp_path_factory.mktemp(f"orch-{env}"), **overrides)
        return cache[key]

    return get
