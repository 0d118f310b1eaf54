"""Heartbeats prove engine progress (issue 11, item 4): the real worker.sh and engine, a hung engine.

worker.sh runs as on an instance, through the mount seam (two tmpfs file systems bound at its mount points), with
an `aws` on its PATH that records every call it makes (the AWS side is not under test here: the moto end-to-end
tests cover it). The engine's `work` process is stopped with SIGSTOP, as a process blocked on a hung `hard` NFS
mount is: the heartbeat must stop once the stall limit has passed, and come back when the engine runs again; the
backup then completes and the snapshot equals the source (nothing lost by the pause).

Scaled clock: heartbeats every 1 s (the task's heartbeat_seconds), engine progress every 0.5 s
(EFS_BACKUP_PROGRESS_SECONDS), stall limit 3 s (EFS_BACKUP_STALL_SECONDS, which the user data sets from
worker_stall_seconds).
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from moto_world import can_bind_mount
from orchestration_helpers import REPO_ROOT

WORKER = REPO_ROOT / "assets" / "scripts" / "worker.sh"
STALL_SECONDS = 3
HEARTBEAT_SECONDS = 1
PAUSE_SECONDS = 10
# worker.sh measures the progress file's age in whole seconds (stat %Y): allow that rounding and one loop period.
SLACK = 2 + HEARTBEAT_SECONDS

RECORDING_AWS = """#!/bin/bash
# Records each AWS CLI call (time and arguments) for the test; every call succeeds. `s3api get-object` (the task
# object the pointer names) writes $TASK_OBJECT to its output file, as the real call writes the object.
printf '%s %s\\n' "$(date +%s.%N)" "$*" >> "$AWS_CALLS"
if [[ "$1 $2" == "s3api get-object" ]]; then
  cp "$TASK_OBJECT" "${@: -1}"
  echo '{}'
fi
"""


def engine_processes(role: str, session: int):
    """pids of running engine processes of this role (`python3 .../efs-backup-engine <role> ...`) in this session.

    Only the worker's own session (it is started with start_new_session): under pytest-xdist another test's engine
    runs beside this one, and stopping that one instead made this test fail with no heartbeat before the stop.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[1].endswith(b"efs-backup-engine") and argv[2] == role.encode():
            try:
                if os.getsid(int(entry)) == session:
                    found.append(int(entry))
            except ProcessLookupError:
                continue
    return found


