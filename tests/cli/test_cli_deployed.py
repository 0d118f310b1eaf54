"""What the CLI reads from a deployment (efs_backup_cli/deployed.py), without AWS: the committed template snapshots
(tests/cdk/__snapshots__, the real synthesized templates of both cdk.json environments) read as GetTemplate returns
them, compared with the configuration they were synthesized from; ``-c`` overrides; cdk.json read as plain JSON;
error names matched exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from efs_backup_cli import deployed
from efs_backup_cli.discovery import CdkJson
from efs_backup_cli.errors import EXIT_BUSY, EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_REFUSED, CliError

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "cdk" / "__snapshots__" / "test_cdk_templates"


def load_config(env):
    """The configuration a template was synthesized from (test side only: the CLI never imports it)."""
    from settings.load import load_config as load

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return load(dict(context, env=env))


def template(env):
    return json.loads((SNAPSHOTS / f"test_template_snapshot[{env}].json").read_text())


def outputs_of(body):
    """Outputs as DescribeStacks gives them (the snapshot's literal values; references stand in as placeholders)."""
    return {key: value["Value"] if isinstance(value["Value"], str) else "<resolved>"
            for key, value in body["Outputs"].items()}


@pytest.mark.parametrize("env", ["example", "production-eu"])
def test_settings_read_from_the_deployed_template_are_the_configured_ones(env):
    config = load_config(env)
    body = template(env)
    settings = deployed.read_settings(deployed.template_body({"TemplateBody": json.dumps(body)}), outputs_of(body))
    assert settings == deployed.read_settings(body, outputs_of(body)), "a decoded or a string body alike"
    assert dict(settings.retain) == {p.interval: p.retain for p in config.retention}
    assert settings.used_intervals() == [p.interval for p in config.retention if p.enabled]
    assert dict(settings.schedules) == {p.interval: p.schedule if p.enabled else None for p in config.retention}
    scheduled = [p.interval for p in config.retention if p.enabled and p.schedule and config.schedules_enabled]
    assert {i for i, s in settings.stale_after.items() if s is not None} == set(scheduled)
    assert all(settings.stale_after[i] == config.monitoring.stale_after_seconds(i) for i in scheduled)
    assert settings.stale_multiple == config.monitoring.stale_multiple
    assert settings.default_workers == config.workers.count
    assert settings.default_streams == config.workers.streams
    assert settings.source_file_system_id == config.source_file_system_id
    assert settings.restore_targets == [t.file_system_id for t in config.restore_targets]


def test_the_retention_follows_the_deployed_definition_not_a_name():
    """A redeploy with retain_daily 3 changes the Pass state's Result: that is what the CLI reads."""
    body = template("example")
    text = json.dumps(body)
    marker = '\\"Comment\\":\\"retain_daily of this deployment\\",\\"Result\\":7'
    assert text.count(marker) == 1
    changed = json.loads(text.replace(marker, marker[:-1] + "3"))
    assert deployed.read_settings(changed, outputs_of(changed)).retain["daily"] == 3


def test_overrides_replace_what_was_read():
    body = template("example")
    settings = deployed.read_settings(body, outputs_of(body))
    values = deployed.parse_overrides(["retain_daily=1", "alarm_stale_multiple=3", "schedule_weekly=none",
                                       "worker_count=4", "schedule_hourly=rate(1 hour)", "retain_hourly=2",
                                       "worker_streams=8"])
    changed = deployed.apply_overrides(settings, values)
    assert changed.retain["daily"] == 1 and changed.default_workers == 4 and changed.default_streams == 8
    assert changed.stale_after["daily"] == 3 * 86400 and changed.stale_multiple == 3
    assert changed.schedules["weekly"] is None and changed.stale_after["weekly"] is None
    assert changed.schedules["hourly"] == "rate(1 hour)" and changed.stale_after["hourly"] == 3 * 3600
    assert changed.used_intervals() == ["hourly", "daily", "weekly", "monthly"]
    assert deployed.apply_overrides(settings, {}) == settings
    for bad in ("retain_daily=x", "retain_daily=-1", "worker_count=0", "worker_count=33", "worker_streams=0",
                "worker_streams=17", "alarm_stale_multiple=0",
                "alarm_stale_multiple=nan", "schedule_daily=daily"):
        with pytest.raises(CliError) as raised:
            deployed.parse_overrides([bad])
        assert raised.value.code == EXIT_ENVIRONMENT and bad.split("=")[0] in raised.value.message


def test_a_template_that_is_not_an_efs_backup_stack_is_named_as_such():
    with pytest.raises(CliError, match="the stack: its backup state machine sets no retention for any interval"):
        deployed.read_settings({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}, {})
    with pytest.raises(CliError, match="not JSON"):
        deployed.template_body({"TemplateBody": "Resources:\n  Topic: {Type: AWS::SNS::Topic}\n"})


def test_cdk_json_is_read_as_plain_json(tmp_path):
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"app": "anything", "context": {"environments": {
        "prod": {"region": "eu-west-1", "stack_name": "Backups-prod"}, "test": {"region": "us-east-1"}}}}))
    known = CdkJson.read(path)
    assert known.environments == ["prod", "test"]
    assert (known.stack_name("prod"), known.value("prod", "region")) == ("Backups-prod", "eu-west-1")
    assert (known.stack_name("test"), known.value("test", "region")) == ("EfsBackup-test", "us-east-1")
    path.write_text(json.dumps({"context": {"region": "ap-south-1", "environments": {"test": {"region": "x"}}}}))
    assert CdkJson.read(path).value("test", "region") == "ap-south-1", "top-level context wins, as in the app"
    path.write_text("{not json")
    with pytest.raises(CliError, match="cannot read"):
        CdkJson.read(path)


def test_failed_runs_are_told_apart_by_exact_error_name():
    from efs_backup_contract.exits import ENGINE_BUSY, ENGINE_REFUSED
    from efs_backup_cli import history
    from efs_backup_cli.main import _failed_exit, error_names

    def failed(error):
        return history.Run("b", "r", "failed", "daily", "x", "s", "backup", {}, error)

    assert _failed_exit(failed(json.dumps({"Error": ENGINE_BUSY, "Cause": "lock held"}))) == EXIT_BUSY
    assert _failed_exit(failed(json.dumps({"Error": ENGINE_REFUSED}))) == EXIT_REFUSED
    # Nested where a Map or task failure carries the worker's error: in an object or in a JSON Cause.
    nested = {"Error": "States.TaskFailed", "Cause": json.dumps({"Error": ENGINE_BUSY, "Cause": "lock held"})}
    assert error_names(json.dumps(nested)) == ["States.TaskFailed", ENGINE_BUSY]
    assert _failed_exit(failed(json.dumps(nested))) == EXIT_BUSY
    assert _failed_exit(failed(ENGINE_REFUSED)) == EXIT_REFUSED, "a bare name"
    # Names that merely contain an engine error's name are other errors.
    for other in ("EngineBusyness", "NotEngineRefused", json.dumps({"Error": "EngineBusy2"}),
                  json.dumps({"Error": "EngineFailed", "Cause": "EngineBusy mentioned in a message"})):
        assert _failed_exit(failed(other)) == EXIT_FAILED, other
