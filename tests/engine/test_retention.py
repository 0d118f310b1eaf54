"""Retention changes, retention 1, several intervals sharing files, and adopting the old solution's tree."""

import json
import os
import subprocess

from treeops import TreeMutator, diff, listing


def states_after_runs(engine, runs, retain, seed=1, interval="daily"):
    mutator = TreeMutator(engine.source, seed)
    if not os.listdir(engine.source):
        mutator.build(dirs=3, depth=2, files_per_dir=3)
    states = []
    for _ in range(runs):
        mutator.mutate(5)
        engine.backup(interval=interval, retain=retain)
        states.append(listing(engine.source))
    return states


def test_lowering_retention_removes_the_surplus_after_the_next_success(engine):
    states = states_after_runs(engine, 5, retain=5)
    assert engine.snapshots() == ["daily.%d" % i for i in range(5)]
    states += states_after_runs(engine, 1, retain=2, seed=2)
    assert engine.snapshots() == ["daily.0", "daily.1"]
    assert not diff(states[-1], listing(engine.snapshot("daily.0")))
    assert not diff(states[-2], listing(engine.snapshot("daily.1")))
    state = os.path.join(engine.root, "prod", ".efs-backup")
    assert os.listdir(os.path.join(state, "trash")) == [], "expired trees are deleted after promotion"
    assert os.listdir(os.path.join(state, "spare")) == ["daily"], "one expired tree is kept to be recycled"
    assert sorted(os.listdir(os.path.join(state, "manifests"))) == ["daily.0.json", "daily.1.json"]


def test_raising_retention_keeps_more(engine):
    states = states_after_runs(engine, 3, retain=2)
    states += states_after_runs(engine, 3, retain=4, seed=3)
    assert engine.snapshots() == ["daily.%d" % i for i in range(4)]
    for index in range(4):
        assert not diff(states[-1 - index], listing(engine.snapshot("daily.%d" % index)))


def test_retention_one_keeps_the_old_snapshot_until_the_new_one_is_promoted(engine):
    import random
    import signal
    import sys
    import time

    from enginekit import ENGINE

    states = states_after_runs(engine, 2, retain=1)
    assert engine.snapshots() == ["daily.0"]
    journal = os.path.join(engine.root, "prod", ".efs-backup", "journal.json")
    rng = random.Random(5)
    mutator = TreeMutator(engine.source, 6)
    for _ in range(8):
        mutator.mutate(5)
        states.append(listing(engine.source))
        proc = subprocess.Popen([sys.executable, ENGINE, "backup", "--source", engine.source, "--backup-root",
                                 engine.root, "--id", "prod", "--interval", "daily", "--retain", "1", "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if os.path.isdir(engine.snapshot("daily.0")):
            snapshot = listing(engine.snapshot("daily.0"))
            assert any(not diff(state, snapshot, limit=1) for state in states)
        else:
            # killed between moving the old snapshot aside and promoting the new one: the journal finishes it
            assert os.path.exists(journal)
    # the source changed between the killed attempts: sync every part again (the work tree is still reused)
    engine.backup(retain=1, extra=("--resume-max-age", "0"))
    assert engine.snapshots() == ["daily.0"]
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_intervals_share_unchanged_files(engine):
    states_after_runs(engine, 1, retain=2)
    engine.backup(interval="weekly", retain=2)
    daily, weekly = engine.snapshot("daily.0"), engine.snapshot("weekly.0")
    shared = total = 0
    for dirpath, _dirs, files in os.walk(daily):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            total += 1
            other = os.path.join(weekly, os.path.relpath(path, daily))
            shared += os.stat(path).st_ino == os.stat(other).st_ino
    assert total > 10 and shared == total, "weekly.0 must hard-link every unchanged file of daily.0"
    assert not diff(listing(daily), listing(weekly))


def test_adopting_the_old_solutions_tree_links_against_its_newest_snapshot(engine):
    mutator = TreeMutator(engine.source, 8)
    mutator.build(dirs=3, depth=2, files_per_dir=4)
    prod = os.path.join(engine.root, "prod")
    os.makedirs(prod)
    old_states = []
    for index in (2, 1, 0):  # what the Data Pipeline scripts left: daily.0 newest, full copies
        mutator.mutate(3)
        subprocess.run(["cp", "-a", engine.source, os.path.join(prod, "daily.%d" % index)], check=True)
        old_states.insert(0, listing(engine.source))
    mutator.mutate(3)
    summary = engine.backup(retain=3)
    files = summary["totals"]["files_scanned"]
    assert summary["totals"]["files_transferred"] < files / 3, "must link against the adopted daily.0"
    assert engine.snapshots() == ["daily.0", "daily.1", "daily.2"]
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))
    assert not diff(old_states[0], listing(engine.snapshot("daily.1")))
    assert not diff(old_states[1], listing(engine.snapshot("daily.2")))
    listed = engine.list()
    assert [row["status"] for row in listed["snapshots"]] == ["success", "adopted", "adopted"]


def test_list_reports_manifests(engine):
    states_after_runs(engine, 2, retain=3)
    listed = engine.list()
    assert [row["name"] for row in listed["snapshots"]] == ["daily.0", "daily.1"]
    newest = listed["snapshots"][0]
    assert newest["complete"] and newest["status"] == "success" and newest["files"] > 0
    manifest = json.load(open(os.path.join(engine.root, "prod", ".efs-backup", "manifests", "daily.0.json")))
    for key in ("started", "finished", "parts", "totals", "warnings", "engine_version", "snapshot_id"):
        assert key in manifest
    assert manifest["run_id"] == newest["run_id"]
    assert not listed["lock"]["held"] and listed["unfinished_runs"] == []
