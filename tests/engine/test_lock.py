"""One run at a time per backup-id, enforced on the backup file system; dead locks are cleared safely."""

import os
import socket
import subprocess
import sys
import time

from enginekit import ENGINE

SCRIPTS = os.path.dirname(ENGINE)

from efs_backup_engine.layout import Layout
from efs_backup_engine.lock import RunLock


def make_tree(engine, files=400):
    for d in range(8):
        os.makedirs(os.path.join(engine.source, "d%d" % d), exist_ok=True)
        for f in range(files // 8):
            with open(os.path.join(engine.source, "d%d" % d, "f%d" % f), "w") as handle:
                handle.write("x" * f)


def fake_lock(engine, host, age_seconds, run_id="other-run"):
    layout = Layout(engine.root, "prod")
    os.makedirs(layout.lock_dir)
    with open(os.path.join(layout.lock_dir, "owner.json"), "w") as handle:
        handle.write('{"run_id": "%s", "interval": "daily", "host": "%s", "token": "t-%s"}' % (run_id, host, run_id))
    beat = os.path.join(layout.lock_dir, "hb.%s.4242.1234" % host)
    open(beat, "w").close()
    past = time.time() - age_seconds
    os.utime(beat, (past, past))
    os.utime(layout.lock_dir, (past, past))
    return layout


def test_two_concurrent_runs_one_is_refused(engine):
    make_tree(engine, files=12000)  # the first run is a full copy: long enough to race against
    command = [sys.executable, ENGINE, "backup", "--source", engine.source, "--backup-root", engine.root, "--id",
               "prod", "--interval", "daily", "--retain", "2", "--quiet"]
    first = subprocess.Popen(command + ["--workers", "2"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    layout = Layout(engine.root, "prod")
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(layout.lock_dir, "owner.json")) and time.time() < deadline:
        time.sleep(0.01)
    second = subprocess.run(command + ["--interval", "hourly"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    out, err = first.communicate()
    assert first.returncode == 0, err
    assert second.returncode == 4, second.stderr
    assert b"is locked by run" in second.stderr
    assert "hourly.0" not in engine.snapshots()


def test_a_live_lock_of_another_host_is_never_taken(engine):
    make_tree(engine, files=16)
    fake_lock(engine, "another-host.example", age_seconds=5)
    proc = engine.cli("backup", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                      "--interval", "daily", "--retain", "2", check=4)
    assert b"another-host.example" in proc.stderr


def test_a_lock_whose_heartbeat_stopped_is_broken_and_recorded(engine):
    make_tree(engine, files=16)
    layout = fake_lock(engine, "another-host.example", age_seconds=3600)
    engine.backup(retain=2)
    tombstone = os.path.join(layout.broken_locks, "t-other-run", "broken.txt")
    assert "no heartbeat" in open(tombstone).read() or "dead" in open(tombstone).read()
    assert not os.path.exists(layout.lock_dir)


def test_a_lock_of_a_dead_process_on_this_host_is_broken_at_once(engine):
    make_tree(engine, files=16)
    dead = subprocess.Popen(["true"])
    dead.wait()
    layout = fake_lock(engine, socket.gethostname(), age_seconds=0)
    os.rename(os.path.join(layout.lock_dir, "hb.%s.4242.1234" % socket.gethostname()),
              os.path.join(layout.lock_dir, "hb.%s.%d.1" % (socket.gethostname(), dead.pid)))
    engine.backup(retain=2)
    assert engine.snapshots() == ["daily.0"]


def test_two_breakers_of_one_stale_lock_cannot_both_win(engine):
    layout = fake_lock(engine, "another-host.example", age_seconds=3600)
    os.makedirs(layout.broken_locks, exist_ok=True)
    first, second = RunLock(layout), RunLock(layout)
    owner = first.owner()
    first.acquire("winner", "daily")  # breaks the stale lock, takes a fresh one
    second._break(owner, "stale (seen before the winner took over)")  # the loser acts on what it saw
    assert first.owner()["run_id"] == "winner", "the loser must not break the winner's fresh lock"


def test_unlock_shows_and_force_breaks(engine):
    make_tree(engine, files=16)
    fake_lock(engine, "another-host.example", age_seconds=5)
    shown = engine.cli("unlock", "--backup-root", engine.root, "--id", "prod", check=0)
    assert b"ALIVE" in shown.stdout
    engine.cli("unlock", "--backup-root", engine.root, "--id", "prod", "--force", check=0)
    engine.backup(retain=2)


def test_a_heartbeat_file_stays_until_the_last_of_its_processs_contexts_ends(engine):
    """The local runner beats around its one in-process worker, whose work step beats too, under the same file
    (one per process). The worker's end left the lock without a heartbeat while the runner finalized: a run
    killed then blocked the next one for --stale-after ("between steps") instead of being taken over at once."""
    from efs_backup_engine.lock import Heartbeat, heartbeat_name

    layout = Layout(engine.root, "prod")
    os.makedirs(layout.state)
    runner = RunLock(layout)
    assert runner.acquire("run-1", "daily")
    runner.stop_beating()
    beat = os.path.join(layout.lock_dir, heartbeat_name())
    with Heartbeat(runner, "run-1"):
        with Heartbeat(RunLock(Layout(engine.root, "prod")), "run-1"):  # the worker's own lock object
            assert os.path.exists(beat)
        assert os.path.exists(beat), "the runner still beats"
        exists, alive, _owner, reason = RunLock(layout).holder_state()
        assert exists and alive and reason.startswith("heartbeat "), reason
    assert not os.path.exists(beat)
    runner.release("run-1")
