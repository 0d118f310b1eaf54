"""Launching workers, end to end in moto: what the emulator cannot show by itself, injected.

moto has no capacity and no throttling, so moto_faults.py makes RunInstances fail as EC2 does (error code and
message) for chosen subnets / instance types; the real definition then has to carry the run through: the next
zone, the configured fallback instance type, or a recorded and notified failure when nothing can launch. And a
restore request of over 70 KB (280 paths of 255 bytes) launches (the user data is constant-size: the task is an S3
object the worker reads and deletes) with a summary too big for a message (bounded, the full one on the backup file system), and a backup whose
summary is bigger than Step Functions accepts (many unreadable long-named files) is promoted and reported a success.

One deployment (two subnets in two zones, worker_fallback_instance_types m6a.large) for the scenarios, in file order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moto_world import can_bind_mount, deployed_world
from test_orchestration_moto import assert_all_terminated, history, notifications, roles, tree, wait, worker_log

HEARTBEAT_TIMEOUT = 20
CAPACITY = ("We currently do not have sufficient m6i.large capacity in the Availability Zone you requested ({zone}). "
            "Our system will be working on provisioning additional capacity.")
# A restore request far bigger than user data or Base64Encode could carry: what matters is its size (and the summary's,
# which lists every path), not the count of paths, so long names make it with fewer restore parts to run.
PATHS = 280
NAME_BYTES = 250  # "many/<name>": 255 bytes a path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moto-launch")
    if not can_bind_mount(tmp_path_factory.mktemp("probe")):
        pytest.skip("the mount seam binds local directories: needs root and mount(2)")
    faults = workdir / "faults.json"
    faults.write_text("[]")
    with deployed_world(workdir, faults=faults, zones=2, worker_heartbeat_timeout_seconds=str(HEARTBEAT_TIMEOUT),
                        retain_daily="1", worker_fallback_instance_types="m6a.large") as w:
        w.faults = faults
        w.subnets = [placement.subnet_id for placement in w.synth.config.subnets]
        for top in ("alpha", "beta"):
            (w.source / top).mkdir()
            for number in range(3):
                (w.source / top / f"file{number}.txt").write_text(f"{top} {number}\n")
        many = w.source / "many"
        many.mkdir()
        for number in range(PATHS):
            (many / (f"{number:04d}-".ljust(NAME_BYTES - 4, "n") + ".txt")).write_text(f"{number}\n")
        yield w


def inject(world, *rules):
    world.faults.write_text(json.dumps(list(rules)))


def launches(world):
    """Every RunInstances moto saw, in order: {subnet_id, instance_type, failed}."""
    calls = Path(str(world.faults) + ".calls")
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def instances(world, execution, role):
    reservations = world.ec2.describe_instances(Filters=[
        {"Name": "tag:efs-backup:execution", "Values": [execution]},
        {"Name": "tag:efs-backup:role", "Values": [role]}])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def start(world, name, **run_input):
    return world.sfn.start_execution(stateMachineArn=world.arn, name=name, input=json.dumps(run_input))["executionArn"]


def task_objects(world):
    """Every version (and delete marker) left under tasks/ in the script bucket."""
    s3 = world.moto.client("s3")
    bucket = world.physical(world.synth.stack.scripts.bucket)
    listed = s3.list_object_versions(Bucket=bucket, Prefix="tasks/")
    return listed.get("Versions", []) + listed.get("DeleteMarkers", [])


def test_a_capacity_error_on_the_first_launch_moves_to_the_next_zone(world):
    zone_a, zone_b = world.subnets
    inject(world, {"subnet_id": zone_a, "instance_type": "m6i.large", "code": "InsufficientInstanceCapacity",
                   "message": CAPACITY.format(zone="us-east-1a"), "times": 1})
    before = len(launches(world))
    execution = start(world, "capacity-once", interval="daily", workers=1)
    described = wait(world, execution, timeout=120)
    assert described["status"] == "SUCCEEDED", worker_log(world, "capacity-once")
    first, second = launches(world)[before:before + 2]
    assert first == {"subnet_id": zone_a, "instance_type": "m6i.large", "failed": "InsufficientInstanceCapacity"}
    assert second == {"subnet_id": zone_b, "instance_type": "m6i.large", "failed": None}, "the next zone"
    (work,) = instances(world, "capacity-once", "work")
    assert work["SubnetId"] == zone_b and work["InstanceType"] == "m6i.large"
    events = world.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    failures = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert len(failures) == 1 and "sufficient m6i.large capacity" in failures[0]["cause"], failures
    assert tree(world.id_dir / "daily.0") == tree(world.source)
    assert roles(world, "capacity-once") == ["finalize", "work"], "the failed launch created nothing"
    assert json.loads(history(world, "capacity-once")[0]["summary"])["status"] == "success"
    assert task_objects(world) == [], "every task object (token included) was deleted, every version"
    notifications(world)


def test_no_capacity_for_the_type_in_any_zone_falls_back_to_the_next_type(world):
    inject(world, {"instance_type": "m6i.large", "code": "InsufficientInstanceCapacity",
                   "message": CAPACITY.format(zone="us-east-1a"), "times": -1})
    before = len(launches(world))
    try:
        described = wait(world, start(world, "capacity-type", interval="daily", workers=1), timeout=180)
    finally:
        inject(world)
    assert described["status"] == "SUCCEEDED", worker_log(world, "capacity-type")
    calls = launches(world)[before:]
    # each step: the primary type in both zones, then the fallback type
    assert [(c["instance_type"], c["failed"] is None) for c in calls[:3]] == [
        ("m6i.large", False), ("m6i.large", False), ("m6a.large", True)], calls
    assert {c["subnet_id"] for c in calls[:2]} == set(world.subnets)
    for role in ("work", "finalize"):
        assert [i["InstanceType"] for i in instances(world, "capacity-type", role)] == ["m6a.large"]
    notifications(world)


def test_a_launch_that_cannot_succeed_fails_the_run_and_records_and_notifies_it(world):
    inject(world, {"code": "UnauthorizedOperation", "message": "You are not authorized to perform this operation.",
                   "times": -1})
    try:
        described = wait(world, start(world, "cannot-launch", interval="daily", workers=2), timeout=120)
    finally:
        inject(world)
    assert described["status"] == "FAILED"
    assert world.fleet.of_execution("cannot-launch") == [], "nothing was launched"
    (record,) = history(world, "cannot-launch")
    assert record["status"] == "failed" and "not authorized" in record["error"]
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: FAILED") and "not authorized" in note["message"]
    assert not (world.id_dir / ".efs-backup" / "lock").exists()


def test_a_restore_request_of_70_kb_launches_and_its_big_summary_does_not_fail_it(world):
    names = sorted(p.name for p in (world.id_dir / "daily.0" / "many").iterdir())
    assert len(names) == PATHS
    paths = [f"many/{name}" for name in names]
    request = {"snapshot": "latest", "paths": paths, "workers": 2}
    assert len(json.dumps(request)) > 70_000, "far beyond what user data (16 KB) or Base64Encode (10,000) could carry"
    execution = world.sfn.start_execution(stateMachineArn=world.restore_arn, name="restore-big",
                                          input=json.dumps(request))["executionArn"]
    described = wait(world, execution, timeout=180)
    assert described["status"] == "SUCCEEDED", worker_log(world, "restore-big", world.restore_arn)
    restored = tree(world.source / "efs-backup-restore" / "restore-big")
    assert restored == {k: v for k, v in tree(world.id_dir / "daily.0").items() if k.startswith("many/")}
    # The user data is the bootstrap and a pointer: the same size whatever the request.
    for instance in world.fleet.of_execution("restore-big"):
        user_data = (instance.home / "user-data").read_text()
        assert len(user_data.encode()) < 2048 and "many/" not in user_data
    # The summary lists every path (too much for a message): the task output was bounded, the run stays a
    # success, the full summary is on the backup file system.
    summary = json.loads(described["output"])["summary"]
    assert summary["status"] == "success" and summary["truncated"]["original_bytes"] > 32 * 1024
    assert len(json.dumps(summary, sort_keys=True).encode()) <= 32 * 1024
    assert "history/restore-big.json" in summary["truncated"]["note"]
    full = json.loads((world.id_dir / ".efs-backup" / "history" / "restore-big.json").read_text())
    assert full["paths"] == paths and full["totals"] == summary["totals"]
    (record,) = history(world, "restore-big")
    assert record["status"] == "success" and json.loads(record["summary"])["truncated"]
    assert_all_terminated(world, "restore-big")
    assert task_objects(world) == []
    (note,) = notifications(world)
    assert note["subject"].endswith("restore: success")


# Root without these capabilities cannot read a root-owned mode-000 file: what a root-squashing NFS server does to
# the files only their owners may read.
SQUASHED = ["setpriv", "--inh-caps=-dac_read_search,-dac_override", "--bounding-set=-dac_read_search,-dac_override"]


def test_a_promoted_backup_whose_summary_is_too_big_for_a_message_stays_a_success(world):
    # 60 directories of 200 entries (the engine's smallest part, MIN_UNIT_FILES): each a part of its own, each with
    # unreadable files whose whole path (rsync names it) is long: the summary lists 50 warning parts, 5 messages each.
    deep = "/".join(["d" * 200] * 5)
    for part in range(60):
        top = world.source / f"squashed-{part:02d}"
        directory = top / deep
        directory.mkdir(parents=True)
        for index in range(200):
            (top / f"f{index:03d}").write_text(f"{index}\n")
        for index in range(6):
            unreadable = directory / f"unreadable-{index}-{'x' * 200}"
            unreadable.write_text("secret\n")
            unreadable.chmod(0)
    world.fleet.command_prefix = lambda instance: SQUASHED if instance.execution == "big-summary" else []
    try:
        described = wait(world, start(world, "big-summary", interval="daily", workers=2), timeout=300)
    finally:
        world.fleet.command_prefix = lambda instance: []
    assert described["status"] == "SUCCEEDED", worker_log(world, "big-summary")
    summary = json.loads(described["output"])["summary"]
    assert summary["status"] == "warning" and summary["snapshot"] == "daily.0"
    assert summary["truncated"]["original_bytes"] > 256 * 1024, "too big for SendTaskSuccess (the shim refuses it)"
    assert len(json.dumps(summary, sort_keys=True).encode()) <= 32 * 1024
    full = json.loads((world.id_dir / ".efs-backup" / "history" / "big-summary.json").read_text())
    assert full["snapshot_id"] == summary["snapshot_id"] and len(full["warning_parts"]) == 50
    assert (world.id_dir / "daily.0" / "alpha" / "file0.txt").read_text() == "alpha 0\n", "promoted"
    manifest = json.loads((world.id_dir / ".efs-backup" / "manifests" / "daily.0.json").read_text())
    assert manifest["snapshot_id"] == summary["snapshot_id"]
    (record,) = history(world, "big-summary")
    assert record["status"] == "warning" and json.loads(record["summary"])["truncated"]
    notifications(world)
