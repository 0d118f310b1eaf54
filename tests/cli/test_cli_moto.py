"""The operator CLI end to end against moto: the synthesized ``example`` stack deployed into moto's CloudFormation,
its real state machine executing, the simulated worker fleet running the real user data, worker.sh and engine
(tests/orchestration/moto_world.py). The CLI finds the stack from ``--env example`` (the repository's cdk.json, read
as plain JSON for the stack name and region), everything else from the stack's outputs and deployed template, exactly
as against AWS (tests/cli/test_cli_standalone.py: without cdk.json, installed on its own).

Two real backup executions (one started without waiting, one queued behind it and followed with ``run --queue
--wait``: its live progress lines are asserted) and one refused before starting because the first was running,
then a restore's dry run and a confirmed restore on the real restore state machine, restores started with
``--no-wait`` and followed with ``follow``, and finally a weekly run whose wait times out (the JSON error still
names the execution); the scenarios build on each other in file order. The error paths need no execution (each
also checks that nothing was started); the confirmation scenarios (refused without a terminal after the plan,
typing the backup id before an in-place mirror restore) run on the real restore state machine too.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_world import cli_world, run_cli
from efs_backup_cli.planner import format_bytes
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


def backup_executions(world):
    sfn = world.moto.client("stepfunctions")
    return sorted(e["name"] for e in sfn.list_executions(stateMachineArn=world.arn)["executions"])


def restore_executions(world):
    sfn = world.moto.client("stepfunctions")
    return sorted(e["name"] for e in sfn.list_executions(stateMachineArn=world.restore_arn)["executions"])


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
    assert code == 3 and "nothing to restore" in err
    assert json.loads(out) == {"error": err.strip().removeprefix("efs-backup: "), "exit_code": 3}
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--at", "2026-01-01T00:00:00Z", "--dry-run")
    assert code == 3 and "nothing to restore" in err


@pytest.mark.parametrize("argv, message", [
    (("--at", "yesterday"), "--at 'yesterday': expected an ISO time"),
    (("--snapshot", "daily.x"), "--snapshot 'daily.x': expected <interval>.<n>"),
    (("--snapshot-id", "a b"), "--snapshot-id 'a b': expected the id shown by `efs-backup list`"),
    (("--snapshot", "latest", "--path", "../etc"), "--path '../etc': expected a path inside the snapshot"),
    (("--snapshot", "latest", "--target-file-system", "fs-0123456789abcdef0"),
     "--target-file-system fs-0123456789abcdef0 is neither production (fs-12345678) nor in "
     "restore_target_file_systems"),
])
def test_restore_names_what_is_wrong_before_reading_the_history(world, monkeypatch, argv, message):
    """No history yet: an invalid request is still told what is wrong with it, not 'nothing to restore'."""
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", *argv, "--dry-run")
    assert code == 3, err
    assert message in err and "nothing to restore" not in err
    document = json.loads(out)
    assert message in document["error"] and document["exit_code"] == 3
    assert restore_executions(world) == [], "nothing was started"


def test_list_and_status_before_any_run(world, monkeypatch):
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "list")
    assert code == 0 and json.loads(out) == {"snapshots": []}
    code, out, err = cli(world, monkeypatch, *ENV, "status", "--json")
    assert code == 2, err
    status = json.loads(out)
    assert [i["interval"] for i in status["intervals"]] == ["daily", "weekly", "monthly"]
    assert all(i["freshness"] == "never-run" and not i["stale"] and i["last"] is None for i in status["intervals"])
    assert status["stale_multiple"] == 2
    assert [i["stale_after_seconds"] for i in status["intervals"]] == [2 * 86400, 2 * 7 * 86400, 2 * 31 * 86400]
    code, text, _ = cli(world, monkeypatch, *ENV, "status")
    assert code == 2 and "STALE" not in text
    assert text.count("never run: no snapshot yet") == 3, text
    # The deployment's alarm_stale_multiple, not a fixed 2 x.
    code, out, _ = cli(world, monkeypatch, *ENV, "-c", "alarm_stale_multiple=3", "--json", "status")
    assert json.loads(out)["intervals"][0]["stale_after_seconds"] == 3 * 86400


@pytest.mark.parametrize("key, closest", [("retain_dayly", "retain_daily"), ("RetainDaily", "retain_daily"),
                                          ("worker-count", "worker_count"), ("alarm_stale_multipel",
                                                                             "alarm_stale_multiple")])
def test_an_unknown_context_key_is_an_error_naming_the_closest_key(world, monkeypatch, key, closest):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "-c", f"{key}=3", "list")
    assert code == 64, err
    assert f"-c {key}: unknown configuration key; did you mean '{closest}'?" in err
    assert json.loads(out)["exit_code"] == 64 and closest in json.loads(out)["error"]
    code, _, err = cli(world, monkeypatch, *ENV, "-c", "nothing_like_it=1", "status")
    assert code == 64 and "unknown configuration key" in err and "did you mean" not in err


def test_workers_beyond_the_limit_are_refused_before_starting(world, monkeypatch):
    from efs_backup_contract.limits import MAX_WORKERS

    for argv in (("run", "--interval", "daily"), ("restore", "--snapshot", "latest", "--dry-run")):
        code, out, err = cli(world, monkeypatch, *ENV, "--json", *argv, "--workers", "500")
        assert code == 64, err
        assert f"500 is more than {MAX_WORKERS}, the most workers a run takes" in err
        assert json.loads(out)["exit_code"] == 64
    code, _, err = cli(world, monkeypatch, *ENV, "run", "--interval", "daily", "--workers", "0")
    assert code == 64 and "must be at least 1" in err
    assert backup_executions(world) == [] and restore_executions(world) == [], "nothing was started"


def test_a_stack_without_outputs_says_what_is_missing(world, monkeypatch):
    import efs_backup_cli.main as cli_main

    real_connect = cli_main.connect

    def without(*keys):
        def connect(*args, **kwargs):
            deployment = real_connect(*args, **kwargs)
            for key in keys or list(deployment.outputs):
                deployment.outputs.pop(key)
            return deployment
        return connect

    monkeypatch.setattr(cli_main, "connect", without())
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "status")
    assert code == 5
    assert "stack EfsBackup-example in us-east-1 (CREATE_COMPLETE) has no outputs at all" in err
    assert "cannot find StateMachineArn" in err and "older version" not in err
    assert json.loads(out)["missing_output"] == "StateMachineArn"
    monkeypatch.setattr(cli_main, "connect", without("RunHistoryTableName"))
    code, _, err = cli(world, monkeypatch, *ENV, "list")
    assert code == 5 and "has no output RunHistoryTableName (it has " in err and "StateMachineArn" in err


def test_logs_of_an_execution_that_does_not_exist(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "logs", "--execution", "nosuch")
    assert code == 3
    assert "no execution nosuch in the backup or restore state machine of stack EfsBackup-example" in err
    assert "no worker log streams" not in err and json.loads(out)["exit_code"] == 3
    code, _, err = cli(world, monkeypatch, *ENV, "follow", "nosuch")
    assert code == 3 and "no execution nosuch" in err


# ------------------------------------------------------------------------------------------ real executions


PROGRESS_LINE = re.compile(r"^  \[(?P<elapsed>[0-9hms]+)\] (?P<status>[A-Z]+)(?: in (?P<state>\w+))?: "
                           r"workers (?P<launched>\d+) launched, (?P<reported>\d+)/(?P<total>\d+) reported; "
                           r"parts (?P<parts>\d+(?:/\d+)? done(?: \(total known at finalize\))?); "
                           r"(?P<files>[\d,]+) files scanned; (?P<bytes>.+) transferred$")


def seconds(clock):
    """'4m05s' -> 245."""
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", clock))


def test_a_second_run_is_refused_while_one_runs_then_queued_and_followed_live(world, monkeypatch):
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily")
    assert code == 0, err
    first = json.loads(out)
    assert first["execution"].startswith("manual-daily-")
    assert first["input"] == {"interval": "daily"}, "no retain: the deployed state machine has retain_daily"
    assert f"follow it with `efs-backup follow {first['execution']}`" in err
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
    # Refused before starting: the running one is named, with its start time and how to follow it.
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily", "--wait")
    assert code == 4, err
    refused = json.loads(out)
    assert refused["exit_code"] == 4 and refused["running"][0]["name"] == first["execution"]
    assert refused["running"][0]["kind"] == "backup" and refused["running"][0]["started"].endswith("Z")
    assert f"a backup of backup-id fs-12345678 is running: {first['execution']}, started " in err
    assert f"follow it with `efs-backup follow {first['execution']}`" in err and "--queue" in err
    assert backup_executions(world) == [first["execution"]], "nothing was started"
    # --queue waits for it, then starts; --wait shows live progress (plain lines: no terminal here).
    (world.source / "beta" / "file1.txt").write_text("beta changed v2\n")
    (world.source / "gamma").mkdir()
    (world.source / "gamma" / "new.txt").write_text("new\n")
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "daily", "--workers", "2",
                         "--queue", "--wait", "--timeout", "3m", "--progress-interval", "1s")
    assert code == 0, err
    world.fleet.wait_idle()
    assert f"queued: waiting for backup {first['execution']}" in err
    assert wait_for(world, first["execution"])["status"] == "SUCCEEDED"
    result = json.loads(out)
    assert out.count("\n") == 1, "--json: one document on stdout"
    assert result["outcome"] == "success" and result["summary"]["snapshot"] == "daily.0"
    assert result["record"]["status"] == "success" and result["record"]["execution"] == result["execution"]
    lines = [PROGRESS_LINE.match(line) for line in err.splitlines() if line.startswith("  [")]
    assert lines and all(lines), err
    running = [m for m in lines if m["status"] == "RUNNING"]
    assert len(running) >= 2, "a line per poll while it runs (--progress-interval 1s)"
    assert any(m["state"] == "LaunchWorker" for m in running), "the state the execution is in"
    assert all(m["total"] == "2" for m in lines)
    clocks = [seconds(m["elapsed"]) for m in lines]
    assert clocks == sorted(clocks), "elapsed time only grows"
    last = lines[-1]
    summary, totals = result["summary"], result["summary"]["totals"]
    assert last["status"] == "SUCCEEDED" and last["state"] is None
    assert (last["launched"], last["reported"]) == ("2", "2")
    assert last["parts"] == f"{summary['parts']}/{summary['parts']} done", "parts done/total from the summary"
    assert last["files"] == f"{totals['files_scanned']:,}", "the workers' reports add up to the run's totals"
    assert last["bytes"] == format_bytes(totals["bytes_transferred"])
    world.state["second"] = result["execution"]
    world.state["second_id"] = result["summary"]["snapshot_id"]


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
    assert daily["freshness"] == "fresh" and not daily["stale"] and 0 <= daily["newest_age_seconds"] < 600
    assert [i["freshness"] for i in status["intervals"][1:]] == ["never-run", "never-run"]
    assert code == 2, "weekly and monthly never ran"
    code, text, _ = cli(world, monkeypatch, *ENV, "status")
    assert "STALE" not in text and world.state["second"] in text
    assert re.search(r"daily +last success \(manual-daily-\w+, \d+ workers? x \d+ streams?\); "
                     r"newest snapshot 0m\d\ds old", text), text
    assert re.search(r"weekly +never run: no snapshot yet", text), text


def test_status_judges_staleness_by_the_deployments_alarm_stale_multiple(world, monkeypatch):
    """Three days later the daily snapshot is older than 2 x 24 h (the example's alarm_stale_multiple), not older
    than 4 x 24 h."""
    import efs_backup_cli.main as cli_main

    later = time.time() + 3 * 86400
    monkeypatch.setattr(cli_main, "_now", lambda: later)
    code, text, _ = cli(world, monkeypatch, *ENV, "status")
    assert code == 2
    assert re.search(r"daily .* newest snapshot 72h0\dm old  STALE \(older than 2 x the interval = 48h00m, "
                     r"alarm_stale_multiple\)", text), text
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "-c", "alarm_stale_multiple=4", "status")
    daily = json.loads(out)["intervals"][0]
    assert daily["freshness"] == "fresh" and daily["stale_after_seconds"] == 4 * 86400
    # An interval without a schedule has no stale alarm: its age is shown, not judged.
    code, text, _ = cli(world, monkeypatch, *ENV, "-c", "schedule_daily=none", "status")
    assert "STALE" not in text and "(no schedule: not checked for staleness)" in text, text


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
    code, _, err = cli(world, monkeypatch, *ENV, "logs", "--execution", world.state["first"], "--role", "abort")
    assert code == 3 and f"execution {world.state['first']} has no worker log streams of role abort" in err
    code, _, err = cli(world, monkeypatch, *ENV, "logs", "--execution", "no-such-run")
    assert code == 3 and "no execution no-such-run in the backup or restore state machine" in err


def test_restore_request_errors(world, monkeypatch):
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "daily.9")
    assert code == 3 and "no snapshot daily.9" in err
    # An id the run history does not have starts nothing (a plan execution launches EC2 on AWS).
    before = restore_executions(world)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot-id", "abc123", "--yes")
    assert code == 3 and "no snapshot with id abc123 in the run history of backup-id fs-12345678" in err
    assert json.loads(out)["exit_code"] == 3
    first_id = json.loads(next(r for r in history(world) if r["execution"] == world.state["first"])["summary"])[
        "snapshot_id"]
    code, _, err = cli(world, monkeypatch, *ENV, "-c", "retain_daily=1", "restore", "--snapshot-id", first_id,
                       "--dry-run")
    assert code == 3 and f"snapshot id {first_id} (daily, run {world.state['first']}) has expired" in err
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--no-wait")
    assert code == 64 and "--no-wait cannot wait for your confirmation" in err
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--mirror", "--yes", "--no-wait")
    assert code == 64 and "a --mirror restore deletes" in err
    assert restore_executions(world) == before, "nothing was started"
    # A stack deployed before the restore workflow existed has no RestoreStateMachineArn output.
    import efs_backup_cli.main as cli_main

    real_connect = cli_main.connect

    def older_stack(*args, **kwargs):
        deployment = real_connect(*args, **kwargs)
        deployment.outputs.pop("RestoreStateMachineArn")
        return deployment

    monkeypatch.setattr(cli_main, "connect", older_stack)
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--snapshot", "latest", "--yes")
    assert code == 5 and "has no output RestoreStateMachineArn (it has " in err
    assert "npx cdk deploy -c env=example" in err


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
    assert "restore plan" in err and re.search(r"workers 1 launched, 1/1 reported", err), err
    (record,) = [r for r in history(world) if r["execution"] == name]
    assert record["kind"] == "restore" and record["status"] == "success"
    code, out, _ = cli(world, monkeypatch, *ENV, "--json", "list")
    assert [r["execution"] for r in json.loads(out)["snapshots"]] == [world.state["second"], world.state["first"]], \
        "restores are not snapshots"
    code, _, err = cli(world, monkeypatch, *ENV, "restore", "--in-place", "--target-path", "/x", "--snapshot", "daily.0")
    assert code == 64


def test_restore_no_wait_returns_at_once_and_follow_shows_the_plan_and_the_outcome(world, monkeypatch):
    """--dry-run --no-wait starts the dry run and returns; --yes --no-wait starts the restore itself, pinned to the
    snapshot id of the run history, without a dry run to wait for. `follow` shows each one's plan or outcome."""
    sfn = world.moto.client("stepfunctions")
    time.sleep(1.05)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "daily.1", "--path", "alpha",
                         "--dry-run", "--no-wait")
    assert code == 0, err
    started = json.loads(out)
    plan_name = started["plan_execution"]
    assert sfn.describe_execution(executionArn=started["execution_arn"])["status"] == "RUNNING", \
        "the CLI returned while the dry run runs"
    assert f"see the plan with `efs-backup follow {plan_name}`" in err
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "follow", plan_name, "--timeout", "2m")
    assert code == 0, err
    followed = json.loads(out)
    world.fleet.wait_idle()
    expected = {k: v for k, v in tree(world.id_dir / "daily.1").items() if k.startswith("alpha/")}
    assert followed["status"] == "SUCCEEDED" and followed["request"]["dry_run"] is True
    assert followed["plan"]["plan"]["create"]["files"] == len(expected)
    assert f"following restore {plan_name}" in err and "SUCCEEDED: workers 1 launched, 1/1 reported" in err

    time.sleep(1.05)
    before = restore_executions(world)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "daily.0", "--path", "gamma",
                         "--yes", "--no-wait")
    assert code == 0, err
    started = json.loads(out)
    name = started["execution"]
    assert set(restore_executions(world)) - set(before) == {name}, "no dry run: the restore itself"
    assert started["request"] == {"snapshot": f"id:{world.state['second_id']}", "paths": ["gamma"],
                                  "mirror": False, "dry_run": False}, "pinned to daily.0's id from the history"
    assert sfn.describe_execution(executionArn=started["execution_arn"])["status"] == "RUNNING"
    assert f"follow it with `efs-backup follow {name}`" in err
    code, text, err = cli(world, monkeypatch, *ENV, "follow", name, "--timeout", "2m")
    world.fleet.wait_idle()
    assert code == 0, err
    assert text.startswith(f"{name}: success, 1 file (4 B)") and f"restored into /efs-backup-restore/{name}" in text
    assert tree(world.source / "efs-backup-restore" / name) == {
        k: v for k, v in tree(world.id_dir / "daily.0").items() if k.startswith("gamma/")}


