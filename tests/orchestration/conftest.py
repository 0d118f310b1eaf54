"""Fixtures of the orchestration tests: the shipped environments synthesized once per module."""

from __future__ import annotations

import pytest

from cdk_helpers import synthesize  # tests/cdk (pytest.ini pythonpath): synthesize like `npx cdk synth`


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    cache = {}

    def get(env: str, **overrides: str):
        key = (env, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = synthesize(env, tmp_path_factory.mktemp(f"orch-{env}"), **overrides)
        return cache[key]

    return get
