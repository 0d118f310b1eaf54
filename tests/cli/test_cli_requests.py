"""Restore request building (the contract's input), snapshot naming from run-history items, and the argument
layer: exit codes without AWS."""

from __future__ import annotations

import json

import pytest

from efs_backup_cli import history, restore
from efs_backup_cli.errors import EXIT_REFUSED, CliError
from efs_backup_cli.main import main


def test_request_for_a_snapshot_id_into_the_default_directory():
    """The default target is left to the state machine: /efs-backup-restore/<execution name>."""
    assert restore.target_path_for("restore-20261127T120000Z", None, False) is None
    assert restore.default_target("restore-20261127T120000Z") == "/efs-backup-restore/restore-20261127T120000Z"
    assert restore.build_request(snapshot_id="abc123", dry_run=True) == {
        "snapshot": "id:abc123", "mirror": False, "dry_run": True}


def test_request_with_paths_time_target_file_system_workers_and_streams():
    request = restore.build_request(at="2026-11-20", paths=["/projects/a/", "etc/app.conf"], target_path="/",
                                    target_file_system_id="fs-0123456789abcdef0", mirror=True, workers=4, streams=8)
    assert request == {"at": "2026-11-20T00:00:00Z", "paths": ["projects/a", "etc/app.conf"],
                       "target_file_system_id": "fs-0123456789abcdef0", "target_path": "/", "mirror": True,
                       "dry_run": False, "workers": 4, "streams": 8}
    assert restore.build_request(at="2026-11-20T01:00:00+01:00", target_path="/x")["at"] == "2026-11-20T00:00:00Z"


@pytest.mark.parametrize("kwargs, message", [
    ({"snapshot": "daily.x"}, "expected <interval>.<n>"),
    ({"snapshot": "latest", "at": "2026-11-20"}, "exactly one"),
    ({}, "exactly one"),
    ({"at": "yesterday"}, "ISO time"),
    ({"snapshot": "latest", "paths": ["../etc"]}, "inside the snapshot"),
    ({"snapshot": "latest", "target_file_system_id": "fs-nope"}, "fs-<hex id>"),
    ({"snapshot_id": "a b"}, "snapshot-id"),
])
def test_invalid_requests_are_refused(kwargs, message):
    with pytest.raises(CliError, match=message) as raised:
        restore.build_request(target_path="/efs-backup-restore/x", **kwargs)
    assert raised.value.code == EXIT_REFUSED


def test_target_paths():
    assert restore.target_path_for("n", None, True) == "/"
    assert restore.target_path_for("n", "/restored/today/", False) == "/restored/today"
    for bad in ("relative", "/a/../b", "/"):
        with pytest.raises(CliError):
            restore.target_path_for("n", bad, False)
    with pytest.raises(CliError):
        restore.target_path_for("n", "/x", True)


def test_plan_reading():
    summary = {"snapshot": "daily.0", "snapshot_id": "i", "target": "/t", "mode": "safe",
               "plan": {"create": {"files": 0, "bytes": 0}, "overwrite": {"files": 0, "bytes": 0},
                        "delete": {"files": 0, "bytes": 0}, "skip_newer": {"files": 3, "bytes": 9},
                        "samples": {"skip_newer": ["a", "b"]}}}
    assert restore.plan_is_empty(summary), "skipped-newer files alone change nothing"
    text = restore.human_plan(summary, str)
    assert "skip-newer" in text and "e.g. skip-newer: a, b" in text
    summary["plan"]["metadata"] = {"files": 1, "bytes": 0}  # a category beyond the contract's four
    assert not restore.plan_is_empty(summary) and "metadata" in restore.human_plan(summary, str)
    # directories count: a plan that only recreates an empty tree or restores a directory's mode is not empty
    only_dirs = {"plan": {"create": {"files": 0, "dirs": 3, "bytes": 0}, "delete": {"files": 0, "dirs": 2}}}
    assert not restore.plan_is_empty(only_dirs) and restore.plan_deletes(only_dirs) == 2
    assert "3 dirs" in restore.human_plan(only_dirs, str).replace("  ", " ").replace("  ", " ")


def test_exit_code_of_a_failed_run_follows_the_error_its_workers_reported():
    from efs_backup_cli.errors import EXIT_BUSY, EXIT_FAILED
    from efs_backup_cli.main import _failed_exit

    def failed(error):
        return history.Run("b", "r", "failed", "daily", "x", "s", "backup", {}, error)

    assert _failed_exit(failed('{"Error": "EngineBusy", "Cause": "lock held"}')) == EXIT_BUSY
    assert _failed_exit(failed('{"Error": "EngineRefused", "Cause": "not in daily.0"}')) == EXIT_REFUSED
    assert _failed_exit(failed('{"Error": "EngineWorkFailed"}')) == EXIT_FAILED
    assert _failed_exit(None) == EXIT_FAILED


