"""The operator CLI end to end against moto: the synthesized ``example`` stack deployed into moto's CloudFormation,
its real state machine executing, the simulated worker fleet running the real user data, worker.sh and engine
(tests/orchestration/moto_world.py). The CLI finds everything from ``--env example`` (cdk.json through
stacks.config.load_config) and the stack outputs, exactly as against AWS.

Two real backup executions (one started without waiting, one followed with ``run --wait``) and one refused as
``already-running``, then a restore's dry run and a confirmed restore on the real restore state machine; the
scenarios build on each other in file order. The error paths need no execution; the confirmation scenarios
(refused without a terminal after the plan, typing the backup id before an in-place mirror restore) run on the real
restore state machine too.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_world import cli_world, run_cli
from moto_world import can_bind_mount

ENV = ("--env", "example")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if not can_bind_mount(tmp_path_factory.mktemp("probe")):
        pytest.skip("the mount seam binds local directories: needs root and mount(2)")
    with cli_world(tmp_path_factory.mktemp("cli-moto")) as built:
        yield built


def cli(world, monkeypatch, *argv, env=None, stdin=None):
    return run_cli(monkeypatch, env if env is not None else world.env(), *argv, stdin=stdin)


def tree(path):
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def history(world):
    """The run records of the backup-id (the table also holds the run metrics' '<backup-id>#latest' items)."""
    items = world.moto.client("dynamodb").scan(TableName=world.table)["Items"]
    rows = [{k: next(iter(v.values())) for k, v in item.items()} for item in items]
    return [row for row in rows if row["backup_id"] == world.synth.config.backup_id]


def wait_for(world, name, timeout=90):
    sfn = world.moto.client("stepfunctions")
    arn = world.arn.replace(":stateMachine:", ":execution:") + ":" + name
    deadline = time.time() + timeout
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.time() < deadline, f"{name} still running"
        time.sleep(0.3)
    world.fleet.wait_idle()
    return sfn.describe_execution(executionArn=arn)


# ------------------------------------------------------------------------------------------ errors, no execution


def test_unknown_environment_lists_the_known_ones(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, "--env", "staging", "status")
    assert code == 5 and out == ""
    assert "unknown environment 'staging'" in err and "example, production-eu" in err


def test_missing_credentials(world, monkeypatch):
    env = {k: v for k, v in world.env().items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    code, _, err = cli(world, monkeypatch, *ENV, "status", env=env)
    assert code == 5 and "no AWS credentials" in err


def test_stack_not_deployed_names_stack_region_and_deploy_command(world, monkeypatch):
    code, _, err = cli(world, monkeypatch, *ENV, "-c", "stack_name=EfsBackup-elsewhere", "list")
    assert code == 5
    assert "stack EfsBackup-elsewhere is not deployed in us-east-1" in err
    assert "npx cdk deploy -c env=example" in err


def test_unused_interval_is_refused(world, monkeypatch):
    code, _, err = cli(world, monkeypatch, *ENV, "run", "--interval", "hourly")
    assert code == 3 and "retain_hourly is 0" in err


def test_usage_errors_exit_64(world, monkeypatch):
    assert cli(world, monkeypatch, *ENV, "run", "--interval", "yearly")[0] == 64
    assert cli(world, monkeypatch, *ENV, "restore")[0] == 64  # one of --snapshot/--snapshot-id/--at


def test_restore_with_nothing_to_restore(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "latest", "--yes")
    assert code == 3 and out == ""
    assert "nothing to restore" in err
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--at", "2026-01-01T00:00:00Z", "--dry-run")
    assert code == 3 and "nothing to restore" in err


def test_list_and_status_before_any_run(world, monkeypatch):
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "list")
    assert code == 0 and json.loads(out) == {"snapshots": []}
    code, out, err = cli(world, monkeypatch, *ENV, "status", "--json")
    assert code == 2, err
    status = json.loads(out)
    assert [i["interval"] for i in status["intervals"]] == ["daily", "weekly", "monthly"]
    assert all(i["stale"] and i["last"] is None for i in status["intervals"])


# ------------------------------------------------------------------------------------------ real executions


def test_run_without_wait_then_a_second_run_is_busy(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily")
    assert code == 0, err
    first = json.loads(out)
    assert first["execution"].startswith("manual-daily-")
    assert first["input"] == {"interval": "daily"}, "no retain: the deployed state machine has retain_daily"
    world.state["first"] = first["execution"]
    # The first must have counted the running executions before the second starts (moto parses each definition
    # when an execution starts, which takes seconds on a loaded machine: otherwise the first may see the second
    # and end as already-running itself).
    sfn = world.moto.client("stepfunctions")
    first_arn = world.arn.replace(":stateMachine:", ":execution:") + ":" + first["execution"]
    deadline = time.time() + 60
    while not any(e.get("stateExitedEventDetails", {}).get("name") == "FindRunningExecutions"
                  for e in sfn.get_execution_history(executionArn=first_arn, maxResults=1000)["events"]):
        assert time.time() < deadline, "the first execution never got past FindRunningExecutions"
        time.sleep(0.2)
    time.sleep(1.1)  # execution names carry the second
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily", "--wait")
    assert code == 4, err
    assert json.loads(out)["outcome"] == "already-running"
    assert wait_for(world, first["execution"])["status"] == "SUCCEEDED"


def test_run_wait_reports_progress_and_the_outcome(world, monkeypatch):
    (world.source / "beta" / "file1.txt").write_text("beta changed v2\n")
    (world.source / "gamma").mkdir()
    (world.source / "gamma" / "new.txt").write_text("new\n")
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily", "--workers", "2",
                         "--wait", "--timeout", "120")
    assert code == 0, err
    result = json.loads(out)
    world.fleet.wait_idle()
    assert result["outcome"] == "success" and result["summary"]["snapshot"] == "daily.0"
    assert result["record"]["status"] == "success" and result["record"]["execution"] == result["execution"]
    assert "workers reported 2/2" in err and "transferred" in err, err
    assert "workers reported 0/2" in err, "progress was reported while the run went on"
    world.state["second"] = result["execution"]
    world.state["second_id"] = result["summary"]["snapshot_id"]
    # Human mode: the outcome line on stdout.
    assert out.count("\n") == 1, "--json: one document on stdout"


def test_list_names_snapshots_from_the_history(world, monkeypatch):
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "list", "--interval", "daily")
    assert code == 0
    rows = json.loads(out)["snapshots"]
    records = {r["execution"]: json.loads(r["summary"]) for r in history(world) if r["status"] == "success"}
    assert [r["name"] for r in rows] == ["daily.0", "daily.1"]
    assert [r["execution"] for r in rows] == [world.state["second"], world.state["first"]]
    assert [r["snapshot_id"] for r in rows] == [records[world.state["second"]]["snapshot_id"],
                                                records[world.state["first"]]["snapshot_id"]]
    assert rows[0]["snapshot_id"] == world.state["second_id"]
    assert rows[0]["files"] == records[world.state["second"]]["totals"]["files_scanned"]
    code, text, _ = cli(world, monkeypatch, *ENV, "list")
    assert code == 0 and "daily.1" in text and world.state["second_id"] in text
    # With retain_daily 1 only the newest is kept.
    code, out, _ = cli(world, monkeypatch, *ENV, "-c", "retain_daily=1", "--json", "list")
    assert [r["name"] for r in json.loads(out)["snapshots"]] == ["daily.0"]


