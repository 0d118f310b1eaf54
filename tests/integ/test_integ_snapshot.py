"""The acceptance test (tests/integ/integ.backup_restore.py) offline: it synthesizes with cdk.json's context, as
tools/acceptance-test.sh deploys it, in integ-runner's placeholder environment; cdk-nag passes; every template
matches its snapshot; and the properties the run depends on hold in the templates.

Snapshots change only on purpose: review the diff, then
``.venv/bin/python -m pytest tests/integ/test_integ_snapshot.py --snapshot-update``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

REPO_ROOT = Path(__file__).resolve().parents[2]
from cdk_helpers import normalise_hashes

INTEG = REPO_ROOT / "tests" / "integ" / "integ.backup_restore.py"
STACKS = ("EfsBackupAcceptanceEnv", "EfsBackupAcceptanceApp", "EfsBackupAcceptanceAssertions")


@pytest.fixture(scope="module")
def assembly(tmp_path_factory):
    out = tmp_path_factory.mktemp("integ")
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    # integ-runner's snapshot environment (runner-base DEFAULT_SYNTH_OPTIONS): placeholders, no credentials.
    env.update(CDK_OUTDIR=str(out), CDK_CONTEXT_JSON=json.dumps(context), CDK_INTEG_ACCOUNT="12345678",
               CDK_INTEG_REGION="test-region", JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    proc = subprocess.run([sys.executable, str(INTEG)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out


def template(assembly, stack):
    return json.loads((assembly / f"{stack}.template.json").read_text())


def resources(assembly, stack, kind):
    return {k: v for k, v in template(assembly, stack)["Resources"].items() if v["Type"] == kind}


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_cdk_nag_passes_with_every_acknowledgment_reasoned(assembly):
    (nag,) = [p for p in json.loads((assembly / "validation-report.json").read_text())["pluginReports"]
              if p["pluginName"] == "AwsSolutions"]
    assert (nag["conclusion"], nag["violations"]) == ("success", [])
    assert all(s["reason"] for s in nag["suppressedViolations"])


def test_the_integ_manifest_names_the_test_case_and_its_assertion_stack(assembly):
    (manifest,) = [json.loads(p.read_text()) for p in assembly.glob("integ.json")]
    (case,) = manifest["testCases"].values()
    assert case["stacks"] == list(STACKS[:2])
    assert case["assertionStack"] == "EfsBackupAcceptanceAssertions"


def without_salt(value):
    """integ-tests gives every assertion a fresh "salt" (the synth time) so that it runs again on every deploy."""
    if isinstance(value, dict):
        return {k: "<salt>" if k == "salt" else without_salt(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_salt(v) for v in value]
    return value


@pytest.mark.parametrize("stack", STACKS)
def test_template_snapshot(assembly, stack, snapshot_json):
    assert without_salt(normalise_hashes(template(assembly, stack))) == snapshot_json


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_outlives_the_test(assembly, stack):
    kept = {k: v["Type"] for k, v in template(assembly, stack)["Resources"].items()
            if v.get("DeletionPolicy", "Delete") != "Delete" or v.get("UpdateReplacePolicy", "Delete") != "Delete"}
    assert kept == {}
    # Every function writes to a log group of the stack (else Lambda creates one that is never deleted).
    functions = resources(assembly, stack, "AWS::Lambda::Function")
    assert all("LoggingConfig" in f["Properties"] for f in functions.values()), sorted(functions)


def test_the_app_buckets_are_emptied_before_they_are_deleted(assembly):
    (empty,) = resources(assembly, "EfsBackupAcceptanceApp", "AWS::CloudFormation::CustomResource").values()
    assert len(empty["Properties"]["Buckets"]) == 2  # the script bucket and its access-log bucket


def test_the_workers_use_the_recommended_network(assembly):
    app = template(assembly, "EfsBackupAcceptanceApp")
    endpoints = sorted(v["Properties"]["ServiceName"]["Fn::Join"][1][-1].rsplit(".", 1)[-1]
                       if isinstance(v["Properties"]["ServiceName"], dict) else v["Properties"]["ServiceName"]
                       .rsplit(".", 1)[-1] for v in app["Resources"].values() if v["Type"] == "AWS::EC2::VPCEndpoint")
    assert endpoints == ["logs", "s3", "states"]
    https = [e for v in app["Resources"].values() if v["Type"] == "AWS::EC2::SecurityGroup"
             for e in v["Properties"].get("SecurityGroupEgress", []) if e.get("FromPort") == 443]
    https += [v["Properties"] for v in app["Resources"].values()
              if v["Type"] == "AWS::EC2::SecurityGroupEgress" and v["Properties"]["FromPort"] == 443]
    assert [e["CidrIp"] for e in https if "CidrIp" in e] == ["10.80.0.0/16"]  # the VPC: interface endpoints
    (s3,) = [e for e in https if "DestinationPrefixListId" in e]  # the S3 gateway endpoint
    assert "S3PrefixList" in json.dumps(s3["DestinationPrefixListId"])
    environment = template(assembly, "EfsBackupAcceptanceEnv")
    assert not [v for v in environment["Resources"].values()
                if v["Type"] in ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway")], "no way to the internet"


def test_the_assertions_run_backups_and_restores_in_order(assembly):
    calls = [v["Properties"] for v in template(assembly, "EfsBackupAcceptanceAssertions")["Resources"].values()
             if v["Type"] == "Custom::DeployAssert@SdkCallStepFunctionsstartExecution"]
    names = sorted(json.loads(c["parameters"])["name"].strip('"') if isinstance(c["parameters"], str)
                   else c["parameters"]["name"].strip('"') for c in calls)
    assert names == ["acceptance-backup-1", "acceptance-backup-2", "acceptance-restore", "acceptance-restore-dry-run"]


def test_the_pinned_cli_reads_the_acceptance_app_offline(tmp_path):
    """tools/acceptance-test.sh drives the test with the pinned CDK CLI (integ-runner 2.197.10 cannot read schema 55)."""
    script = (REPO_ROOT / "tools" / "acceptance-test.sh").read_text()
    (app,) = [line.split("=", 1)[1].strip('"') for line in script.splitlines() if line.startswith("app=")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(AWS_EC2_METADATA_DISABLED="true", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    proc = subprocess.run(["npx", "cdk", "ls", "--app", app, "--output", str(tmp_path / "out"), "--no-notices"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["EfsBackupAcceptanceEnv", "EfsBackupAcceptanceApp", "EfsBackupAcceptanceAssertions"]
