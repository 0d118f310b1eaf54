"""End to end in moto: the synthesized stack deployed into moto's CloudFormation, the real state machine definition
executing in moto, and a simulated worker fleet running the real user data, worker.sh and engine against two local
directories through the mount seam (see moto_world.py for what stands in for what).

The scenarios build on each other in file order (one deployment, one backup file system, like a real schedule):
refused inputs (an unused interval, a retain, workers not a whole number 1..32: recorded, notified, nothing
launched), 1 worker, 4 workers, a part failure, the resumed run after it;
then restores from what they backed up: bad requests, a dry run and a restore of chosen paths into a new directory, an
in-place restore that keeps newer files, a restore onto another configured file system, a restore of a path the
snapshot does not have. The scenarios that wait on real heartbeat timeouts (a lost worker, a lost abort instance)
are in test_lost_instances_moto.py, in a world of their own built the same way (scenario_world), so that their
waiting overlaps these.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from moto_world import can_bind_mount, deployed_world

# Long enough for a simulated worker to boot and send its first heartbeat on a busy 2-core CI machine.
HEARTBEAT_TIMEOUT = 20


@contextlib.contextmanager
def scenario_world(tmp_path_factory):
    """The deployment and source tree of these scenarios (test_lost_instances_moto.py builds the same)."""
    workdir = tmp_path_factory.mktemp("moto-e2e")
    if not can_bind_mount(tmp_path_factory.mktemp("probe")):
        pytest.skip("the mount seam binds local directories: needs root and mount(2)")
    with deployed_world(workdir, worker_heartbeat_timeout_seconds=str(HEARTBEAT_TIMEOUT), retain_daily="1",
                        notify_on_success="true") as w:
        for index, top in enumerate(("alpha", "beta", "gamma", "delta", "with space")):
            for sub in range(3):
                directory = w.source / top / f"dir{sub}"
                directory.mkdir(parents=True)
                for number in range(4):
                    (directory / f"file{number}.txt").write_text(f"{top} {sub} {number} v1\n" * (index + 1))
        (w.source / "top-level.txt").write_text("top v1\n")
        yield w


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with scenario_world(tmp_path_factory) as w:
        yield w


def start(world, name: str, **run_input):
    return world.sfn.start_execution(stateMachineArn=world.arn, name=name, input=json.dumps(run_input))["executionArn"]


def wait(world, execution_arn: str, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        described = world.sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            world.fleet.wait_idle()
            return described
        time.sleep(0.3)
    raise TimeoutError(execution_arn)


def notifications(world):
    messages = []
    while True:
        received = world.sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        batch = received.get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            body = json.loads(message["Body"])
            messages.append({"subject": body.get("Subject"), "message": body["Message"]})
            world.sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])


def history(world, execution: str):
    items = world.ddb.scan(TableName=world.table)["Items"]
    return [{k: list(v.values())[0] for k, v in item.items()} for item in items
            if item["execution"]["S"] == execution and item["backup_id"]["S"] == world.synth.config.backup_id]


def tree(path: Path):
    """Relative path -> content of every file under path (the state a snapshot must equal)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_all_terminated(world, execution: str):
    reservations = world.ec2.describe_instances(
        Filters=[{"Name": "tag:efs-backup:execution", "Values": [execution]}])["Reservations"]
    states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
    assert states and all(s in ("shutting-down", "terminated") for s in states), states


def roles(world, execution: str):
    return sorted(i.role for i in world.fleet.of_execution(execution))


def worker_log(world, execution: str, state_machine_arn: str = "") -> str:
    """For assertion messages: the last events of the execution and every simulated instance's console."""
    arn = (state_machine_arn or world.arn).replace(":stateMachine:", ":execution:") + ":" + execution
    events = world.sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=8)["events"]
    lines = [json.dumps({k: v for k, v in e.items() if k not in ("timestamp",)}, default=str)[:600] for e in events]
    consoles = [f"--- {i.role} {i.instance_id}\n" + (i.home / "console.log").read_text()[-3000:]
                for i in world.fleet.of_execution(execution) if (i.home / "console.log").exists()]
    return "\n".join(lines + consoles)


# --------------------------------------------------------------------------------------------------- scenarios


