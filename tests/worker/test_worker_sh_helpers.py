"""worker.sh's side of the helpers: its functions, sourced in bash, run the real efs-backup-worker launcher.

No root and no AWS: ``aws`` on PATH is a recorder (every call's arguments, and the events a put-log-events sends).
What is proven here is the seam itself: NUL-separated values arrive in bash unchanged, as single arguments; a
refusal is reported with its reason; a large request passes (stdin, not an argument)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_SH = REPO_ROOT / "assets" / "scripts" / "worker.sh"
TOKEN = "AAAAKgAAAAIAAAAAAAAAAb0x+token"

RECORDING_AWS = """#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
record = {"args": args}
if "--log-events" in args:
    with open(args[args.index("--log-events") + 1][len("file://"):]) as handle:
        record["events"] = json.load(handle)
with open(os.environ["AWS_CALLS"], "a") as handle:
    handle.write(json.dumps(record) + "\\n")
"""


class Shell:
    def __init__(self, tmp_path: Path):
        self.home = tmp_path / "home"
        (self.home / "log").mkdir(parents=True)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "aws").write_text(RECORDING_AWS)
        (bin_dir / "aws").chmod(0o755)
        self.calls_file = tmp_path / "aws-calls.jsonl"
        self.env = dict(os.environ, EFS_BACKUP_HOME=str(self.home), AWS_CALLS=str(self.calls_file),
                        PATH=f"{bin_dir}:{os.environ['PATH']}")

    def run(self, script: str, **variables: str) -> subprocess.CompletedProcess:
        """Sources worker.sh, sets ``variables`` (bash variables, read from files: a value may be larger than the
        kernel takes in one argument or environment string), runs ``script``."""
        assign = ""
        for name, value in variables.items():
            path = self.home / f"variable.{name}"
            path.write_bytes(value.encode("utf-8", "surrogateescape"))
            assign += f'{name}="$(cat "{path}")"; '
        return subprocess.run(["bash", "-c", f'source "{WORKER_SH}"; {assign}{script}'], env=self.env,
                              capture_output=True)

    def calls(self):
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]


@pytest.fixture
def shell(tmp_path):
    return Shell(tmp_path)


def task_file(shell, **task):
    path = shell.home / "task.json"
    path.write_text(json.dumps({"task_token": TOKEN, "task": task}))
    return str(path)


BACKUP_TASK = dict(role="work", backup_id="prod", worker_index=0, worker_count=2, run_id="run-1",
                   source_file_system_id="fs-12345678", backup_file_system_id="fs-87654321", region="eu-west-1",
                   log_group="workers", heartbeat_seconds=30, interval="weekly", retain=4, streams=3)
SHOW_TASK = ('printf "%s\\0" "$TASK_TASK_TOKEN" "$TASK_ROLE" "$TASK_BACKUP_ID" "$TASK_WORKER_INDEX" '
             '"$TASK_WORKER_COUNT" "$TASK_RUN_ID" "$TASK_SOURCE_FILE_SYSTEM_ID" "$TASK_BACKUP_FILE_SYSTEM_ID" '
             '"$TASK_REGION" "$TASK_LOG_GROUP" "$TASK_HEARTBEAT_SECONDS" "$TASK_INTERVAL" "$TASK_RETAIN" '
             '"$TASK_STREAMS"')


def test_read_task_file_sets_every_field_of_the_role(shell):
    proc = shell.run(f'read_task_file "$F"; {SHOW_TASK}', F=task_file(shell, **BACKUP_TASK, extra="x"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.split(b"\0")[:-1] == [v.encode() for v in (
        TOKEN, "work", "prod", "0", "2", "run-1", "fs-12345678", "fs-87654321", "eu-west-1", "workers", "30",
        "weekly", "4", "3")]
    assert b"ignoring unknown task field 'extra'" in proc.stderr
    assert shell.calls() == [] and not (shell.home / "task.fields").exists()


def test_prepare_is_told_the_runs_streams_in_all_and_per_worker(shell):
    proc = shell.run('read_task_file "$F"; stream_options; printf "%s\\0" "${STREAM_OPTIONS[@]}"',
                     F=task_file(shell, **dict(BACKUP_TASK, worker_count=5, streams=16)))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.split(b"\0")[:-1] == [b"--workers", b"80", b"--streams-per-worker", b"16"]


def test_a_refused_task_is_reported_as_worker_failed_with_the_reason(shell):
    proc = shell.run('TASK_REGION=eu-north-1; read_task_file "$F" || echo "returned $?"',
                     F=task_file(shell, **dict(BACKUP_TASK, region="nowhere")))
    assert proc.stdout == b"returned 1\n"
    (call,) = shell.calls()
    # the task's region is not usable: the pointer's (set by fetch_task) is
    assert call["args"][:7] == ["stepfunctions", "--region", "eu-north-1", "send-task-failure", "--task-token", TOKEN,
                                "--error"]
    assert call["args"][7:] == ["WorkerFailed", "--cause", "the worker could not use its task: task object "
                                f"{shell.home}/task.json refused: region 'nowhere' is not a region"]


def test_a_task_without_a_token_reports_nothing_and_fails(shell):
    path = shell.home / "task.json"
    path.write_text(json.dumps({"task": BACKUP_TASK}))
    proc = shell.run('TASK_REGION=eu-north-1; read_task_file "$F" || echo "returned $?"', F=str(path))
    assert proc.stdout == b"returned 1\n" and shell.calls() == []
    assert b"task_token is missing or not a task token" in proc.stderr


SHOW_RESTORE = ('status=0; parse_restore_request || status=$?; printf "%s\\0" "$status" "$RESTORE_TARGET_FS" '
                '"$RESTORE_TARGET_DIR" "$RESTORE_DEFAULT_PARENT" "$RESTORE_DRY_RUN" "$RESTORE_REFUSAL" '
                '"${RESTORE_ARGS[@]}"')


def restore(shell, request):
    proc = shell.run(SHOW_RESTORE, TASK_REQUEST=json.dumps(request), TASK_SOURCE_FILE_SYSTEM_ID="fs-12345678",
                     TASK_RUN_ID="restore-1")
    assert proc.returncode == 0, proc.stderr.decode()
    return [v.decode("utf-8", "surrogateescape") for v in proc.stdout.split(b"\0")[:-1]]


def test_restore_options_arrive_in_bash_as_single_arguments(shell):
    paths = ["with space", "--mirror", "new\nline", "$(reboot)", "caf\udce9"]
    values = restore(shell, {"snapshot": "-1", "paths": paths, "dry_run": True})
    target = str(shell.home / "mnt" / "target" / "efs-backup-restore" / "restore-1")
    assert values == ["0", "fs-12345678", target, "efs-backup-restore", "1", "", "--snapshot=-1"] + [
        "--path=" + p for p in paths] + ["--dry-run"]


def test_an_in_place_restore_targets_the_mount_point_itself(shell):
    values = restore(shell, {"at": "2026-11-20T00:00:00Z", "target_path": "/", "mirror": True})
    assert values == ["0", "fs-12345678", str(shell.home / "mnt" / "target"), "", "", "",
                      "--at=2026-11-20T00:00:00Z", "--mirror"]


def test_a_misspelt_dry_run_is_refused_in_bash_with_the_reason(shell):
    values = restore(shell, {"snapshot": "latest", "paths": ["alpha"], "dryRun": True})
    assert values == ["3", "", "", "", "", "invalid restore request: unknown field(s) dryRun"]


def test_a_nul_in_a_path_cannot_become_an_option(shell):
    values = restore(shell, {"snapshot": "latest", "paths": ["x\u0000--mirror"]})
    assert values[0] == "3" and "--mirror" not in values
    assert values[5] == "invalid restore request: paths[0] 'x\\x00--mirror' must not hold a NUL character or reach " \
                        "4096 bytes"


def test_a_request_larger_than_one_argument_may_be_passes_whole(shell):
    paths = ["dir%05d/%s" % (n, "f" * 100) for n in range(2000)]  # ~220 KB: more than the kernel's 128 KiB argument
    values = restore(shell, {"snapshot": "latest", "paths": paths})
    assert values[0] == "0" and values[7:] == ["--path=" + p for p in paths]


def test_failed_parts_of_a_large_engine_result(shell):
    failed = ["w%d:dir%05d" % (n % 4, n) for n in range(20000)]  # ~260 KB of JSON
    proc = shell.run('failed_parts_of "$OUT"', OUT=json.dumps({"failed": failed}))
    assert proc.stdout.decode() == ", ".join(failed) + "\n"
    proc = shell.run('failed_parts_of "not json"')
    assert proc.stdout == b"(unreadable engine output)\n"


def test_ship_log_batches_puts_every_line_once_and_moves_the_offset(shell):
    log = shell.home / "log" / "worker.log"
    log.write_bytes(b"first\nsecond\npartial")
    variables = dict(TASK_REGION="eu-west-1", TASK_LOG_GROUP="workers", TASK_RUN_ID="run-1", TASK_ROLE="work",
                     TASK_WORKER_INDEX="3")
    assert shell.run("ship_log_batches 10", **variables).returncode == 0
    assert shell.run("ship_log_batches 10", **variables).returncode == 0  # nothing new: no put
    assert shell.run("ship_log_batches 10 final", **variables).returncode == 0
    calls = shell.calls()
    assert [c["args"][:7] for c in calls] == [["logs", "put-log-events", "--region", "eu-west-1", "--log-group-name",
                                               "workers", "--log-stream-name"]] * 2
    assert [c["args"][7] for c in calls] == ["run-1/work-3"] * 2
    assert [[e["message"] for e in c["events"]] for c in calls] == [["first", "second"], ["partial"]]
    assert (shell.home / "log" / "shipped.offset").read_text() == "%d\n" % log.stat().st_size
