"""Joining a run whose first worker is still preparing it (issue 11, item 8): backups and restores.

A first multi-worker run counts the source before it plans parts: on EFS one listing costs 1-3 ms, so a tree with a
few hundred thousand directories takes many minutes, and joiners used to give up after a fixed 600 s. Now a joiner
waits exactly while the preparer's lock heartbeat advances, and fails soon after it stops.

Real processes on real files: the preparer is slowed the way EFS slows it, per directory listing (strace injects a
delay into every getdents64 call of the preparing process; the engine is unchanged), and the joiner runs as another
"host" (its own UTS namespace with another host name), so it judges the preparer by its heartbeat file's age as a
worker on another EC2 instance does. `--stale-after 2` scales the lock's clock down (beats every 0.2 s, a joiner
gives up after 1.2 s without one) so that a join which outlasts its stall limit many times over takes seconds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from enginekit import ENGINE

STALE_AFTER = 2  # -> lock.every 0.2 s, lock.join_stall_after 1.2 s
JOIN_STALL_AFTER = 1.2
LISTING_DELAY_US = 60000  # per getdents64 call (two per directory listing)
DIRECTORIES = 60


def _can_unshare_uts():
    if shutil.which("unshare") is None or shutil.which("strace") is None:
        return False
    probe = subprocess.run(["unshare", "--uts", "sh", "-c", "hostname other-host && hostname"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return probe.returncode == 0 and probe.stdout.strip() == b"other-host"


pytestmark = pytest.mark.skipif(not _can_unshare_uts(), reason="needs root (unshare --uts) and strace")


def prepare_args(engine, run_id, kind="backup"):
    """A backup's prepare (a first run counts the source) or a restore's (it counts the chosen paths)."""
    if kind == "restore":
        return [sys.executable, ENGINE, "restore-prepare", "--backup-root", engine.root, "--id", "prod",
                "--snapshot", "latest", "--path", "top", "--target", os.path.join(engine.source, "restored"),
                "--workers", "2", "--run-id", run_id, "--stale-after", str(STALE_AFTER)]
    return [sys.executable, ENGINE, "prepare", "--source", engine.source, "--backup-root", engine.root, "--id",
            "prod", "--interval", "daily", "--retain", "3", "--workers", "2", "--run-id", run_id,
            "--stale-after", str(STALE_AFTER)]


def start_slow_preparer(engine, run_id, tmp_path, kind="backup"):
    """The first worker: its directory listings are slowed by strace fault injection (delay on entry)."""
    command = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=getdents64",
               "-e", "inject=getdents64:delay_enter=%d" % LISTING_DELAY_US] + prepare_args(engine, run_id, kind)
    out = open(tmp_path / "preparer.out", "w")
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def traced_child(strace_proc):
    """The engine process strace runs (strace also forks short-lived probes of its own at start)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            children = open("/proc/%d/task/%d/children" % (strace_proc.pid, strace_proc.pid)).read().split()
        except OSError:
            children = []
        for child in children:
            try:
                argv = open("/proc/%s/cmdline" % child, "rb").read().split(b"\0")
            except OSError:
                continue
            if argv[0] != b"strace" and any(arg.endswith(b"efs-backup-engine") for arg in argv):
                return int(child)
        time.sleep(0.01)
    raise AssertionError("strace started no engine process")


def start_joiner_on_other_host(engine, run_id, kind="backup"):
    script = 'hostname joining-worker && exec "$@"'
    return subprocess.Popen(["unshare", "--uts", "sh", "-c", script, "sh"] + prepare_args(engine, run_id, kind),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_lock(engine, timeout=30):
    owner = os.path.join(engine.root, "prod", ".efs-backup", "lock", "owner.json")
    deadline = time.time() + timeout
    while not os.path.exists(owner):
        assert time.time() < deadline, "the preparer never took the lock"
        time.sleep(0.02)
    return json.load(open(owner))


@pytest.fixture
def tree(engine):
    for index in range(DIRECTORIES):
        directory = os.path.join(engine.source, "top", "d%02d" % index)
        os.makedirs(directory)
        for number in range(3):
            with open(os.path.join(directory, "f%d" % number), "w") as handle:
                handle.write("%d %d\n" % (index, number))
    return engine


@pytest.mark.parametrize("kind", ["backup", "restore"])
def test_a_join_outlasting_many_stall_limits_succeeds_while_the_preparer_beats(tree, tmp_path, kind):
    if kind == "restore":
        tree.backup()  # a snapshot to restore from (the restore's prepare counts its paths)
    preparer = start_slow_preparer(tree, "exec-slow", tmp_path, kind)
    try:
        owner = wait_for_lock(tree)
        assert owner["run_id"] == "exec-slow"
        joiner = start_joiner_on_other_host(tree, "exec-slow", kind)
        started = time.monotonic()
        out, err = joiner.communicate(timeout=300)
        waited = time.monotonic() - started
        assert preparer.wait(timeout=60) == 0, open(tmp_path / "preparer.out").read()
    finally:
        if preparer.poll() is None:
            preparer.kill()
    assert joiner.returncode == 0, err.decode()
    run = json.loads(out.decode().strip().splitlines()[-1])
    assert run["run_id"] == "exec-slow" and run["joined"] is True
    # The count of DIRECTORIES slowed listings took far longer than the stall limit; the joiner kept waiting.
    assert waited > 5 * JOIN_STALL_AFTER, waited
    # And both workers then see the same prepared run: the plan (written once, by the preparer) is intact.
    run_file = (os.path.join(tree.root, "prod", ".efs-backup", "runs", "daily", "run.json") if kind == "backup" else
                os.path.join(tree.root, "prod", ".efs-backup", "restores", "exec-slow", "run.json"))
    prepared = json.load(open(run_file))
    assert prepared["run_id"] == "exec-slow" and prepared["workers"] == 2 and prepared["unit_files"] >= 200


@pytest.mark.parametrize("kind, how", [("backup", "killed"), ("backup", "paused"), ("restore", "killed")])
def test_a_joiner_fails_fast_once_the_preparer_stops_beating(tree, tmp_path, kind, how):
    if kind == "restore":
        tree.backup()  # a snapshot to restore from (the restore's prepare counts its paths)
    preparer = start_slow_preparer(tree, "exec-dead", tmp_path, kind)
    engine_pid = traced_child(preparer)
    try:
        wait_for_lock(tree)
        joiner = start_joiner_on_other_host(tree, "exec-dead", kind)
        time.sleep(1.5)  # the joiner is waiting (the count needs several seconds more)
        assert joiner.poll() is None, joiner.communicate()[1].decode()
        stopped = time.monotonic()
        os.kill(engine_pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        out, err = joiner.communicate(timeout=60)
        reacted = time.monotonic() - stopped
    finally:
        for sig in (signal.SIGKILL,):
            try:
                os.kill(engine_pid, sig)
            except ProcessLookupError:
                pass
        preparer.kill()
        preparer.wait()
    assert joiner.returncode == 1, (joiner.returncode, err.decode())
    assert "stopped beating" in err.decode(), err.decode()
    # Within the stall limit plus a few polls (generous for a loaded 2-core machine), never a fixed long timeout.
    assert reacted < JOIN_STALL_AFTER + 5, reacted
    # The joiner broke nothing: the lock still names the preparer's run (the next run judges it stale by the
    # lock's own rule, after --stale-after).
    owner = json.load(open(os.path.join(tree.root, "prod", ".efs-backup", "lock", "owner.json")))
    assert owner["run_id"] == "exec-dead" and owner["kind"] == kind
