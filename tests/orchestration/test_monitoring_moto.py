"""Monitoring executed in moto: the run-metrics fragment (constructs/run_metrics.py) and the newest-snapshot
publisher (constructs/monitoring.py) run as real state machines in moto's Step Functions interpreter, against moto's
CloudWatch and DynamoDB (in-process ``mock_aws`` with state machine execution switched on).

Each test builds a tiny state machine: a Pass that sets the execution state the backup workflow would have at the
splice point (``interval`` and the engine's run summary, built with the engine's own ``summary.build``), the
fragment, and a Succeed. What moto cannot prove: CloudWatch alarm evaluation and metric math (``EPOCH``), schedules
firing, and IAM (moto does not enforce the role's policy); those are asserted on the template in
tests/cdk/test_monitoring.py.
"""

from __future__ import annotations

import datetime
import json
import time
from typing import Any, Dict, List

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from moto import mock_aws

from orchestration_helpers import validate_asl

from efs_backup_engine import summary as engine_summary

from constructs.monitoring import Monitoring
from constructs.run_metrics import NAMESPACE, PART_METRIC_NAMES, RUN_METRIC_NAMES, RunMetrics
from settings.model import BackupFileSystemSettings, IntervalPolicy, KmsKeyChoice, MonitoringSettings

REGION = "us-east-1"
TABLE = "efs-backup-runs"
BACKUP_ID = "shared-home"
ROLE_ARN = "arn:aws:iam::123456789012:role/monitoring-test"
ALL_RUN_METRICS = RUN_METRIC_NAMES + PART_METRIC_NAMES


# --------------------------------------------------------------------------------------------------- fixtures


def construct_scope():
    app = cdk.App()
    stack = cdk.Stack(app, "MonitoringTest", env=cdk.Environment(account="123456789012", region=REGION))
    table = dynamodb.Table.from_table_name(stack, "Runs", TABLE)  # a literal name: the states need no resolving
    return stack, table


@pytest.fixture(scope="module")
def run_metrics():
    stack, table = construct_scope()
    return RunMetrics(stack, "RunMetrics", backup_id=BACKUP_ID, table=table)


@pytest.fixture(scope="module")
def publisher_definition():
    stack, table = construct_scope()
    fs = BackupFileSystemSettings("generalPurpose", "elastic", None, KmsKeyChoice("aws-managed"), 30, None, False)
    monitoring = Monitoring(
        stack, "Monitoring", name_prefix="EfsBackup-test", backup_id=BACKUP_ID, settings=MonitoringSettings(),
        policies=[IntervalPolicy("hourly", 0), IntervalPolicy("daily", 7, "cron(0 2 * * ? *)"),
                  IntervalPolicy("weekly", 4, "cron(0 4 ? * SUN *)"), IntervalPolicy("monthly", 12)],
        schedules_enabled=True, timezone="UTC", run_table=table, state_machines={}, source_file_system_id="fs-12345678",
        backup_file_system_id="fs-87654321", backup_file_system=fs, emails=[],
    )
    return monitoring.publisher_definition(TABLE)


