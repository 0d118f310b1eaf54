"""End to end in moto: the synthesized stack deployed into moto's CloudFormation, the real state machine definition
executing in moto, and a simulated worker fleet running the real user data, worker.sh and engine against two local
directories through the mount seam (see moto_world.py for what stands in for what).

The scenarios build on each other in file order (one deployment, one backup file system, like a real schedule):
1 worker, 4 workers, a part failure, the resumed run after it, a lost worker with a second execution meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from moto_world import (
    ACCOUNT,
    REGION,
    MotoServer,
    WorkerFleet,
    copy_scripts_into_bucket,
    create_network,
    deploy,
    recreate_state_machine,
    synth_for_moto,
    upload_assets,
)

# Long enough for a simulated worker to boot and send its first heartbeat on a busy 2-core CI machine.
HEARTBEAT_TIMEOUT = 20


def can_bind_mount(tmp: Path) -> bool:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "--bind", str(tmp / "a"), str(tmp / "b")], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(tmp / "b")], check=False)
    return ok


class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moto-e2e")
    if not can_bind_mount(tmp_path_factory.mktemp("probe")):
        pytest.skip("the mount seam binds local directories: needs root and mount(2)")
    moto = MotoServer(workdir)
    fleet = None
    filesystems = []
    try:
        network = create_network(moto)
        synth = synth_for_moto(workdir / "cdk", network, worker_heartbeat_timeout_seconds=str(HEARTBEAT_TIMEOUT),
                               notify_on_success="true")
        stack = synth.stack
        sources = upload_assets(moto, workdir / "cdk", stack.stack_name)
        resources = deploy(moto, synth.template_json, stack.stack_name)

        def physical(construct):
            return resources[stack.get_logical_id(construct.node.default_child)]["PhysicalResourceId"]

        bucket = physical(stack.scripts.bucket)
        copy_scripts_into_bucket(moto, bucket, stack.scripts.script_key_prefix, sources[stack.scripts.asset_hash])
        arn, definition = recreate_state_machine(
            moto, synth.template_json, resources, stack.workflow.state_machine_name,
            f"arn:aws:iam::{ACCOUNT}:role/{physical(stack.workflow.role)}")
        sqs, sns = moto.client("sqs"), moto.client("sns")
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic_arn = physical(stack.notifications.topic)
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

        # Two file systems of their own, like the two EFS they stand for: the engine's --require-mountpoint check
        # stays on (a bind mount of a directory of the same file system is not a mount point to it).
        source, backup = workdir / "production", workdir / "backup"
        for directory in (source, backup):
            directory.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(directory)], check=True)
            filesystems.append(directory)
        for index, top in enumerate(("alpha", "beta", "gamma", "delta", "with space")):
            for sub in range(3):
                directory = source / top / f"dir{sub}"
                directory.mkdir(parents=True)
                for number in range(4):
                    (directory / f"file{number}.txt").write_text(f"{top} {sub} {number} v1\n" * (index + 1))
        (source / "top-level.txt").write_text("top v1\n")
        fleet = WorkerFleet(moto, workdir, source, backup)

        w = World()
        w.moto, w.fleet, w.synth, w.arn, w.definition = moto, fleet, synth, arn, definition
        w.source, w.backup, w.id_dir = source, backup, backup / synth.config.backup_id
        w.queue_url, w.table = queue_url, physical(stack.workflow.table)
        w.sfn, w.ec2, w.ddb, w.sqs = moto.client("stepfunctions"), moto.client("ec2"), moto.client("dynamodb"), sqs
        w.workdir = workdir
        w.log_group = physical(stack.launch_template.log_group)
        yield w
    finally:
        if fleet is not None:
            fleet.stop()
        for directory in reversed(filesystems):
            subprocess.run(["umount", "-l", str(directory)], check=False)
        moto.stop()


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
    return [{k: list(v.values())[0] for k, v in item.items()} for item in items if item["execution"]["S"] == execution]


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


def worker_log(world, execution: str) -> str:
    """For assertion messages: the last events of the execution and every simulated instance's console."""
    arn = world.arn.replace(":stateMachine:", ":execution:") + ":" + execution
    events = world.sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=8)["events"]
    lines = [json.dumps({k: v for k, v in e.items() if k not in ("timestamp",)}, default=str)[:600] for e in events]
    consoles = [f"--- {i.role} {i.instance_id}\n" + (i.home / "console.log").read_text()[-3000:]
                for i in world.fleet.of_execution(execution) if (i.home / "console.log").exists()]
    return "\n".join(lines + consoles)


