"""The steps the orchestration runs on separate machines: prepare (joinable by every worker of one run), work,
finalize, abort."""

import json
import os
import subprocess
import sys
import threading

from enginekit import ENGINE
from treeops import TreeMutator, diff, listing


def step(engine, *args, check=0):
    return engine.cli(*args, check=check)


def test_every_worker_of_one_run_may_call_prepare_and_they_share_the_run(engine):
    TreeMutator(engine.source, 2).build(dirs=6, depth=2, files_per_dir=5)
    common = ["--backup-root", engine.root, "--id", "prod", "--interval", "daily"]
    prepare = ["prepare", "--source", engine.source, "--retain", "2", "--workers", "3", "--unit-files", "5",
               "--run-id", "exec-1"] + common
    outputs = []

    def worker(index):
        prepared = subprocess.run([sys.executable, ENGINE] + prepare, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        outputs.append((prepared.returncode, prepared.stdout, prepared.stderr))
        subprocess.run([sys.executable, ENGINE, "work", "--worker-id", "w%d" % index] + common, check=True,
                       stdout=subprocess.DEVNULL)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [code for code, _out, _err in outputs] == [0, 0, 0], outputs
    runs = [json.loads(out) for _code, out, _err in outputs]
    assert {run["run_id"] for run in runs} == {"exec-1"}
    assert sum(1 for run in runs if run.get("joined")) == 2
    final = step(engine, "finalize", "--run-id", "exec-1", "--json", *common)
    summary = json.loads(final.stdout.decode().strip().splitlines()[-1])
    assert summary["status"] == "success" and summary["parts"] > 3
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_a_different_run_is_refused_while_one_is_prepared(engine):
    TreeMutator(engine.source, 3).build()
    common = ["--backup-root", engine.root, "--id", "prod", "--interval", "daily"]
    step(engine, "prepare", "--source", engine.source, "--retain", "2", "--run-id", "exec-1", *common)
    refused = step(engine, "prepare", "--source", engine.source, "--retain", "2", "--run-id", "exec-2", *common,
                   check=4)
    assert b"exec-1" in refused.stderr


def test_abort_records_the_failure_keeps_the_work_and_the_next_run_resumes(engine):
    TreeMutator(engine.source, 4).build(dirs=4, depth=2)
    common = ["--backup-root", engine.root, "--id", "prod", "--interval", "daily"]
    step(engine, "prepare", "--source", engine.source, "--retain", "2", "--workers", "2", "--unit-files", "10",
         "--run-id", "exec-1", *common)
    aborted = step(engine, "abort", "--run-id", "exec-1", "--reason", "States.Timeout: worker 1 stopped reporting",
                   "--json", *common)
    summary = json.loads(aborted.stdout.decode().strip().splitlines()[-1])
    assert summary["status"] == "failed" and "snapshot" not in summary
    assert summary["failed_parts"][0] == {"path": "(run)", "reason": "States.Timeout: worker 1 stopped reporting"}
    assert {"path": ".", "reason": "not finished (worker stopped or lost)"} in summary["failed_parts"]
    history = os.path.join(engine.root, "prod", ".efs-backup", "history", "exec-1.json")
    assert json.load(open(history))["aborted"].startswith("States.Timeout")
    assert engine.snapshots() == []
    assert not os.path.exists(os.path.join(engine.root, "prod", ".efs-backup", "lock"))
    summary = engine.backup(retain=2)
    assert summary["attempt"] == 2 and summary["status"] == "success"


def test_a_worker_that_died_after_its_parts_were_done_is_a_warning(engine):
    from efs_backup_engine import run as runs
    from efs_backup_engine.state import BackupRequest

    TreeMutator(engine.source, 5).build()
    run = runs.prepare(BackupRequest(engine.source, engine.root, "prod", "daily", 2, workers=2))
    runs.work(engine.root, "prod", "daily", "w0")
    summary = runs.finalize(engine.root, "prod", "daily", run.run_id, worker_exits={"w0": 0, "w1": -9})
    assert summary["status"] == "warning" and summary["snapshot"] == "daily.0"
    assert summary["warning_parts"] == [{"path": "(workers)", "messages": ["worker w1 exited with code -9"]}]
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))