@pytest.fixture
def aws():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "backup_id", "KeyType": "HASH"},
                       {"AttributeName": "run", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "backup_id", "AttributeType": "S"},
                                  {"AttributeName": "run", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def engine_run_summary(status: str = "success", finished: float = 1764253530.75) -> Dict[str, Any]:
    """A run summary as the engine's finalize returns it: summary.build over three finished parts, plus the
    snapshot name and id that a promotion adds."""
    run = {"run_id": "daily-20261127T020000", "backup_id": BACKUP_ID, "interval": "daily", "retain": 7,
           "source": "/mnt/source", "started": finished - 95.5}
    units = {uid: {"path": path} for uid, path in (("u1", "."), ("u2", "projects"), ("u3", "home"))}
    results = {
        "u1": {"path": ".", "status": "success", "messages": [], "worker": "w0", "seconds": 1.25,
               "files_scanned": 40, "files_transferred": 2, "bytes_transferred": 1000, "bytes_total": 50000},
        "u2": {"path": "projects", "status": "success", "messages": [], "worker": "w1", "seconds": 80.5,
               "files_scanned": 9000, "files_transferred": 120, "bytes_transferred": 7340032, "bytes_total": 9 << 30},
        "u3": {"path": "home", "status": "warning" if status == "warning" else "success",
               "messages": ["file vanished"] if status == "warning" else [], "worker": "w0", "seconds": 12.0,
               "files_scanned": 960, "files_transferred": 0, "bytes_transferred": 0, "bytes_total": 1 << 20},
    }
    summary = engine_summary.build(run, units, results, finished=finished)
    assert summary["status"] == status
    summary["snapshot"] = "daily.0"
    summary["snapshot_id"] = "5f0c3a4e9b7d4c1e8a2b6d9f0e1c2b3a"
    return summary


def definition(fragment: Dict[str, Any], entry: str, state: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "StartAt": "SpliceState",
        "States": {
            "SpliceState": {"Type": "Pass", "Result": state, "Next": entry},
            **fragment,
            "AfterMetrics": {"Type": "Succeed"},
        },
    }


def execute(machine: Dict[str, Any], name: str) -> Dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(name=name, definition=json.dumps(machine), roleArn=ROLE_ARN)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name=f"{name}-run")["executionArn"]
    deadline = time.time() + 60
    while True:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def statistics(metric: str, interval: str = "daily") -> List[Dict[str, Any]]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return boto3.client("cloudwatch", region_name=REGION).get_metric_statistics(
        Namespace=NAMESPACE, MetricName=metric,
        Dimensions=[{"Name": "BackupId", "Value": BACKUP_ID}, {"Name": "Interval", "Value": interval}],
        StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(minutes=5), Period=3600,
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum"],
    )["Datapoints"]


def published() -> Dict[str, List[Dict[str, str]]]:
    metrics = boto3.client("cloudwatch", region_name=REGION).list_metrics(Namespace=NAMESPACE)["Metrics"]
    return {m["MetricName"]: sorted(m["Dimensions"], key=lambda d: d["Name"]) for m in metrics}


def value(metric: str, interval: str = "daily") -> float:
    (point,) = statistics(metric, interval)
    assert point["SampleCount"] == 1, (metric, point)
    return point["Sum"]


def latest_items() -> List[Dict[str, Any]]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]


# ---------------------------------------------------------------------------------------------------- run metrics


def test_fragments_are_valid_asl_and_leave_only_through_the_exit(run_metrics, tmp_path):
    for path, entry in (("success", "PublishRunMetrics"), ("failure", "PublishFailedRunMetrics")):
        fragment = run_metrics.states(entry, "AfterMetrics", path)
        assert all(name.startswith(entry) for name in fragment)
        machine = definition(fragment, entry, {})
        result = validate_asl(machine, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        for state in fragment.values():
            targets = [state.get("Next"), state.get("Default")] + [c["Next"] for c in state.get("Choices", [])] \
                + [c["Next"] for c in state.get("Catch", [])]
            assert all(t in fragment or t == "AfterMetrics" for t in targets if t), state
            if state["Type"] == "Task":
                assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], "monitoring must never fail a run"
    with pytest.raises(ValueError):
        run_metrics.states("X", "Y", "sometimes")