def refusal_of(world, name: str):
    """The refused execution's failure, its run-history record and its notification (drained)."""
    execution_arn = world.arn.replace(":stateMachine:", ":execution:") + ":" + name
    described = wait(world, execution_arn)
    assert described["status"] == "FAILED"
    events = world.sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True)["events"]
    (failed,) = [e["executionFailedEventDetails"] for e in events if e["type"] == "ExecutionFailed"]
    assert world.fleet.of_execution(name) == [], "nothing launched"
    (record,) = history(world, name)
    (note,) = notifications(world)
    return failed, record, note


@pytest.mark.parametrize("name, run_input, reason", [
    ("bad-input", {"interval": "yearly"}, "expected {\"interval\": \"daily|weekly|monthly\""),
    # Retention is part of the deployment: a caller cannot pass (and so cannot lower) it.
    ("bad-retain", {"interval": "daily", "retain": 1}, "retain is not accepted in the input"),
    ("bad-retain-alone", {"retain": 7}, "retain is not accepted in the input"),
    # A non-integer worker count used to pass the checks and fail an intrinsic in a Pass state (no record, no
    # notification); it is refused like every bad input now.
    ("bad-workers-fraction", {"interval": "daily", "workers": 2.5}, "workers must be a whole number from 1 to 32"),
    ("bad-workers-string", {"interval": "daily", "workers": "2"}, "workers must be a whole number from 1 to 32"),
    ("bad-workers-zero", {"interval": "daily", "workers": 0}, "workers must be a whole number from 1 to 32"),
    # streams (engine streams per worker) are checked the same way
    ("bad-streams-fraction", {"interval": "daily", "streams": 2.5}, "streams must be a whole number from 1 to 16"),
    ("bad-streams-over", {"interval": "daily", "workers": 2, "streams": 17},
     "streams must be a whole number from 1 to 16"),
])
def test_a_refused_input_launches_nothing_and_is_recorded_and_notified(world, name, run_input, reason):
    start(world, name, **run_input)
    failed, record, note = refusal_of(world, name)
    assert failed["error"] == "InvalidInput" and reason in failed["cause"], failed
    assert record["status"] == "failed" and record["kind"] == "backup"
    assert json.loads(record["error"]) == {"Error": "InvalidInput", "Cause": failed["cause"]}
    assert json.loads(record["refused_input"]) == run_input
    assert note["subject"] == f"efs-backup {world.synth.config.backup_id} backup: INPUT REFUSED"
    assert reason in note["message"] and name in note["message"]
    assert not (world.id_dir / "daily.0").exists(), "no run happened"


def test_one_worker_run_promotes_records_and_notifies(world):
    described = wait(world, start(world, "run-1-worker", interval="daily", workers=1))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-1-worker")
    assert roles(world, "run-1-worker") == ["finalize", "work"]
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    assert_all_terminated(world, "run-1-worker")
    (record,) = history(world, "run-1-worker")
    assert record["status"] == "success" and record["interval"] == "daily"
    summary = json.loads(record["summary"])
    assert summary["snapshot"] == "daily.0" and summary["run_id"] == "run-1-worker"
    # No streams in the input: the configured worker_streams, each one an engine process of the one worker, whose
    # single report was its success.
    streams = world.synth.config.workers.streams
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (streams, streams, 1)
    assert {share["worker"] for share in summary["workers"]} <= {f"w0-s{j}" for j in range(streams)}
    (note,) = notifications(world)
    assert note["subject"] == f"efs-backup {world.synth.config.backup_id} daily: success"
    assert "run-1-worker" in note["message"] and "files scanned" in note["message"]
    # The bootstrap fetched exactly the deployed version and the worker shipped its log.
    prefix = world.synth.stack.scripts.script_key_prefix
    user_data = (world.fleet.of_execution("run-1-worker")[0].home / "user-data").read_text()
    assert f"/{prefix}\"" in user_data


def metric_sum(world, name: str, interval: str = "daily") -> float:
    cloudwatch = world.moto.client("cloudwatch")
    now = time.time()
    points = cloudwatch.get_metric_statistics(
        Namespace="EfsBackup", MetricName=name, StartTime=now - 3600, EndTime=now + 60, Period=3600,
        Statistics=["Sum"], Dimensions=[{"Name": "BackupId", "Value": world.synth.config.backup_id},
                                        {"Name": "Interval", "Value": interval}])["Datapoints"]
    return sum(point["Sum"] for point in points)