# --------------------------------------------------------------------------------------------------- scenarios


def test_invalid_input_fails_before_anything_is_launched(world):
    described = wait(world, start(world, "bad-input", interval="yearly", retain=3))
    assert described["status"] == "FAILED"
    assert world.fleet.of_execution("bad-input") == []


def test_one_worker_run_promotes_records_and_notifies(world):
    described = wait(world, start(world, "run-1-worker", interval="daily", retain=1, workers=1))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-1-worker")
    assert roles(world, "run-1-worker") == ["finalize", "work"]
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    assert_all_terminated(world, "run-1-worker")
    (record,) = history(world, "run-1-worker")
    assert record["status"] == "success" and record["interval"] == "daily"
    summary = json.loads(record["summary"])
    assert summary["snapshot"] == "daily.0" and summary["run_id"] == "run-1-worker"
    (note,) = notifications(world)
    assert note["subject"] == f"efs-backup {world.synth.config.backup_id} daily: success"
    assert "run-1-worker" in note["message"] and "files scanned" in note["message"]
    # The bootstrap fetched exactly the deployed version and the worker shipped its log.
    prefix = world.synth.stack.scripts.script_key_prefix
    user_data = (world.fleet.of_execution("run-1-worker")[0].home / "user-data").read_text()
    assert f"/{prefix}\"" in user_data


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
    described = wait(world, start(world, "run-4-workers", interval="daily", retain=1, workers=4))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-4-workers")
    assert roles(world, "run-4-workers") == ["finalize", "work", "work", "work", "work"]
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    summary = json.loads(history(world, "run-4-workers")[0]["summary"])
    assert len(summary["workers"]) >= 1 and summary["status"] == "success"
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
        described = wait(world, start(world, "run-fails", interval="daily", retain=1, workers=2))
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
    assert not (world.id_dir / ".efs-backup" / "lock").exists(), "the lock was released"


def test_the_run_after_a_failure_resumes_it(world):
    described = wait(world, start(world, "run-resumes", interval="daily", retain=1, workers=2))
    assert described["status"] == "SUCCEEDED", worker_log(world, "run-resumes")
    summary = json.loads(history(world, "run-resumes")[0]["summary"])
    assert summary["attempt"] == 2, "the failed run's work was resumed, not restarted"
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    notifications(world)


def test_a_lost_worker_times_out_and_a_second_execution_meanwhile_is_refused(world):
    world.fleet.should_run = lambda instance: not (instance.execution == "run-lost" and instance.role == "work")
    try:
        lost = start(world, "run-lost", interval="daily", retain=1, workers=1)
        deadline = time.time() + 20
        while not world.fleet.of_execution("run-lost"):
            assert time.time() < deadline, "no instance launched"
            time.sleep(0.2)
        second = wait(world, start(world, "run-second", interval="daily", retain=1))
        assert second["status"] == "SUCCEEDED"
        assert json.loads(second["output"])["outcome"] == "already-running"
        assert world.fleet.of_execution("run-second") == [], "the refused execution launched nothing"
        assert world.sfn.describe_execution(executionArn=lost)["status"] == "RUNNING", "and disturbed nothing"
        described = wait(world, lost, timeout=HEARTBEAT_TIMEOUT * 6)
    finally:
        world.fleet.should_run = lambda instance: True
    assert described["status"] == "FAILED"
    assert roles(world, "run-lost") == ["abort", "work"], "the failure path releases the lock with abort"
    assert_all_terminated(world, "run-lost")
    (record,) = history(world, "run-lost")
    assert record["status"] == "failed" and "Timeout" in record["error"]
    summary = json.loads(record["summary"])
    # abort's own account of the run: here the only worker never started, so nothing was ever prepared
    # (with a prepared run it lists every failed or unfinished part: tests/engine/test_steps.py)
    assert summary["status"] == "failed" and "stopped before finalize" in summary["aborted"]
    assert "never prepared" in summary["note"]
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: FAILED") and "Timeout" in note["message"]
    assert "stopped before finalize" in note["message"]