def test_success_publishes_every_run_and_part_metric_and_records_the_newest_snapshot(aws, run_metrics):
    summary = engine_run_summary()
    entry = "PublishRunMetrics"
    output = execute(definition(run_metrics.states(entry, "AfterMetrics", "success"), entry,
                                {"backup_id": BACKUP_ID, "interval": "daily", "run_id": "daily-1",
                                 "started": "2026-11-27T02:00:00Z", "summary": summary}), "success")
    assert output["summary"] == summary, "the fragment must not change the run's state beyond $.run_metrics"
    assert set(output["run_metrics"]) == {"succeeded", "failed", "put_run", "put_parts", "recorded_latest"}

    dims = [{"Name": "BackupId", "Value": BACKUP_ID}, {"Name": "Interval", "Value": "daily"}]
    assert published() == {name: dims for name in ALL_RUN_METRICS}
    assert value("RunsSucceeded") == 1 and value("RunsFailed") == 0
    assert value("RunDurationSeconds") == summary["duration_seconds"] == 95.5
    assert value("FilesScanned") == 10000 and value("FilesTransferred") == 122
    assert value("BytesTransferred") == 7341032
    assert value("Warnings") == 0 and value("FailedParts") == 0
    (seconds,) = statistics("PartDurationSeconds")
    assert (seconds["SampleCount"], seconds["Sum"], seconds["Minimum"], seconds["Maximum"]) == (3, 93.75, 1.25, 80.5)
    (files,) = statistics("PartFilesScanned")
    assert (files["SampleCount"], files["Sum"], files["Minimum"], files["Maximum"]) == (3, 10000, 40, 9000)
    (data,) = statistics("PartBytesTransferred")
    assert (data["SampleCount"], data["Sum"], data["Minimum"], data["Maximum"]) == (3, 7341032, 0, 7340032)

    assert latest_items() == [{
        "backup_id": {"S": f"{BACKUP_ID}#latest"}, "run": {"S": "daily"},
        "finished": {"N": "1764253530"}, "finished_iso": {"S": "2025-11-27T14:25:30Z"},
        "snapshot": {"S": "daily.0"}, "snapshot_id": {"S": summary["snapshot_id"]},
        "status": {"S": "success"}, "execution": {"S": "success-run"},
    }]
    # The run history's Query of backup_id = <backup-id> never sees the newest-snapshot item.
    runs = boto3.client("dynamodb", region_name=REGION).query(
        TableName=TABLE, KeyConditionExpression="backup_id = :b",
        ExpressionAttributeValues={":b": {"S": BACKUP_ID}})["Items"]
    assert runs == []


def test_a_warning_run_counts_as_succeeded_and_its_warnings_are_published(aws, run_metrics):
    summary = engine_run_summary("warning")
    execute(definition(run_metrics.states("M", "AfterMetrics", "success"), "M",
                       {"interval": "daily", "summary": summary}), "warning")
    assert value("RunsSucceeded") == 1 and value("Warnings") == 1
    assert [item["status"]["S"] for item in latest_items()] == ["warning"]


def test_failure_with_an_empty_summary_publishes_only_the_outcome(aws, run_metrics):
    entry = "PublishFailedRunMetrics"
    output = execute(definition(run_metrics.states(entry, "AfterMetrics", "failure"), entry,
                                {"backup_id": BACKUP_ID, "interval": "weekly", "summary": {},
                                 "error": {"Error": "States.Timeout", "Cause": "worker lost"}}), "empty")
    assert set(output["run_metrics"]) == {"succeeded", "failed", "put_outcome"}
    assert set(published()) == {"RunsSucceeded", "RunsFailed"}
    assert value("RunsFailed", "weekly") == 1 and value("RunsSucceeded", "weekly") == 0
    assert latest_items() == []


def test_failure_with_an_abort_summary_publishes_its_figures_but_no_parts_and_no_snapshot(aws, run_metrics):
    # What `abort` reports when no part finished: status failed, the figures, part_stats with count 0.
    run = {"run_id": "r", "backup_id": BACKUP_ID, "interval": "monthly", "retain": 12, "source": "/s",
           "started": 1764250000.0}
    summary = engine_summary.build(run, {"u1": {"path": "."}}, {}, finished=1764250060.0)
    summary.update(status="failed", aborted="worker lost")
    assert summary["part_stats"]["seconds"]["count"] == 0
    execute(definition(run_metrics.states("F", "AfterMetrics", "failure"), "F",
                       {"interval": "monthly", "summary": summary}), "abort")
    assert set(published()) == set(RUN_METRIC_NAMES)
    assert value("RunsFailed", "monthly") == 1 and value("FailedParts", "monthly") == 1
    assert value("RunDurationSeconds", "monthly") == 60
    assert latest_items() == []


