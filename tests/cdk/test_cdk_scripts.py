"""The script bucket's asset: pinned by content hash, blind to bytecode, readable by exactly one version prefix."""

from __future__ import annotations

import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from cdk_helpers import REPO_ROOT
from constructs.script_bucket import ScriptBucket


def script_bucket(tmp_path: Path, scripts: Path) -> ScriptBucket:
    app = cdk.App(outdir=str(tmp_path / f"out-{len(list(tmp_path.iterdir()))}"))
    stack = cdk.Stack(app, "ScriptsTest", env=cdk.Environment(account="111111111111", region="us-east-1"))
    return ScriptBucket(stack, "Scripts", scripts_path=str(scripts),
                        noncurrent_version_expiration_days=30, access_log_retention_days=90)


@pytest.fixture
def scripts_copy(tmp_path):
    """A private copy of a script tree: the real assets/scripts/ is never touched by these tests."""
    tree = tmp_path / "scripts"
    (tree / "efs_backup_engine").mkdir(parents=True)
    (tree / "efs-backup-engine").write_text("#!/usr/bin/env python3\n")
    (tree / "efs_backup_engine" / "__init__.py").write_text("VERSION = '1'\n")
    return tree


def test_bytecode_and_tool_caches_do_not_change_the_hash(tmp_path, scripts_copy):
    before = script_bucket(tmp_path, scripts_copy).asset_hash
    (scripts_copy / "efs_backup_engine" / "__pycache__").mkdir()
    (scripts_copy / "efs_backup_engine" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (scripts_copy / "stray.pyc").write_bytes(b"\x00")
    (scripts_copy / ".pytest_cache").mkdir()
    (scripts_copy / ".pytest_cache" / "README.md").write_text("cache")
    assert script_bucket(tmp_path, scripts_copy).asset_hash == before


def test_a_changed_script_gets_a_new_hash_and_prefix(tmp_path, scripts_copy):
    before = script_bucket(tmp_path, scripts_copy)
    (scripts_copy / "efs_backup_engine" / "__init__.py").write_text("VERSION = '2'\n")
    after = script_bucket(tmp_path, scripts_copy)
    assert after.asset_hash != before.asset_hash
    assert after.script_key_prefix == f"scripts/{after.asset_hash}/"


def test_staged_asset_contains_the_scripts_without_bytecode(tmp_path, scripts_copy):
    (scripts_copy / "__pycache__").mkdir()
    (scripts_copy / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    bucket = script_bucket(tmp_path, scripts_copy)
    staged = Path(cdk.Stack.of(bucket).node.root.outdir) / f"asset.{bucket.asset_hash}"
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert files == ["efs-backup-engine", "efs_backup_engine/__init__.py"]


def test_the_real_script_folder_hash_ignores_bytecode_left_by_the_engine_tests(tmp_path):
    # Copy the real folder (whatever the engine currently holds), add bytecode to the copy only.
    copy = tmp_path / "real-scripts"
    shutil.copytree(REPO_ROOT / "assets" / "scripts", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
    clean = script_bucket(tmp_path, copy).asset_hash
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "leftover.cpython-311.pyc").write_bytes(b"\x00")
    assert script_bucket(tmp_path, copy).asset_hash == clean


def test_grant_read_scripts_is_limited_to_this_versions_prefix(tmp_path, scripts_copy):
    bucket = script_bucket(tmp_path, scripts_copy)
    stack = cdk.Stack.of(bucket)
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    bucket.grant_read_scripts(role)
    template = Template.from_stack(stack).to_json()
    bucket_id = stack.resolve(stack.get_logical_id(bucket.bucket.node.default_child))
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                 and r["Properties"]["Roles"] == [{"Ref": stack.resolve(stack.get_logical_id(role.node.default_child))}]]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert not any(action.startswith(("s3:Put", "s3:Delete")) for action in statement["Action"])
    assert {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, f"/{bucket.script_key_prefix}*"]]} in statement["Resource"]
    assert bucket.script_objects_arn()  # the same pattern, for callers that write their own statements


def test_missing_script_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        script_bucket(tmp_path, tmp_path / "nope")