def session_processes(name: bytes, session: int):
    """pids of running processes of this session whose program is `name` (e.g. b"rsync")."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv0 = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
            if os.path.basename(argv0) == name and os.getsid(int(entry)) == session:
                found.append(int(entry))
        except (OSError, ProcessLookupError):
            continue
    return found


def hold_rsync_until(session: int, done, timeout: float):
    """Stop (SIGSTOP) each rsync of the session as it appears, until done() or timeout, then let them go on.
    Returns how many were held. While its rsync is stopped the engine is alive and waiting on it: its progress probe
    (a thread) goes on, as it does while rsync copies a big file; holding it keeps the run going long enough to see
    the heartbeats come back, however fast this machine copies the tree."""
    held = set()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not done():
            for pid in session_processes(b"rsync", session):
                if pid not in held:
                    os.kill(pid, signal.SIGSTOP)
                    held.add(pid)
            time.sleep(0.005)
    finally:
        for pid in held:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    return len(held)


def calls(path: Path, what: str):
    if not path.exists():
        return []
    return [float(line.split(" ", 1)[0]) for line in path.read_text().splitlines() if what in line]


@pytest.fixture
def mounted(tmp_path):
    (tmp_path / "probe").mkdir()
    if not can_bind_mount(tmp_path / "probe"):
        pytest.skip("the mount seam binds local directories: needs root and mount(2)")
    source, backup = tmp_path / "production", tmp_path / "backup"
    for directory in (source, backup):
        directory.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(directory)], check=True)
    try:
        yield source, backup
    finally:
        for directory in (source, backup):
            subprocess.run(["umount", "-l", str(directory)], check=False)


def test_a_stopped_engine_stops_the_heartbeat_and_a_resumed_one_restarts_it(tmp_path, mounted):
    source, backup = mounted
    for number in range(200):  # a tree of some size (its rsync is held after the resume: see hold_rsync_until)
        directory = source / f"dir {number:03d}"
        directory.mkdir()
        for index in range(100):
            (directory / f"file-{index}").write_text(f"{number} {index}\n" * 8)
    home, bin_dir = tmp_path / "home", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(RECORDING_AWS)
    (bin_dir / "aws").chmod(0o755)
    aws_calls = tmp_path / "aws-calls.log"
    task_object = tmp_path / "task-object.json"
    task_file = tmp_path / "task-pointer.json"  # what the user data hands worker.sh: where its task object is
    task_file.write_text(json.dumps({"region": "us-east-1", "bucket": "scripts", "key": "tasks/backup/x/work-0.json"}))
    task_object.write_text(json.dumps({"task_token": "token-1", "task": {
        "role": "work", "backup_id": "prod", "worker_index": 0, "worker_count": 1, "run_id": "exec-progress",
        "source_file_system_id": "fs-12345678", "backup_file_system_id": "fs-87654321", "region": "us-east-1",
        "log_group": "worker-logs", "heartbeat_seconds": HEARTBEAT_SECONDS, "interval": "daily", "retain": 3,
        "streams": 1}}))
    env = dict(os.environ, EFS_BACKUP_HOME=str(home), EFS_BACKUP_LOCAL_MOUNTS=f"{source}:{backup}",
               EFS_BACKUP_STALL_SECONDS=str(STALL_SECONDS), EFS_BACKUP_PROGRESS_SECONDS="0.5",
               AWS_CALLS=str(aws_calls), TASK_OBJECT=str(task_object), PATH=f"{bin_dir}:{os.environ['PATH']}")
    worker = subprocess.Popen(["bash", str(WORKER), str(task_file)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    paused = None
    try:
        deadline = time.time() + 120
        while paused is None:
            assert worker.poll() is None, worker.stdout.read().decode()
            assert time.time() < deadline, "the engine's work step never started"
            pids = engine_processes("work", worker.pid)
            if pids:
                paused = pids[0]
                os.kill(paused, signal.SIGSTOP)
            else:
                time.sleep(0.005)
        stopped_at = time.time()
        time.sleep(PAUSE_SECONDS)
        resumed_at = time.time()
        os.kill(paused, signal.SIGCONT)
        held = hold_rsync_until(
            worker.pid, lambda: any(t > resumed_at for t in calls(aws_calls, "send-task-heartbeat")),
            timeout=8 * HEARTBEAT_SECONDS + STALL_SECONDS)
        output, _ = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    log = output.decode()

    beats = calls(aws_calls, "send-task-heartbeat")
    assert [t for t in beats if t < stopped_at], "no heartbeat before the engine was stopped:\n" + log
    # While stopped: heartbeats go on until the stall limit, then none at all.
    silent = [t for t in beats if stopped_at + STALL_SECONDS + SLACK < t < resumed_at]
    assert not silent, (silent, stopped_at, resumed_at)
    assert resumed_at - (stopped_at + STALL_SECONDS + SLACK) >= 3 * HEARTBEAT_SECONDS  # the silence was observable
    assert "heartbeat withheld" in log
    # Resumed: the engine's probe advances again and so do the heartbeats, before the worker reports.
    assert held, "the resumed engine's rsync was never seen (the run ended first?):\n" + log
    (reported,) = calls(aws_calls, "send-task-success")
    assert [t for t in beats if resumed_at < t < reported], "no heartbeat after the engine was resumed:\n" + log
    assert not calls(aws_calls, "send-task-failure")
    # Nothing was lost by the pause: the work tree holds the whole source.
    tree = backup / "prod" / ".efs-backup" / "runs" / "daily" / "tree"
    comparison = filecmp.dircmp(source / "dir 199", tree / "dir 199")
    assert not comparison.left_only and not comparison.right_only and not comparison.diff_files
