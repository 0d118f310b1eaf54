"""Helpers for the CDK app tests (a uniquely named module: tests/engine has its own conftest).

Synthesis goes through ``app.build_app`` with the context ``npx cdk synth`` would see: cdk.json's ``context`` plus
the ``-c`` values (always strings).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
HASH_64 = re.compile(r"[0-9a-f]{64}")


def cdk_json_context() -> Dict[str, Any]:
    """The ``context`` block of cdk.json, as the CDK CLI passes it to the app."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def shipped_environments():
    return sorted(cdk_json_context()["environments"])


def context_for(env: str, **overrides: str) -> Dict[str, Any]:
    """cdk.json context plus ``-c env=<env>`` and ``-c key=value`` overrides (strings, like the CLI)."""
    context = cdk_json_context()
    context["env"] = env
    context.update(overrides)
    return context


def normalise_hashes(value: Any) -> Any:
    """Replace every 64-hex asset hash in every string, so snapshots survive script and CDK asset changes."""
    if isinstance(value, str):
        return HASH_64.sub("<ASSET_HASH>", value)
    if isinstance(value, list):
        return [normalise_hashes(item) for item in value]
    if isinstance(value, dict):
        return {normalise_hashes(key): normalise_hashes(item) for key, item in value.items()}
    return value


@dataclass
class Synthesized:
    env: str
    app: Any
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    template_json: Mapping[str, Any]
    config: Any  # settings.model.EfsBackupConfig


def synthesize(env: str, outdir: Path, **overrides: str) -> Synthesized:
    import app as cdk_app  # the repo's app.py
    from aws_cdk.assertions import Template

    from settings.load import load_config
    from stacks.efs_backup_stack import EfsBackupStack

    context = context_for(env, **overrides)
    application = cdk_app.build_app(context, outdir=str(outdir))
    stack = next(child for child in application.node.children if isinstance(child, EfsBackupStack))
    assembly = application.synth()  # runs the cdk-nag plugin: raises if any finding is unacknowledged
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    return Synthesized(env, application, stack, Template.from_json(template_json), template_json, load_config(context))