def test_a_run_publishes_its_metrics_and_records_the_newest_snapshot(world):
    """The 1-worker run's figures reached CloudWatch, equal to its recorded summary, and its promotion was recorded
    for the newest-snapshot age (monitoring.py publishes that record hourly)."""
    summary = json.loads(history(world, "run-1-worker")[0]["summary"])
    assert metric_sum(world, "RunsSucceeded") == 1 and metric_sum(world, "RunsFailed") == 0
    assert metric_sum(world, "BytesTransferred") == summary["totals"]["bytes_transferred"] > 0
    assert metric_sum(world, "FilesScanned") == summary["totals"]["files_scanned"]
    latest = world.ddb.get_item(TableName=world.table, Key={
        "backup_id": {"S": world.synth.config.backup_id + "#latest"}, "run": {"S": "daily"}})["Item"]
    assert latest["snapshot_id"]["S"] == summary["snapshot_id"] and latest["execution"]["S"] == "run-1-worker"
    assert int(latest["finished"]["N"]) == summary["finished_epoch"]


def test_worker_logs_stream_while_the_worker_runs(world):
    """The work instance of the 1-worker run: its log reached CloudWatch in several batches, the first before it
    reported (so a worker that dies keeps what it logged), and the stream holds its log exactly once."""
    (worker,) = [i for i in world.fleet.of_execution("run-1-worker") if i.role == "work"]
    stream = "run-1-worker/work-0"
    calls = [json.loads(line) for line in (worker.home / "aws-calls.jsonl").read_text().splitlines()]
    puts = [c["time"] for c in calls if c["call"] == "logs put-log-events" and c["stream"] == stream]
    (reported,) = [c["time"] for c in calls if c["call"] == "stepfunctions send-task-success"]
    assert len(puts) >= 2, calls
    assert puts[0] < reported, "log events were shipped while the worker was still running"
    logs = world.moto.client("logs")
    events = logs.get_log_events(logGroupName=world.log_group, logStreamName=stream, startFromHead=True)["events"]
    shipped = [e["message"] for e in events]
    local = (worker.home / "log" / "worker.log").read_text().splitlines()
    # Every line once, in order; only the power-off line is written after the final flush.
    assert shipped == local[:len(shipped)], "\n".join(["every line once, in order", *shipped, "--- local", *local])
    assert all("powering off" in line for line in local[len(shipped):]), local[len(shipped):]
    assert any("role work" in line for line in shipped) and any("reporting success" in line for line in shipped)


def test_four_workers_share_the_run_and_produce_the_same_snapshot(world):
    (world.source / "beta" / "dir1" / "file2.txt").write_text("beta changed v2\n")
    (world.source / "gamma" / "dir0" / "file0.txt").unlink()
    (world.source / "epsilon").mkdir()
    (world.source / "epsilon" / "new.txt").write_text("new\n")
    described = wait(world, start(world, "run-4-workers", interval="daily", workers=4, streams=2))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-4-workers")
    assert roles(world, "run-4-workers") == ["finalize", "work", "work", "work", "work"]
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    summary = json.loads(history(world, "run-4-workers")[0]["summary"])
    assert len(summary["workers"]) >= 1 and summary["status"] == "success"
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (8, 2, 4)
    assert {share["worker"] for share in summary["workers"]} <= {f"w{i}-s{j}" for i in range(4) for j in range(2)}
    assert_all_terminated(world, "run-4-workers")
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: success")


