"""Streams: one worker machine runs S engine streams (`work --streams S`, `restore-work --streams S`), prepared as
W x S workers in all (`prepare --workers W*S --streams-per-worker S`). Real rsync on real trees: the streams finish a
run whose snapshot equals the source, one report stands for all of them, and a killed worker leaves no stream
behind."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from efs_backup_engine import cli
from enginekit import ENGINE
from treeops import TreeMutator, diff, listing

COMMON = ["--id", "prod", "--interval", "daily"]


def run_engine(engine, *args, check=0):
    return engine.cli(*args, check=check)


def last_json(proc):
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def prepare(engine, workers, per_worker, run_id="exec-1", check=0, unit_files=5):
    return run_engine(engine, "prepare", "--source", engine.source, "--backup-root", engine.root, *COMMON,
                      "--retain", "2", "--workers", workers, "--streams-per-worker", per_worker,
                      "--unit-files", unit_files, "--run-id", run_id, check=check)


def test_two_workers_of_three_streams_finish_a_run_and_the_snapshot_equals_the_source(engine):
    TreeMutator(engine.source, 21).build(dirs=6, depth=2, files_per_dir=6)
    record = last_json(prepare(engine, 6, 3))
    assert record["workers"] == 6 and record["streams_per_worker"] == 3
    workers = [subprocess.Popen([sys.executable, ENGINE, "work", "--backup-root", engine.root, *COMMON,
                                 "--worker-id", "w%d" % index, "--streams", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for index in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    reports = [json.loads(out.decode().strip()) for out, _err in outputs]  # exactly one line each
    for index, report in enumerate(reports):
        assert report["worker"] == "w%d" % index and report["status"] == "success" and report["failed"] == []
        assert [(s["worker"], s["exit"]) for s in report["streams"]] == [("w%d-s%d" % (index, j), 0) for j in range(3)]
        assert report["parts"] == sum(s["parts"] for s in report["streams"])

    summary = last_json(run_engine(engine, "finalize", "--backup-root", engine.root, *COMMON, "--run-id", "exec-1",
                                   "--json"))
    assert summary["status"] == "success" and summary["snapshot"] == "daily.0"
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (6, 3, 2)
    assert summary["parts"] == sum(report["parts"] for report in reports) > 6
    assert sum(report["files_scanned"] for report in reports) == summary["totals"]["files_scanned"]
    shares = {share["worker"]: share["units"] for share in summary["workers"]}
    assert set(shares) <= {"w%d-s%d" % (i, j) for i in range(2) for j in range(3)}
    for report in reports:
        for stream in report["streams"]:
            assert shares.get(stream["worker"], 0) == stream["parts"]
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_restore_work_with_streams_restores_the_snapshot(engine, tmp_path):
    TreeMutator(engine.source, 22).build(dirs=5, depth=2, files_per_dir=5)
    engine.backup()
    target = str(tmp_path / "target")
    roots = ["--backup-root", engine.root, "--id", "prod"]
    prepared = last_json(run_engine(engine, "restore-prepare", *roots, "--target", target, "--snapshot", "daily.0",
                                    "--workers", "4", "--streams-per-worker", "4", "--unit-files", "5",
                                    "--run-id", "restore-1"))
    assert prepared["streams_per_worker"] == 4
    report = last_json(run_engine(engine, "restore-work", *roots, "--run-id", "restore-1", "--worker-id", "w0",
                                  "--streams", "4"))
    assert report["status"] == "success" and [s["exit"] for s in report["streams"]] == [0] * 4
    summary = last_json(run_engine(engine, "restore-finalize", *roots, "--run-id", "restore-1", "--json"))
    assert summary["status"] == "success" and summary["parts"] == report["parts"]
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (4, 4, 1)
    assert not diff(listing(engine.snapshot("daily.0")), listing(target))


def test_the_local_runner_is_one_machine_of_k_streams_and_old_records_are_one_stream_each(engine):
    TreeMutator(engine.source, 23).build(dirs=3, depth=2)
    summary = engine.backup(workers=3)
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (3, 3, 1)
    # A run record written before streams (no streams_per_worker) is read as one stream per worker.
    prepare(engine, 2, 1, run_id="exec-old")
    run_json = engine.state("runs", "daily", "run.json")
    record = json.load(open(run_json))
    assert "streams_per_worker" not in record  # the default is not written: old engines' records stay the same
    summary = last_json(run_engine(engine, "abort", "--backup-root", engine.root, *COMMON, "--run-id", "exec-old",
                                   "--json"))
    assert (summary["streams"], summary["streams_per_worker"], summary["instances"]) == (2, 1, 2)


def test_streams_per_worker_must_divide_the_workers_and_stay_within_the_limit(engine):
    TreeMutator(engine.source, 24).build(dirs=2, depth=1)
    refused = prepare(engine, 5, 2, check=3)
    assert b"--workers 5 is not a multiple of --streams-per-worker 2" in refused.stderr
    assert not os.path.exists(engine.state("lock")), "a refused prepare takes no lock"
    prepare(engine, 34, 17, check=64)
    run_engine(engine, "work", "--backup-root", engine.root, *COMMON, "--worker-id", "w0", "--streams", "0",
               check=64)
    run_engine(engine, "work", "--backup-root", engine.root, *COMMON, "--worker-id", "../w0", check=64)


def test_one_local_worker_runs_in_the_runner_and_its_crash_is_recorded_not_lost(engine, monkeypatch, capsys):
    """With --workers 1 the runner runs the work step itself (cli._work_here): an unexpected error there is
    printed and ends that worker with exit 1, as a worker process's traceback would; the runner still finalizes
    (a failed run, nothing promoted, the lock released), and the next run completes."""
    TreeMutator(engine.source, 3).build(dirs=2, depth=1, files_per_dir=2)

    def crash(*args, **kwargs):
        raise RuntimeError("a defect in the work step")

    monkeypatch.setattr(cli.runs, "work", crash)
    backup = ["backup", "--source", engine.source, "--backup-root", engine.root, *COMMON, "--retain", "2",
              "--workers", "1", "--json", "--quiet"]
    assert cli.main(backup) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "failed" and "RuntimeError: a defect in the work step" in err
    assert not os.path.exists(engine.snapshot("daily.0"))
    monkeypatch.undo()
    assert last_json(run_engine(engine, *backup))["status"] == "success"  # the lock was released
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_the_worst_stream_exit_is_the_workers():
    assert cli._worst_exit([0, 2, 0]) == 2
    assert cli._worst_exit([2, 1, 0]) == 1
    assert cli._worst_exit([1, 3]) == 3 and cli._worst_exit([3, 4]) == 4
    assert cli._worst_exit([0, -9, 1]) == 137  # a stream killed by SIGKILL, as a shell reports it
    assert cli._worst_exit([64, 70]) == 70


def session_processes(session):
    """pids of the processes in a session (the test starts the worker in a session of its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == session and not _zombie(entry):
                    found.append(int(entry))
            except (ProcessLookupError, OSError):
                continue
    return found


def _zombie(pid):
    try:
        with open("/proc/%s/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def stream_pids(session):
    pids = []
    for pid in session_processes(session):
        try:
            argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
        except OSError:
            continue
        if b"--worker-id" in argv and argv[argv.index(b"--worker-id") + 1].startswith(b"w0-s"):
            pids.append(pid)
    return pids


@pytest.fixture
def busy_run(engine):
    """A prepared run whose parts take a while: a large file among many small ones, parts of 15 entries."""
    for d in range(20):
        for f in range(10):
            path = os.path.join(engine.source, "d%02d" % d, "f%d" % f)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(b"x" * (100 * f))
    os.makedirs(os.path.join(engine.source, "big"))
    with open(os.path.join(engine.source, "big", "large.bin"), "wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(96):
            handle.write(block)
    prepare(engine, 3, 3, unit_files=15)
    return engine


def start_streams(engine):
    return subprocess.Popen([sys.executable, ENGINE, "work", "--backup-root", engine.root, *COMMON, "--worker-id", "w0",
                             "--streams", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_for_claims(engine, worker, streams=3):
    """Until each stream has claimed a part (so each one is past its start-up)."""
    claims = engine.state("runs", "daily", "claims")
    deadline = time.time() + 60
    while time.time() < deadline:
        assert worker.poll() is None, worker.communicate()
        claimers = set()
        for name in os.listdir(claims) if os.path.isdir(claims) else ():
            try:
                claimers.add(json.load(open(os.path.join(claims, name)))["worker"])
            except (OSError, ValueError):
                continue
        if len(claimers) == streams and len(stream_pids(worker.pid)) == streams:
            return
        time.sleep(0.005)
    raise AssertionError("the streams never all claimed a part")


def test_a_killed_worker_leaves_no_stream_running_and_the_next_run_completes(busy_run):
    engine = busy_run
    worker = start_streams(engine)
    try:
        wait_for_claims(engine, worker)
        # Stopped streams would never end by themselves: only their worker's death may end them.
        for pid in stream_pids(worker.pid):
            os.kill(pid, signal.SIGSTOP)
        os.kill(worker.pid, signal.SIGKILL)  # the worker engine only: not its session, not its streams
        worker.wait()
        deadline = time.time() + 5
        while stream_pids(worker.pid) and time.time() < deadline:
            time.sleep(0.01)
        assert not stream_pids(worker.pid), "streams outlived their worker"
        results = engine.state("runs", "daily", "results")
        finished = sorted(os.listdir(results)) if os.path.isdir(results) else []
        # An rsync a stream was running ends at its next output line (its reader is gone).
        deadline = time.time() + 30
        while session_processes(worker.pid) and time.time() < deadline:
            time.sleep(0.05)
        left = session_processes(worker.pid)
        assert not left, "processes of the killed worker still run: %s" % [
            open("/proc/%d/cmdline" % pid, "rb").read() for pid in left]
        assert (sorted(os.listdir(results)) if os.path.isdir(results) else []) == finished, \
            "a part finished after its worker was killed"
    finally:
        for pid in session_processes(worker.pid):
            os.kill(pid, signal.SIGKILL)
    # The killed run is resumed by the next one (its lock goes stale: this host's processes are gone).
    summary = engine.backup(retain=2, workers=3)
    assert summary["status"] == "success" and summary["attempt"] == 2
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_a_killed_stream_makes_the_worker_report_its_exit_and_the_others_stop(busy_run):
    engine = busy_run
    worker = start_streams(engine)
    try:
        wait_for_claims(engine, worker)
        victim = sorted(stream_pids(worker.pid))[0]
        victim_id = open("/proc/%d/cmdline" % victim, "rb").read().split(b"\0")
        victim_id = victim_id[victim_id.index(b"--worker-id") + 1].decode()
        os.kill(victim, signal.SIGKILL)
        out, err = worker.communicate(timeout=300)
    finally:
        for pid in session_processes(worker.pid):
            os.kill(pid, signal.SIGKILL)
    assert worker.returncode == 137, err.decode()
    report = json.loads(out.decode().strip())  # one report, the killed stream's exit in it
    assert report["status"] == "failed"
    assert {s["worker"]: s["exit"] for s in report["streams"]}[victim_id] == -9
    assert {s["exit"] for s in report["streams"] if s["worker"] != victim_id} <= {0, 1, 2}


def test_a_stream_whose_starter_is_already_gone_stops_at_once(engine):
    """The race PR_SET_PDEATHSIG leaves open: the starter died before the stream asked to die with it. The stream
    sees another parent than the one named in its environment and exits before it touches anything."""
    TreeMutator(engine.source, 25).build(dirs=2, depth=1)
    prepare(engine, 1, 1)
    env = dict(os.environ, **{cli.PARENT_ENV: "1" if os.getpid() != 1 else "2"})  # not this test's pid: "gone"
    proc = subprocess.run([sys.executable, ENGINE, "work", "--backup-root", engine.root, *COMMON, "--worker-id",
                           "w0-s0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 1 and b"the process that started this one is gone" in proc.stderr
    assert proc.stdout == b"" and not os.listdir(engine.state("runs", "daily", "claims")), "nothing was claimed"
