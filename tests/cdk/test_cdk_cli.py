"""The README's synth command through the pinned CLI: offline, nag-enforced, configuration errors surfaced."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from cdk_helpers import REPO_ROOT

CDK_BIN = REPO_ROOT / "node_modules" / ".bin" / "cdk"


def offline_env():
    env = dict(os.environ)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    # Any network attempt (notices, telemetry, lookups) would hit a closed local port and fail.
    env.update({
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
        "AWS_EC2_METADATA_DISABLED": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    })
    return env


def npx_cdk(*args: str, outdir: Path):
    if not CDK_BIN.exists():
        pytest.fail("the pinned CDK CLI is not installed: run tools/setup.sh (npm ci)")
    started = time.monotonic()
    result = subprocess.run(["npx", "cdk", *args, "--output", str(outdir)], cwd=REPO_ROOT, env=offline_env(),
                            capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - started


def test_cli_is_the_pinned_version():
    pinned = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert pinned.startswith("2.1148.") and pinned.replace(".", "").isdigit(), "pin aws-cdk exactly to 2.1148.x"
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == pinned
    result = subprocess.run(["npx", "cdk", "--version"], cwd=REPO_ROOT, env=offline_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith(pinned), result.stdout + result.stderr


def test_readme_synth_command_works_offline(tmp_path):
    result, seconds = npx_cdk("synth", "-c", "env=example", outdir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "AWS::EFS::FileSystem" in result.stdout
    template = json.loads((tmp_path / "EfsBackup-example.template.json").read_text())
    assert template["Outputs"]["BackupId"]["Value"] == "fs-12345678"
    # cdk-nag ran inside the CLI's synth: nothing open, every suppression an acknowledgment with its reason.
    (nag,) = json.loads((tmp_path / "validation-report.json").read_text())["pluginReports"]
    assert (nag["pluginName"], nag["conclusion"], nag["violations"]) == ("AwsSolutions", "success", [])
    assert nag["suppressedViolations"]
    for suppressed in nag["suppressedViolations"]:
        assert suppressed["acknowledgedId"] == f"AwsSolutions::{suppressed['ruleName']}" and suppressed["reason"]
    assert seconds < 120, f"synth took {seconds:.0f} s"


def test_invalid_configuration_fails_synth_with_every_problem(tmp_path):
    result, _ = npx_cdk("synth", "-c", "env=example", "-c", "retain_daily=seven",
                        "-c", "source_file_system_id=fs-123", outdir=tmp_path)
    assert result.returncode != 0
    assert "Invalid efs-backup configuration for environment 'example' (2 problems):" in result.stderr
    assert "source_file_system_id: 'fs-123' is not an EFS id (fs- followed by 8 or 17 hex digits)" in result.stderr
    assert "retain_daily: 'seven' is not a whole number" in result.stderr
    assert not (tmp_path / "EfsBackup-example.template.json").exists()


def test_missing_env_lists_the_environments(tmp_path):
    result, _ = npx_cdk("synth", outdir=tmp_path)
    assert result.returncode != 0
    assert "env: no environment selected; pass -c env=<name> with one of: example, production-eu" in result.stderr