def test_a_failed_part_promotes_nothing_terminates_every_instance_and_names_the_part(world):
    spare = world.id_dir / ".efs-backup" / "spare" / "daily"
    assert (spare / "beta").is_dir(), "retain 1: the replaced snapshot is kept as the next work tree"
    before = tree(world.id_dir / "daily.0")
    manifest = (world.id_dir / ".efs-backup" / "manifests" / "daily.0.json").read_text()
    (world.source / "beta" / "dir1" / "file3.txt").write_text("beta changed v3\n")
    # A real destination-side error: part "beta" of the recycled work tree cannot be written.
    blocked = spare / "beta"
    subprocess.run(["mount", "--bind", str(blocked), str(blocked)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(blocked)], check=True)
    try:
        described = wait(world, start(world, "run-fails", interval="daily", workers=2))
    finally:
        work_tree = world.id_dir / ".efs-backup" / "runs" / "daily" / "tree" / "beta"
        for mount_point in (work_tree, blocked):
            subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)
    assert described["status"] == "FAILED", worker_log(world, "run-fails")
    assert tree(world.id_dir / "daily.0") == before, "nothing promoted"
    assert (world.id_dir / ".efs-backup" / "manifests" / "daily.0.json").read_text() == manifest
    assert_all_terminated(world, "run-fails")
    assert roles(world, "run-fails").count("finalize") == 1, "the failure path records the failed parts"
    (record,) = history(world, "run-fails")
    assert record["status"] == "failed"
    assert "EngineWorkFailed" in record["error"]
    # A tree this small is one part (".") for the engine; its recorded reason names the unwritable file.
    failed = json.loads(record["summary"])["failed_parts"]
    assert failed and any("Read-only file system" in part["reason"] and "/tree/beta/" in part["reason"] for part in failed), failed
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: FAILED")
    assert "/tree/beta/" in note["message"] and "Nothing was promoted" in note["message"]
    assert metric_sum(world, "RunsFailed") == 1, "the failed run is counted"
    assert not (world.id_dir / ".efs-backup" / "lock").exists(), "the lock was released"


def test_the_run_after_a_failure_resumes_it(world):
    described = wait(world, start(world, "run-resumes", interval="daily", workers=2))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-resumes")
    summary = json.loads(history(world, "run-resumes")[0]["summary"])
    assert summary["attempt"] == 2, "the failed run's work was resumed, not restarted"
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    notifications(world)


# ------------------------------------------------------------------------------------------ restore scenarios
# They run after the backups above: daily.0 holds the source as of "run-resumes" (retain 1).


def start_restore(world, name: str, **request):
    return world.sfn.start_execution(stateMachineArn=world.restore_arn, name=name,
                                     input=json.dumps(request))["executionArn"]


def snapshots_state(world):
    """Every snapshot's files and the manifests: what no restore may change."""
    return {name: tree(world.id_dir / name) for name in ("daily.0",)}, \
        sorted(p.name for p in (world.id_dir / ".efs-backup" / "manifests").iterdir())


def test_restore_input_is_checked_before_anything_is_launched(world):
    for name, request in (("restore-bad-both", {"snapshot": "latest", "at": "2026-11-20T00:00:00Z"}),
                          ("restore-bad-none", {"paths": ["alpha"]}),
                          ("restore-bad-at", {"at": "yesterday"}),
                          ("restore-bad-paths", {"snapshot": "latest", "paths": "alpha"}),
                          ("restore-bad-mirror", {"snapshot": "latest", "mirror": "yes"}),
                          ("restore-bad-target", {"snapshot": "latest", "target_file_system_id": "fs-99999999"})):
        described = wait(world, start_restore(world, name, **request))
        assert described["status"] == "FAILED", name
        assert world.fleet.of_execution(name) == [], f"{name}: nothing launched"
        (record,) = history(world, name)
        assert record["kind"] == "restore" and json.loads(record["error"])["Error"] == "InvalidInput"
        assert json.loads(record["refused_input"]) == request
    refused = notifications(world)
    assert len(refused) == 6 and all(n["subject"].endswith("restore: INPUT REFUSED") for n in refused)