def test_status_shows_last_outcomes_and_ages(world, monkeypatch):
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "status")
    status = json.loads(out)
    assert status["running"] == [] and status["backup_id"] == "fs-12345678"
    daily = next(i for i in status["intervals"] if i["interval"] == "daily")
    assert daily["last"]["execution"] == world.state["second"] and daily["last"]["status"] == "success"
    assert not daily["stale"] and 0 <= daily["newest_age_seconds"] < 600
    assert code == 2, "weekly and monthly never ran: stale"
    code, text, _ = cli(world, monkeypatch, *ENV, "status")
    assert "STALE" in text and world.state["second"] in text


def test_logs_of_an_execution_in_order(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "logs", "--last")
    assert code == 0, err
    logs = json.loads(out)
    assert logs["execution"] == world.state["second"]
    names = [s["name"] for s in logs["streams"]]
    assert names == [f"{world.state['second']}/work-0", f"{world.state['second']}/work-1",
                     f"{world.state['second']}/finalize-0"]
    assert all(s["events"] for s in logs["streams"])
    assert any("role work" in e["message"] for e in logs["streams"][0]["events"])
    code, text, _ = cli(world, monkeypatch, *ENV, "logs", "--execution", world.state["first"], "--role", "finalize")
    assert code == 0 and text.startswith(f"==> {world.state['first']}/finalize-0 <==")
    code, _, err = cli(world, monkeypatch, *ENV, "logs", "--execution", "no-such-run")
    assert code == 3 and "no worker log streams" in err


