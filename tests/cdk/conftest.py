"""Session fixtures for the CDK app tests: each shipped environment is synthesized once (synth is slow)."""

from __future__ import annotations

from typing import Dict

import pytest

from cdk_helpers import Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory):
    """``synthesized(env)``: the shipped environment's synthesis, built once per session."""
    cache: Dict[str, Synthesized] = {}

    def get(env: str) -> Synthesized:
        if env not in cache:
            cache[env] = synthesize(env, tmp_path_factory.mktemp(f"cdk-{env}"))
        return cache[env]

    return get
