"""Whole-template checks for every shipped environment: cfn-lint and a syrupy snapshot.

Snapshots change only on purpose: review the diff, then ``.venv/bin/python -m pytest tests/cdk --snapshot-update``.
Every 64-hex asset hash is normalised, so editing the engine's scripts does not touch them.
"""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint
from syrupy.extensions.json import JSONSnapshotExtension

from cdk_helpers import normalise_hashes, shipped_environments

# cfn-lint findings we accept, each with the reason. Everything else (any error, any other warning) fails.
ACCEPTED_CFN_LINT = {
    "W3005": "aws-cdk-lib's BucketDeployment adds an explicit DependsOn on its handler role next to the GetAtt",
}


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("env", shipped_environments())
def test_cfn_lint_reports_no_errors(env, synthesized):
    synth = synthesized(env)
    matches = lint(json.dumps(synth.template_json), config=ManualArgs(regions=[synth.config.region]))
    unexpected = [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches
                  if m.rule.id not in ACCEPTED_CFN_LINT]
    assert unexpected == []
    assert not [m for m in matches if m.rule.id.startswith("E")]


@pytest.mark.parametrize("env", shipped_environments())
def test_template_snapshot(env, synthesized, snapshot_json):
    assert normalise_hashes(synthesized(env).template_json) == snapshot_json


def test_normalisation_replaces_every_asset_hash():
    digest = "0123456789abcdef" * 4
    assert normalise_hashes({"k": [f"scripts/{digest}/", {f"tag:{digest}": f"{digest}.zip"}]}) == {
        "k": ["scripts/<ASSET_HASH>/", {"tag:<ASSET_HASH>": "<ASSET_HASH>.zip"}]
    }


@pytest.mark.parametrize("env", shipped_environments())
def test_the_stack_itself_carries_the_tags_the_cli_finds_it_by(env, synthesized):
    """cdk.json sets @aws-cdk/core:explicitStackTags: Tags.of(stack) then tags only the resources, and the stack's
    own tags (which `cdk deploy` passes to CloudFormation from the assembly, not the template) come from the Stack's
    `tags`. The operator CLI finds a deployment by these (efs_backup_cli/discovery.py)."""
    from efs_backup_contract.deployment import TAG_BACKUP_ID, TAG_ENVIRONMENT

    synth = synthesized(env)
    artifact = synth.app.synth().get_stack_by_name(synth.stack.stack_name)
    assert artifact.tags == {TAG_ENVIRONMENT: synth.config.environment, TAG_BACKUP_ID: synth.config.backup_id}