def test_a_log_stream_is_read_past_empty_pages():
    """GetLogEvents may answer an empty page before more events: only a repeated token ends the stream."""
    from efs_backup_cli import logs

    pages = {None: ([{"message": "a"}], "t1"), "t1": ([], "t2"), "t2": ([{"message": "b"}], "t3"), "t3": ([], "t3")}

    class Client:
        def get_log_events(self, **kwargs):
            events, token = pages[kwargs.get("nextToken")]
            return {"events": events, "nextForwardToken": token}

    class Deployment:
        def output(self, name):
            return "group"

        def client(self, name):
            return Client()

    assert [e["message"] for e in logs.events(Deployment(), "stream")] == ["a", "b"]


def test_age_of_a_run_without_an_epoch_is_read_as_utc(monkeypatch):
    import time

    run = item("2026-07-01T12:00:00Z", "e", "daily", "success")
    run.summary.pop("finished_epoch", None)
    for zone in ("UTC", "Europe/Berlin", "America/New_York"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        assert history.age_seconds(run, now=1782907200.0 + 60) == 60  # 2026-07-01T12:00:00Z + 1 min
    monkeypatch.delenv("TZ")
    time.tzset()


class FakeDeployment:
    """Only what history.snapshots reads: the configured retentions."""

    def __init__(self, **retain):
        self.retain_by = retain

    def used_intervals(self):
        return [i for i in ("hourly", "daily", "weekly", "monthly") if self.retain_by.get(i, 0)]

    def retain(self, interval):
        return self.retain_by.get(interval, 0)


def item(started, execution, interval, status, snapshot_id=None, kind=None):
    summary = {"status": status, "snapshot_id": snapshot_id, "finished_iso": started, "totals": {"files_scanned": 5,
                                                                                               "bytes_total": 9}}
    record = {"backup_id": {"S": "b"}, "run": {"S": f"{started}#{execution}"}, "status": {"S": status},
              "interval": {"S": interval}, "execution": {"S": execution}, "started": {"S": started},
              "summary": {"S": json.dumps(summary)}}
    if kind:
        record["kind"] = {"S": kind}
    return history._run(record)


def test_snapshot_names_from_history():
    runs = sorted([
        item("2026-11-01T02:00:00Z", "d1", "daily", "success", "s1"),
        item("2026-11-02T02:00:00Z", "d2", "daily", "failed"),
        item("2026-11-03T02:00:00Z", "d3", "daily", "warning", "s3"),
        item("2026-11-04T02:00:00Z", "d4", "daily", "success", "s4"),
        item("2026-11-05T02:00:00Z", "r1", "daily", "success", "r", kind="restore"),
        item("2026-11-02T04:00:00Z", "w1", "weekly", "success", "sw"),
    ], key=lambda r: r.run, reverse=True)
    rows = history.snapshots(FakeDeployment(daily=2, weekly=4), runs)
    assert [(r["name"], r["snapshot_id"]) for r in rows] == [("daily.0", "s4"), ("daily.1", "s3"),
                                                             ("weekly.0", "sw")]
    assert history.resolve_snapshot(FakeDeployment(daily=2, weekly=4), runs, "latest")["snapshot_id"] == "s4"
    assert history.resolve_snapshot(FakeDeployment(daily=2, weekly=4), runs, "daily.2") is None, "expired"
    at = history.snapshot_at(FakeDeployment(daily=2, weekly=4), runs, "2026-11-03T12:00:00Z")
    assert at["name"] == "daily.1" and at["snapshot_id"] == "s3"
    assert history.snapshot_at(FakeDeployment(daily=2, weekly=4), runs, "2026-11-01T00:00:00Z") is None


def test_usage_and_environment_errors_without_aws(capsys, monkeypatch):
    monkeypatch.delenv("EFS_BACKUP_ENV", raising=False)
    assert main(["status"]) == 5
    assert "known: example, production-eu" in capsys.readouterr().err
    assert main(["--env", "example", "frobnicate"]) == 64
    assert main(["--env", "example", "run"]) == 64, "--interval is required"
    assert main(["--env", "example", "-c", "retain_daily=x", "list"]) == 5
    assert "retain_daily" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_python_dash_m_runs_the_cli():
    import os
    import subprocess
    import sys
    from pathlib import Path

    # This checkout's CLI and contract (as pytest.ini's pythonpath), whichever checkout .venv's editable install has.
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(root / "assets" / "scripts")]))
    done = subprocess.run([sys.executable, "-m", "efs_backup_cli", "plan", "--size", "1TiB", "--files", "1M",
                           "--daily-change", "1%", "--throughput-mode", "elastic", "--window", "2h", "--json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recommendation"]["workers"] >= 1


def test_version_prints_the_cli_and_the_engine_version(capsys):
    import efs_backup_cli
    from efs_backup_engine import ENGINE_VERSION

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"efs-backup CLI {efs_backup_cli.__version__}, engine {ENGINE_VERSION}\n"
    assert main(["--json", "--version"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cli": efs_backup_cli.__version__, "engine": ENGINE_VERSION}


def test_every_json_invocation_prints_exactly_one_document(capsys, monkeypatch):
    """Usage errors, --help and errors before any AWS call answer in JSON too."""
    monkeypatch.delenv("EFS_BACKUP_ENV", raising=False)
    assert main(["--json", "run"]) == 64
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["exit_code"] == 64 and "--interval" in document["error"] and document["usage"].startswith("usage:")
    assert "the following arguments are required: --interval" in captured.err
    assert main(["--json", "status"]) == 5
    assert json.loads(capsys.readouterr().out)["error"].startswith("no environment: pass --env NAME")
    assert main(["plan", "--help", "--json"]) == 0
    assert "--daily-change" in json.loads(capsys.readouterr().out)["help"]
    assert main(["--json", "--env", "example", "-c", "env=production-eu", "list"]) == 64
    assert "choose the environment with --env" in json.loads(capsys.readouterr().out)["error"]


def test_the_workers_limit_is_the_stack_configs(capsys):
    """One definition: efs_backup_contract.limits MAX_WORKERS, which both state machines' input validation use."""
    from efs_backup_contract.limits import MAX_WORKERS
    from efs_backup_cli import limits, planner

    assert limits.max_workers() == MAX_WORKERS == planner.MAX_WORKERS
    assert main(["--env", "example", "run", "--interval", "daily", "--workers", str(MAX_WORKERS + 1)]) == 64
    assert f"{MAX_WORKERS + 1} is more than {MAX_WORKERS}" in capsys.readouterr().err


def test_the_streams_limit_is_the_stack_configs(capsys):
    """One definition: efs_backup_contract.limits MAX_STREAMS_PER_WORKER, which both state machines check."""
    from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER
    from efs_backup_cli import limits, planner

    assert limits.max_streams() == MAX_STREAMS_PER_WORKER == planner.MAX_STREAMS_PER_WORKER
    for command in (["run", "--interval", "daily"], ["restore", "--snapshot", "latest", "--dry-run"]):
        assert main(["--env", "example", *command, "--streams", str(MAX_STREAMS_PER_WORKER + 1)]) == 64
        assert f"{MAX_STREAMS_PER_WORKER + 1} is more than {MAX_STREAMS_PER_WORKER}" in capsys.readouterr().err
        assert main(["--env", "example", *command, "--streams", "0"]) == 64
        assert "must be at least 1" in capsys.readouterr().err


def test_closest_configuration_key():
    from settings.keys import KEYS
    from efs_backup_cli.limits import closest_key

    assert closest_key("RetainDaily", KEYS) == "retain_daily"
    assert closest_key("RETAIN_WEEKLY", KEYS) == "retain_weekly"
    assert closest_key("retain_dayly", KEYS) == "retain_daily"
    assert closest_key("worker-instance-type", KEYS) == "worker_instance_type"
    assert closest_key("frobnicate", KEYS) is None


def test_an_interrupt_after_starting_still_answers_in_json(capsys, monkeypatch):
    """Ctrl-C while waiting: exit 130, and the one JSON document names the execution that goes on."""
    import efs_backup_cli.main as cli_main

    def interrupted_while_waiting(args, out):
        out.context.update(execution="manual-daily-20261128T080000Z",
                           execution_arn="arn:...:manual-daily-20261128T080000Z")
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_main.COMMANDS, "list", interrupted_while_waiting)
    assert main(["--json", "--env", "example", "list"]) == 130
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "interrupted (an execution already started keeps running)",
                                        "exit_code": 130, "execution": "manual-daily-20261128T080000Z",
                                        "execution_arn": "arn:...:manual-daily-20261128T080000Z"}
    assert "interrupted" in captured.err


@pytest.mark.parametrize("kwargs", [{"snapshot": "daily.3\n"}, {"snapshot_id": "abc\n"},
                                    {"snapshot": "latest", "target_file_system_id": "fs-12345678\n"}])
def test_restore_arguments_are_matched_whole(kwargs):
    """A pattern ending in `$` matches before a final newline: the CLI checks each argument whole."""
    from efs_backup_cli.errors import EXIT_REFUSED, CliError
    from efs_backup_cli.restore import build_request

    with pytest.raises(CliError) as raised:
        build_request(**kwargs)
    assert raised.value.code == EXIT_REFUSED


def test_the_fleet_a_summary_names():
    from efs_backup_cli.main import summary_fleet

    assert summary_fleet({"instances": 2, "streams_per_worker": 4, "streams": 8}) == "2 workers x 4 streams"
    assert summary_fleet({"instances": 1, "streams_per_worker": 1}) == "1 worker x 1 stream"
    # A run before streams per worker, a refused input, no summary: nothing is claimed.
    assert summary_fleet({"workers": [{"worker": "w0"}]}) == "" and summary_fleet({}) == summary_fleet(None) == ""