def test_restore_request_errors(world, monkeypatch):
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "daily.9")
    assert code == 3 and "no snapshot daily.9" in err
    # A stack deployed before the restore workflow existed has no RestoreStateMachineArn output.
    import efs_backup_cli.main as cli_main

    real_connect = cli_main.connect

    def older_stack(*args, **kwargs):
        deployment = real_connect(*args, **kwargs)
        deployment.outputs.pop("RestoreStateMachineArn")
        return deployment

    monkeypatch.setattr(cli_main, "connect", older_stack)
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--yes")
    assert code == 5 and "has no output RestoreStateMachineArn" in err and "npx cdk deploy -c env=example" in err


def test_restore_dry_run_shows_the_plan(world, monkeypatch):
    """The real restore state machine: a dry run of one path of daily.1, passed by its snapshot id."""
    first_id = json.loads(next(r for r in history(world) if r["execution"] == world.state["first"])["summary"])[
        "snapshot_id"]
    # A fresh production file system: no /efs-backup-restore yet (the dry run plans for it, the real run creates it).
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "daily.1", "--path", "alpha",
                         "--dry-run")
    assert code == 0, err
    result = json.loads(out)
    assert result["request"]["snapshot"] == f"id:{first_id}" and result["request"]["dry_run"] is True
    expected = {k: v for k, v in tree(world.id_dir / "daily.1").items() if k.startswith("alpha/")}
    plan = result["plan"]["plan"]
    assert (plan["create"]["files"], plan["create"]["bytes"]) == (len(expected), sum(map(len, expected.values())))
    assert plan["delete"]["files"] == 0 and result["plan"]["snapshot_id"] == first_id
    assert not (world.source / "efs-backup-restore").exists(), "a dry run creates nothing"
    world.state["first_id"] = first_id


def test_restore_with_yes_restores_into_a_new_directory(world, monkeypatch):
    time.sleep(1.05)  # execution names carry the second
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot-id", world.state["first_id"],
                         "--path", "alpha", "--yes", "--timeout", "120")
    assert code == 0, err
    result = json.loads(out)
    world.fleet.wait_idle()
    name = result["execution"]
    assert result["request"] == {"snapshot": f"id:{world.state['first_id']}", "paths": ["alpha"], "mirror": False,
                                 "dry_run": False}, "the default target is the state machine's"
    assert result["target"] == f"/efs-backup-restore/{name}"
    assert result["outcome"] == "success" and result["summary"]["dry_run"] is False
    restored = tree(world.source / "efs-backup-restore" / name)
    assert restored == {k: v for k, v in tree(world.id_dir / "daily.1").items() if k.startswith("alpha/")}
    assert "restore plan" in err and "workers reported" in err
    (record,) = [r for r in history(world) if r["execution"] == name]
    assert record["kind"] == "restore" and record["status"] == "success"
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "list")
    assert [r["execution"] for r in json.loads(out)["snapshots"]] == [world.state["second"], world.state["first"]], \
        "restores are not snapshots"
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--in-place", "--target-path", "/x", "--snapshot", "daily.0")
    assert code == 64