# A backup run of another execution (here: this test process's child) holding the backup-id's lock, alive on this
# host; it releases the lock when terminated.
HOLD_LOCK = """
import signal, sys, time
# a child process, outside pytest and its pythonpath: it is handed the folder of the engine package
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


# ------------------------------------------------------------------------------------------ timeouts


def test_a_wait_that_times_out_still_names_the_execution_in_json(world, monkeypatch):
    """The run goes on; the one JSON document says so and names it, and `follow` picks it up to its end."""
    time.sleep(1.05)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "run", "--interval", "weekly", "--wait", "--timeout",
                         "0.5s")
    assert code == 1, err
    document = json.loads(out)
    name = document["execution"]
    assert name.startswith("manual-weekly-") and document["execution_arn"].endswith(":" + name)
    assert document["exit_code"] == 1
    assert document["error"] == (f"execution {name} still running after 0.5s; it goes on: follow it with "
                                 f"`efs-backup follow {name}`")
    # A restore now would need the lock that run holds: refused before its dry run launches anything.
    before = restore_executions(world)
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "restore", "--snapshot", "daily.0", "--path", "alpha",
                         "--dry-run")
    assert code == 4, err
    assert json.loads(out)["running"][0]["name"] == name and f"a backup of backup-id fs-12345678 is running: {name}" \
        in err
    assert restore_executions(world) == before, "nothing was started"
    code, out, err = cli(world, monkeypatch, *ENV, "--json", "follow", "--timeout", "2m")
    world.fleet.wait_idle()
    assert code == 0, err
    followed = json.loads(out)
    assert followed["execution"] == name and followed["outcome"] == "success"
    assert followed["summary"]["snapshot"] == "weekly.0"
    # Following an execution that ended shows its outcome at once.
    totals = followed["summary"]["totals"]
    code, text, err = cli(world, monkeypatch, *ENV, "follow", name)
    assert code == 0, err
    assert re.fullmatch(rf"{name}: success -> weekly\.0 \(id {followed['summary']['snapshot_id']}\) in \d+s: 1 part, "
                        rf"{totals['files_scanned']} files scanned, {totals['files_transferred']} files? transferred "
                        rf"\({re.escape(format_bytes(totals['bytes_transferred']))}\), 0 warnings; the engine ran "
                        rf"\d+s on 1 worker x {followed['summary']['streams_per_worker']} streams?\n", text), text
    assert re.search(r"\[\d+s\] SUCCEEDED: workers 1 launched, 1/1 reported; parts 1/1 done", err), err