def test_restore_dry_run_then_paths_into_a_new_directory(world):
    before = snapshots_state(world)
    snapshot = tree(world.id_dir / "daily.0")
    request = {"snapshot": "latest", "paths": ["alpha", "top-level.txt"], "workers": 2}
    dry = wait(world, start_restore(world, "restore-plan", dry_run=True, **request))
    assert dry["status"] == "SUCCEEDED", worker_log(world, "restore-plan", world.restore_arn)
    output = json.loads(dry["output"])
    plan = output["summary"]["plan"]
    expected = {k: v for k, v in snapshot.items() if k.startswith("alpha/") or k == "top-level.txt"}
    assert output["outcome"] == "success" and output["summary"]["dry_run"] is True
    assert plan["create"]["files"] == len(expected)
    assert plan["create"]["bytes"] == sum(len(v) for v in expected.values())
    assert plan["overwrite"]["files"] == 0 and plan["delete"]["files"] == 0
    assert not (world.source / "efs-backup-restore").exists(), "a dry run creates nothing"
    assert notifications(world) == [], "a dry run does not notify"

    described = wait(world, start_restore(world, "restore-new-dir", **request))
    assert described["status"] == "SUCCEEDED", worker_log(world, "restore-new-dir", world.restore_arn)
    assert roles(world, "restore-new-dir") == ["restore-finalize", "restore-work", "restore-work"]
    restored = tree(world.source / "efs-backup-restore" / "restore-new-dir")
    assert restored == expected
    assert snapshots_state(world) == before, "the snapshots are read, never written"
    (record,) = history(world, "restore-new-dir")
    assert record["kind"] == "restore" and record["status"] == "success"
    assert json.loads(record["summary"])["snapshot"] == "daily.0"
    assert_all_terminated(world, "restore-new-dir")
    (note,) = notifications(world)
    assert note["subject"].endswith("restore: success") and "restore-new-dir" in note["message"]


def test_restore_in_place_keeps_newer_files_and_deletes_nothing(world):
    alpha = world.source / "alpha"
    (alpha / "dir0" / "file0.txt").unlink()
    (alpha / "dir1" / "file1.txt").write_text("edited after the backup: newer than the snapshot\n")
    (alpha / "dir2" / "extra.txt").write_text("created after the backup\n")
    described = wait(world, start_restore(world, "restore-in-place", snapshot="latest", paths=["alpha"],
                                          target_path="/"))
    assert described["status"] == "SUCCEEDED", worker_log(world, "restore-in-place", world.restore_arn)
    assert (alpha / "dir0" / "file0.txt").read_text() == "alpha 0 0 v1\n", "the lost file is back"
    assert (alpha / "dir1" / "file1.txt").read_text().startswith("edited after the backup"), "newer file kept"
    assert (alpha / "dir2" / "extra.txt").exists(), "safe mode deletes nothing"
    plan = json.loads(described["output"])["summary"]["plan"]
    assert plan["create"]["files"] == 1 and plan["skip_newer"]["files"] == 1 and plan["delete"]["files"] == 0
    notifications(world)


def test_restore_into_another_configured_file_system(world):
    described = wait(world, start_restore(world, "restore-other-fs", snapshot="latest", paths=["gamma"],
                                          target_file_system_id=world.other_file_system_id, target_path="/restored"))
    assert described["status"] == "SUCCEEDED", worker_log(world, "restore-other-fs", world.restore_arn)
    expected = {k: v for k, v in tree(world.id_dir / "daily.0").items() if k.startswith("gamma/")}
    assert expected and tree(world.other / "restored") == expected
    assert not (world.source / "restored").exists(), "production untouched"
    notifications(world)


def test_a_misspelt_restore_option_is_refused_not_ignored(world):
    """"dryRun" is not "dry_run": the workers refuse the request instead of restoring for real."""
    described = wait(world, start_restore(world, "restore-misspelt", snapshot="latest", paths=["alpha"],
                                          dryRun=True))
    assert described["status"] == "FAILED"
    (record,) = history(world, "restore-misspelt")
    assert "EngineRefused" in record["error"]
    assert not (world.source / "efs-backup-restore" / "restore-misspelt").exists()
    notifications(world)


def test_a_restore_of_a_path_not_in_the_snapshot_fails_with_the_reason(world):
    described = wait(world, start_restore(world, "restore-missing", snapshot="latest", paths=["no/such/dir"]))
    assert described["status"] == "FAILED"
    assert_all_terminated(world, "restore-missing")
    (record,) = history(world, "restore-missing")
    assert record["kind"] == "restore" and record["status"] == "failed" and "EngineRefused" in record["error"]
    (note,) = notifications(world)
    assert note["subject"].endswith("restore: FAILED")
    assert not (world.id_dir / ".efs-backup" / "lock").exists(), "the lock was released"
    assert not (world.source / "efs-backup-restore" / "restore-missing").exists()