# A backup run of another execution (here: this test process's child) holding the backup-id's lock, alive on this
# host; it releases the lock when terminated.
HOLD_LOCK = """
import signal, sys, time
sys.path.insert(0, sys.argv[3])
from efs_backup_engine.layout import Layout
from efs_backup_engine.lock import RunLock
lock = RunLock(Layout(sys.argv[1], sys.argv[2]))
lock.acquire("held-by-the-test", "daily")
signal.signal(signal.SIGTERM, lambda *_: (lock.release("held-by-the-test"), sys.exit(0)))
print("locked", flush=True)
time.sleep(600)
"""
SCRIPTS = Path(__file__).resolve().parents[2] / "assets" / "scripts"


def test_a_restore_while_another_run_holds_the_lock_exits_busy(world, monkeypatch):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(world.backup), world.synth.config.backup_id,
                               str(SCRIPTS)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        time.sleep(1.05)  # execution names carry the second
        code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--path", "alpha",
                           "--dry-run")
        world.fleet.wait_idle()
    finally:
        holder.terminate()
        holder.wait(10)
    assert code == 4 and "EngineBusy" in err, err
    assert not (world.id_dir / ".efs-backup" / "lock").exists(), "the holder released its lock"


# ------------------------------------------------------------------------------------------ confirmations
# On the real restore state machine too: the dry run launches workers, and only a confirmed restore follows it.


def restore_executions(world):
    sfn = world.moto.client("stepfunctions")
    return sorted(e["name"] for e in sfn.list_executions(stateMachineArn=world.restore_arn)["executions"])


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_restore_refuses_without_a_terminal_and_without_yes_after_the_plan(world, monkeypatch):
    time.sleep(1.05)  # execution names carry the second
    before = restore_executions(world)
    code, out, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--path", "beta")
    world.fleet.wait_idle()
    assert code == 3 and "stdin is not a terminal" in err and "restore plan" in err
    started = sorted(set(restore_executions(world)) - set(before))
    assert len(started) == 1 and started[0].endswith("-plan"), "only the dry run ran"


def test_in_place_mirror_asks_for_the_backup_id_then_makes_the_path_exact(world, monkeypatch):
    beta = world.source / "beta"
    (beta / "file0.txt").write_text("edited after the backups: newer than every snapshot\n")
    (beta / "extra.txt").write_text("created after the backups\n")
    outside = world.source / "outside-the-path.txt"
    outside.write_text("never touched by a restore of beta\n")
    time.sleep(1.05)
    before = restore_executions(world)
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "daily.0", "--path", "beta", "--in-place",
                       "--mirror", stdin=Terminal("yes\n"))
    world.fleet.wait_idle()
    assert code == 3 and "type the backup id (fs-12345678)" in err and "declined" in err
    assert all(n.endswith("-plan") for n in set(restore_executions(world)) - set(before)), "declined: plan only"
    assert (beta / "extra.txt").exists()
    time.sleep(1.05)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "daily.0", "--path", "beta",
                         "--in-place", "--mirror", "--timeout", "120", stdin=Terminal("fs-12345678\n"))
    world.fleet.wait_idle()
    assert code == 0, err
    result = json.loads(out)
    assert result["request"]["target_path"] == "/" and result["request"]["mirror"] is True
    plan = result["summary"]["plan"]
    assert plan["delete"]["files"] == 1 and plan["overwrite"]["files"] == 1, plan
    snapshot = {k: v for k, v in tree(world.id_dir / "daily.0").items() if k.startswith("beta/")}
    assert {k: v for k, v in tree(world.source).items() if k.startswith("beta/")} == snapshot, "beta is exact"
    assert outside.exists(), "nothing outside the chosen path is touched"