@pytest.mark.parametrize("summary", [None, {"status": "failed"}, {"status": 3, "totals": {}}, "not a summary"])
def test_success_path_with_a_failed_or_malformed_summary_counts_a_failure_and_records_nothing(aws, run_metrics,
                                                                                            summary):
    execute(definition(run_metrics.states("S", "AfterMetrics", "success"), "S",
                       {"interval": "hourly", "summary": summary}), "odd")
    assert value("RunsFailed", "hourly") == 1 and value("RunsSucceeded", "hourly") == 0
    assert set(published()) == {"RunsSucceeded", "RunsFailed"}
    assert latest_items() == []


def test_a_promoted_summary_without_its_snapshot_fields_records_no_newest_snapshot(aws, run_metrics):
    summary = engine_run_summary()
    del summary["snapshot_id"]
    execute(definition(run_metrics.states("S", "AfterMetrics", "success"), "S",
                       {"interval": "daily", "summary": summary}), "nosnap")
    assert value("RunsSucceeded") == 1
    assert latest_items() == []


@pytest.mark.parametrize("path", ["success", "failure"])
def test_without_an_interval_the_fragment_does_nothing(aws, run_metrics, path):
    output = execute(definition(run_metrics.states("S", "AfterMetrics", path), "S", {"summary": {}}), path)
    assert "run_metrics" not in output
    assert published() == {}


def test_a_failing_task_is_caught_and_the_run_goes_on(aws, run_metrics):
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE)  # the PutItem of the newest snapshot fails
    output = execute(definition(run_metrics.states("S", "AfterMetrics", "success"), "S",
                                {"interval": "daily", "summary": engine_run_summary()}), "no-table")
    assert output["run_metrics"]["recorded_latest_error"]["Error"]
    assert output["run_metrics"]["put_run"] == output["run_metrics"]["put_parts"] == {"done": True}
    assert value("RunsSucceeded") == 1


# ------------------------------------------------------------------------------------------------------ publisher


def test_publisher_is_valid_asl(publisher_definition, tmp_path):
    result = validate_asl(publisher_definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_publisher_publishes_each_scheduled_intervals_newest_snapshot_time_and_zero_without_one(
        aws, run_metrics, publisher_definition):
    # The contract between the two: the success fragment records the newest snapshot, the publisher reads it.
    summary = engine_run_summary()
    execute(definition(run_metrics.states("S", "AfterMetrics", "success"), "S",
                       {"interval": "daily", "summary": summary}), "daily-run")
    execute(publisher_definition, "publisher")
    assert value("NewestSnapshotTimestamp", "daily") == summary["finished_epoch"] == 1764253530
    assert value("NewestSnapshotTimestamp", "weekly") == 0, "a scheduled interval without a snapshot yet publishes 0"
    assert statistics("NewestSnapshotTimestamp", "monthly") == [], "monthly has no schedule: no age published"
    assert statistics("NewestSnapshotTimestamp", "hourly") == []


def test_publisher_fails_when_the_table_cannot_be_read(aws, publisher_definition):
    # A failing publisher publishes nothing; the stale alarms treat the gap as breaching.
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=TABLE)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(name="broken", definition=json.dumps(publisher_definition),
                                   roleArn=ROLE_ARN)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="broken-run")["executionArn"]
    deadline = time.time() + 120
    while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING" and time.time() < deadline:
        time.sleep(0.2)
    assert sfn.describe_execution(executionArn=execution)["status"] == "FAILED"
    assert published() == {}
