"""Restores (issue 5): real rsync on real files. Safe mode never deletes and never overwrites newer target files;
mirror mode is exact inside the chosen paths only; dry runs change nothing; every refusal touches nothing; the
lock is shared with backups; a killed restore is completed by the next one; the backup root may be read-only."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from enginekit import ENGINE
from test_fidelity import populate
from treeops import NAMES_CORPUS, TreeMutator, diff, hardlink_groups, listing

FUTURE = 4102444800 * 10 ** 9  # 2100-01-01: newer than any snapshot


def write(path, data, mtime_ns=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def small_tree(engine):
    """a/b/file1, a/c/file2, x/y/z/file3, top, plus a symlink and an empty dir."""
    src = engine.source
    write(os.path.join(src, "a", "b", "file1"), b"one")
    write(os.path.join(src, "a", "c", "file2"), b"two two")
    write(os.path.join(src, "x", "y", "z", "file3"), b"three three three")
    write(os.path.join(src, "top"), b"top level")
    os.symlink("a/b/file1", os.path.join(src, "link"))
    os.makedirs(os.path.join(src, "x", "empty"))
    os.chmod(os.path.join(src, "a", "b"), 0o750)
    os.utime(os.path.join(src, "a"), ns=(10 ** 18, 10 ** 18))


def ctimes(root):
    """ctime of every entry: any chmod, chown, write, link or rename changes it."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in [b"."] + dirnames + filenames:
            path = os.path.join(dirpath, name) if name != b"." else dirpath
            out[path] = os.lstat(path).st_ctime_ns
    return out


def unchanged(root):
    return listing(root), ctimes(root)


def lock_free(engine):
    return not os.path.exists(engine.state("lock"))


def history(engine, run_id):
    with open(engine.state("history", run_id + ".json")) as handle:
        return json.load(handle)


def counts(plan):
    return {key: value for key, value in plan.items() if key != "samples"}


# -- what a restore produces -------------------------------------------------------------------------------
def test_whole_snapshot_into_a_new_directory_equals_the_snapshot(engine, tmp_path):
    populate(engine.source)
    backup = engine.backup()
    target = str(tmp_path / "restored")
    summary = engine.restore(target, "--snapshot", "daily.0", "--workers", "2", "--unit-files", "5")
    assert summary["status"] == "success" and summary["kind"] == "restore"
    assert not diff(listing(engine.snapshot("daily.0")), listing(target))
    assert hardlink_groups(target) == [[b"owned", b"owned-hardlink"]]
    assert os.stat(os.path.join(target, "sparse")).st_blocks * 512 < 1024 * 1024, "sparse stays sparse"
    assert summary["snapshot"] == "daily.0" and summary["snapshot_id"] == backup["snapshot_id"]
    assert summary["snapshot_finished_iso"] == backup["finished_iso"]
    assert summary["mode"] == "safe" and summary["dry_run"] is False and summary["paths"] == ["."]
    snapshot_files = sum(1 for entry in listing(engine.snapshot("daily.0")).values() if entry[0] != 0o040000)
    assert summary["plan"]["create"]["files"] == snapshot_files
    assert summary["plan"]["overwrite"]["files"] == summary["plan"]["delete"]["files"] == 0
    assert summary["failed_parts"] == [] and summary["failed_count"] == 0 and summary["parts"] > 1
    assert history(engine, summary["run_id"]) == summary
    assert lock_free(engine)
    assert not os.path.exists(os.path.join(target, ".efs-backup-restore.tmp"))
    assert not os.listdir(engine.state("restores")), "bookkeeping of a finished restore is removed"


def test_several_paths_files_and_directories(engine, tmp_path):
    small_tree(engine)
    engine.backup()
    snap = engine.snapshot("daily.0")
    target = str(tmp_path / "restored")
    summary = engine.restore(target, "--snapshot", "daily.0", "--path", "a/b/file1", "--path", "x/y/",
                             "--path", "./link", "--path", "x/y/z")
    assert summary["status"] == "success" and summary["paths"] == ["a/b/file1", "link", "x/y"]
    assert sorted(os.listdir(target)) == ["a", "link", "x"]
    assert os.listdir(os.path.join(target, "a")) == ["b"] and os.listdir(os.path.join(target, "a", "b")) == ["file1"]
    assert os.listdir(os.path.join(target, "x")) == ["y"]
    assert not diff(listing(os.path.join(snap, "x", "y")), listing(os.path.join(target, "x", "y")))
    for rel in ("a", "a/b", "a/b/file1", "x", "link"):  # parents are created with the snapshot's metadata
        assert listing(os.path.join(snap, rel))[b"."] == listing(os.path.join(target, rel))[b"."], rel
    assert summary["plan"]["create"]["files"] == 3  # file1, link, file3
    assert summary["plan"]["create"]["bytes"] == len(b"one") + len(b"three three three")


def test_safe_mode_keeps_newer_and_extra_files_and_overwrites_older_ones(engine, tmp_path):
    small_tree(engine)
    engine.backup()
    target = str(tmp_path / "prod")
    shutil.copytree(engine.snapshot("daily.0"), target, symlinks=True)
    write(os.path.join(target, "a", "b", "file1"), b"edited today", FUTURE)  # newer: kept
    write(os.path.join(target, "a", "c", "file2"), b"older garbage", 10 ** 9)  # older: restored
    os.chmod(os.path.join(target, "top"), 0o600)  # same content, other mode: attributes restored
    os.unlink(os.path.join(target, "x", "y", "z", "file3"))  # missing: restored
    write(os.path.join(target, "a", "extra"), b"not in the snapshot")  # extra: kept
    os.makedirs(os.path.join(target, "new-dir"))
    summary = engine.restore(target, "--snapshot", "daily.0")
    assert summary["status"] == "success"
    assert read(os.path.join(target, "a", "b", "file1")) == b"edited today"
    assert os.stat(os.path.join(target, "a", "b", "file1")).st_mtime_ns == FUTURE
    assert read(os.path.join(target, "a", "c", "file2")) == b"two two"
    assert os.stat(os.path.join(target, "top")).st_mode & 0o777 == 0o644
    assert read(os.path.join(target, "x", "y", "z", "file3")) == b"three three three"
    assert read(os.path.join(target, "a", "extra")) == b"not in the snapshot"
    assert os.path.isdir(os.path.join(target, "new-dir"))
    plan = summary["plan"]
    assert (plan["skip_newer"]["files"], plan["skip_newer"]["bytes"]) == (1, len(b"one"))
    assert (plan["overwrite"]["files"], plan["overwrite"]["bytes"]) == (1, len(b"two two"))
    assert (plan["create"]["files"], plan["create"]["bytes"]) == (1, len(b"three three three"))
    assert plan["metadata"]["files"] == 1 and plan["delete"]["files"] == 0
    assert plan["samples"]["skip_newer"] == ["a/b/file1"] and plan["samples"]["overwrite"] == ["a/c/file2"]


def test_safe_mode_never_replaces_a_directory_and_keeps_newer_entries_of_another_type(engine, tmp_path):
    small_tree(engine)
    engine.backup()
    target = str(tmp_path / "prod")
    os.makedirs(os.path.join(target, "top", "inside"))  # a directory where the snapshot has a file
    write(os.path.join(target, "top", "inside", "precious"), b"keep me")
    write(os.path.join(target, "x"), b"a newer file where the snapshot has a directory", FUTURE)
    summary = engine.restore(target, "--snapshot", "daily.0")
    assert summary["status"] == "success"
    assert read(os.path.join(target, "top", "inside", "precious")) == b"keep me"
    assert read(os.path.join(target, "x")) == b"a newer file where the snapshot has a directory"
    assert summary["plan"]["samples"]["skip_conflict"] == ["top"]
    assert summary["plan"]["samples"]["skip_newer"] == ["x"]
    assert read(os.path.join(target, "a", "c", "file2")) == b"two two"


def test_mirror_makes_chosen_paths_exact_and_touches_nothing_else(engine, tmp_path):
    small_tree(engine)
    engine.backup()
    snap = engine.snapshot("daily.0")
    target = str(tmp_path / "prod")
    shutil.copytree(snap, target, symlinks=True)
    write(os.path.join(target, "a", "b", "file1"), b"newer", FUTURE)
    write(os.path.join(target, "a", "extra"), b"extra in a")
    write(os.path.join(target, "a", "c", "deep", "extra"), b"extra deep in a")
    write(os.path.join(target, "x", "extra"), b"extra outside the chosen path")
    write(os.path.join(target, "outside"), b"extra at the top")
    summary = engine.restore(target, "--snapshot", "daily.0", "--mirror", "--path", "a")
    assert summary["status"] == "success" and summary["mode"] == "mirror"
    assert not diff(listing(os.path.join(snap, "a")), listing(os.path.join(target, "a")))
    assert read(os.path.join(target, "x", "extra")) == b"extra outside the chosen path"
    assert read(os.path.join(target, "outside")) == b"extra at the top"
    plan = summary["plan"]
    assert plan["delete"] == {"files": 2, "dirs": 1, "bytes": len(b"extra in a") + len(b"extra deep in a")}
    assert sorted(plan["samples"]["delete"]) == ["a/c/deep", "a/c/deep/extra", "a/extra"]
    assert plan["overwrite"]["files"] == 1 and plan["skip_newer"]["files"] == 0
    # the whole snapshot in mirror mode: the whole target becomes the snapshot
    summary = engine.restore(target, "--snapshot", "daily.0", "--mirror", "--workers", "2", "--unit-files", "2")
    assert not diff(listing(snap), listing(target))
    assert sorted(summary["plan"]["samples"]["delete"]) == ["outside", "x/extra"]


def test_dry_run_reports_the_exact_plan_and_changes_nothing(engine, tmp_path):
    small_tree(engine)
    write(os.path.join(engine.source, "a", "big"), b"B" * 5000)
    engine.backup()
    target = str(tmp_path / "prod")
    shutil.copytree(engine.snapshot("daily.0"), target, symlinks=True)
    os.unlink(os.path.join(target, "a", "big"))  # create 5000
    shutil.rmtree(os.path.join(target, "x", "y"))  # create z/ and z/file3 (17), y/ and z/ dirs
    write(os.path.join(target, "a", "c", "file2"), b"old", 10 ** 9)  # overwrite 7
    write(os.path.join(target, "top"), b"newer top", FUTURE)  # skip_newer 9
    write(os.path.join(target, "a", "extra"), b"12345")  # delete 5 (mirror only)
    for mode, delete in (("safe", {"files": 0, "dirs": 0, "bytes": 0}), ("mirror", {"files": 1, "dirs": 0, "bytes": 5})):
        before = unchanged(target)
        extra = ("--mirror",) if mode == "mirror" else ()
        summary = engine.restore(target, "--snapshot", "daily.0", "--dry-run", *extra)
        assert unchanged(target) == before, "a dry run changes nothing"
        plan = summary["plan"]
        assert summary["dry_run"] is True and summary["mode"] == mode and summary["status"] == "success"
        assert plan["create"] == {"files": 2, "dirs": 2, "bytes": 5000 + len(b"three three three")}
        assert sorted(plan["samples"]["create"]) == ["a/big", "x/y", "x/y/z", "x/y/z/file3"]
        assert plan["delete"] == delete
        if mode == "safe":
            assert plan["overwrite"] == {"files": 1, "dirs": 0, "bytes": len(b"two two")}
            assert plan["skip_newer"] == {"files": 1, "dirs": 0, "bytes": len(b"top level")}
            assert plan["samples"]["skip_newer"] == ["top"]
        else:
            assert plan["overwrite"] == {"files": 2, "dirs": 0, "bytes": len(b"two two") + len(b"top level")}
            assert plan["skip_newer"]["files"] == 0 and plan["samples"]["delete"] == ["a/extra"]
        assert summary["totals"]["files_transferred"] == 0
        assert lock_free(engine)
    # a real run reports the same plan for what it did
    dry = engine.restore(target, "--snapshot", "daily.0", "--dry-run")
    real = engine.restore(target, "--snapshot", "daily.0")
    assert counts(real["plan"]) == counts(dry["plan"])
    assert real["totals"]["files_transferred"] == 3
    # a dry run into a missing target creates nothing, even when its parents are missing too (the workflow's
    # default target /efs-backup-restore/<execution> before the first restore); a real run refuses that
    for missing in (str(tmp_path / "not-yet"), str(tmp_path / "no-parent" / "not-yet")):
        summary = engine.restore(missing, "--snapshot", "daily.0", "--dry-run")
        assert not os.path.exists(missing) and summary["plan"]["create"]["files"] == 6
    assert not os.path.exists(tmp_path / "no-parent")
    assert "parent directory" in refused(engine, str(tmp_path / "no-parent" / "not-yet"), "--snapshot", "daily.0")


# -- refusals ----------------------------------------------------------------------------------------------
def refused(engine, target, *args, code=3):
    proc = engine.restore(target, *args, expect=code)
    assert lock_free(engine)
    return proc.stderr.decode()


def test_every_refusal_touches_nothing(engine, tmp_path):
    small_tree(engine)
    first = engine.backup()
    os.makedirs(engine.snapshot("weekly.0"))  # adopted from the old layout: no manifest
    write(os.path.join(engine.snapshot("weekly.0"), "old"), b"old")
    target = str(tmp_path / "prod")
    snap = ("--snapshot", "daily.0")
    copy = os.path.join(target, "state")
    shutil.copytree(engine.state("manifests"), os.path.join(copy, "manifests"))  # a copy passes the state check
    assert "inside the target" in refused(engine, target, *snap, "--state-dir", copy)
    shutil.rmtree(copy)
    write(os.path.join(target, "keep"), b"keep")
    before = unchanged(target)
    assert "no manifest" in refused(engine, target, "--snapshot", "weekly.0")
    assert "rsync -a --numeric-ids --update" in refused(engine, target, "--snapshot", "weekly.0")
    assert "no snapshot daily.7" in refused(engine, target, "--snapshot", "daily.7")
    assert "expected INTERVAL.N" in refused(engine, target, "--snapshot", "yesterday")
    assert "no snapshot of 'prod' has snapshot id" in refused(engine, target, "--snapshot", "id:0123abc")
    assert "earlier than every snapshot" in refused(engine, target, "--at", "2001-01-01T00:00:00Z")
    assert "is absolute" in refused(engine, target, *snap, "--path", "/a")
    assert "contains '..'" in refused(engine, target, *snap, "--path", "a/../../etc")
    assert "nothing to restore: a/nope is not in daily.0" in refused(engine, target, *snap, "--path", "a/nope")
    assert "link/file1 is not in daily.0" in refused(engine, target, *snap, "--path", "link/file1")
    assert "does not exist" in refused(engine, str(tmp_path / "no" / "such"), *snap)
    assert "overlap" in refused(engine, os.path.join(engine.root, "restored"), *snap)
    assert "overlap" in refused(engine, str(tmp_path), *snap)  # the backup root is inside the target
    os.symlink(engine.root, str(tmp_path / "sneaky"))
    assert "overlap" in refused(engine, str(tmp_path / "sneaky" / "prod" / "x"), *snap)
    other = str(tmp_path / "other-state")
    os.makedirs(os.path.join(other, "manifests"))
    assert "is not the state directory" in refused(engine, target, *snap, "--state-dir", other)
    assert "not a mount point" in refused(engine, target, *snap, "--require-mountpoint")
    manifest_path = engine.state("manifests", "daily.0.json")
    manifest = json.load(open(manifest_path))
    with open(manifest_path, "w") as handle:
        json.dump(dict(manifest, complete=False), handle)
    assert "does not mark it complete" in refused(engine, target, *snap)
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    with open(engine.state("journal.json"), "w") as handle:
        json.dump({"run_id": "killed-backup", "steps": [], "done": 0}, handle)
    assert "The next backup run of 'prod' completes the promotion" in refused(engine, target, *snap)
    assert "time zone" in refused(engine, target, "--at", "2026-11-20T00:00:00", code=64)
    assert "not allowed with" in refused(engine, target, *snap, "--at", "2026-11-20T00:00:00Z", code=64)
    assert unchanged(target) == before
    assert not os.listdir(engine.state("restores")) and not os.listdir(engine.state("history")) == []
    assert engine.backup()["status"] == "success"  # the backup completes the pending promotion
    assert not os.path.exists(engine.state("journal.json"))
    assert first["snapshot_id"] == json.load(open(engine.state("manifests", "daily.1.json")))["snapshot_id"]


# -- choosing the snapshot ---------------------------------------------------------------------------------
def set_finished(engine, name, iso):
    path = engine.state("manifests", name + ".json")
    manifest = json.load(open(path))
    manifest["finished"] = restores_time(iso)
    manifest["finished_iso"] = iso
    with open(path, "w") as handle:
        json.dump(manifest, handle)


def restores_time(iso):
    from efs_backup_engine.restore import parse_time

    return parse_time(iso)


def test_latest_id_and_at_resolve_under_the_lock_even_after_names_shifted(engine, tmp_path):
    mutator = TreeMutator(engine.source, 7)
    mutator.build(dirs=3, depth=2, files_per_dir=3)
    state_a = listing(engine.source)
    first = engine.backup(retain=4)
    mutator.mutate(10)
    state_b = listing(engine.source)
    second = engine.backup(retain=4)
    set_finished(engine, "daily.1", "2026-11-20T00:00:00Z")
    set_finished(engine, "daily.0", "2026-11-21T00:00:00Z")
    listed = {row["name"]: row for row in engine.list()["snapshots"]}
    assert listed["daily.1"]["snapshot_id"] == first["snapshot_id"]
    assert listed["daily.0"]["snapshot_id"] == second["snapshot_id"]
    assert listed["daily.0"]["finished"] == "2026-11-21T00:00:00Z"

    def restored(*selector):
        target = str(tmp_path / ("t-%d" % len(os.listdir(str(tmp_path)))))
        summary = engine.restore(target, *selector)
        tree = listing(target)
        del tree[b"."]
        return summary, tree

    def same(state, tree):
        expected = dict(state)
        del expected[b"."]
        return not diff(expected, tree)

    summary, tree = restored("--snapshot", "latest")
    assert summary["snapshot"] == "daily.0" and same(state_b, tree)
    summary, tree = restored("--at", "2026-11-20T12:00:00Z")
    assert summary["snapshot"] == "daily.1" and summary["snapshot_id"] == first["snapshot_id"] and same(state_a, tree)
    assert restored("--at", "2026-11-21T00:00:00Z")[0]["snapshot"] == "daily.0"  # at or before
    assert restored("--at", "2026-11-21T01:00:00+02:00")[0]["snapshot"] == "daily.1"  # an offset
    mutator.mutate(6)
    engine.backup(retain=4)  # names shift: the first snapshot is daily.2 now
    summary, tree = restored("--snapshot", "id:" + first["snapshot_id"])
    assert summary["snapshot"] == "daily.2" and same(state_a, tree)
    summary, tree = restored("--at", "2026-11-20T12:00:00Z")
    assert summary["snapshot"] == "daily.2" and summary["snapshot_id"] == first["snapshot_id"]
    assert restored("--snapshot", "latest")[0]["snapshot"] == "daily.0"
    assert "earlier than every snapshot" in refused(engine, str(tmp_path / "t-x"), "--at", "2026-11-19T23:59:59Z")


# -- lock, steps, workers ----------------------------------------------------------------------------------
def test_backups_and_restores_exclude_each_other(engine, tmp_path):
    small_tree(engine)
    engine.backup()
    common = ["--backup-root", engine.root, "--id", "prod"]
    target = str(tmp_path / "prod")
    engine.cli("restore-prepare", *common, "--target", target, "--snapshot", "daily.0", "--run-id", "r-1", check=0)
    busy = engine.cli("backup", "--source", engine.source, *common, "--interval", "daily", "--retain", "3", check=4)
    assert b"locked by run r-1 (a restore" in busy.stderr
    aborted = engine.cli("restore-abort", *common, "--run-id", "r-1", "--reason", "operator stopped it", "--json",
                         check=0)
    summary = json.loads(aborted.stdout)
    assert summary["kind"] == "restore" and summary["status"] == "failed"
    assert summary["failed_parts"][0] == {"path": "(run)", "reason": "operator stopped it"}
    assert {"path": ".", "reason": "not finished (worker stopped or lost)"} in summary["failed_parts"]
    assert history(engine, "r-1")["status"] == "failed" and lock_free(engine)
    assert os.listdir(os.path.join(target, ".efs-backup-restore.tmp")) == ["r-1"]  # abort never touches the target
    engine.cli("prepare", "--source", engine.source, *common, "--interval", "daily", "--retain", "3",
               "--run-id", "b-1", check=0)
    before = unchanged(target)
    busy = engine.restore(target, "--snapshot", "daily.0", expect=4)
    assert b"locked by run b-1 (interval daily" in busy.stderr
    assert unchanged(target) == before, "a refused restore writes nothing"
    engine.cli("abort", *common, "--interval", "daily", "--run-id", "b-1", check=0)
    assert engine.restore(target, "--snapshot", "daily.0")["status"] == "success"
    assert not os.path.exists(os.path.join(target, ".efs-backup-restore.tmp")), "the aborted run's temp dir is gone"


def test_the_steps_on_separate_workers_share_one_run(engine, tmp_path):
    TreeMutator(engine.source, 9).build(dirs=5, depth=2, files_per_dir=4)
    engine.backup()
    common = ["--backup-root", engine.root, "--id", "prod"]
    target = str(tmp_path / "prod")
    prepare = ["restore-prepare", *common, "--target", target, "--snapshot", "latest", "--workers", "3",
               "--unit-files", "4", "--run-id", "exec-9"]
    procs = [subprocess.Popen([sys.executable, ENGINE] + prepare, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    runs = [json.loads(proc.communicate()[0]) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    assert sum(1 for run in runs if run.get("joined")) == 2 and {run["snapshot"] for run in runs} == {"daily.0"}
    different = engine.cli(*prepare[:-2], "--mirror", "--run-id", "exec-9", check=3)
    assert b"other options (mode)" in different.stderr
    workers = [subprocess.Popen([sys.executable, ENGINE, "restore-work", *common, "--worker-id", "w%d" % i],
                                stdout=subprocess.PIPE) for i in range(3)]
    reports = [json.loads(worker.communicate()[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    final = engine.cli("restore-finalize", *common, "--run-id", "exec-9", "--json", check=0)
    summary = json.loads(final.stdout.decode().strip().splitlines()[-1])
    assert summary["status"] == "success" and summary["parts"] == sum(report["parts"] for report in reports)
    assert len(summary["workers"]) >= 2
    assert not diff(listing(engine.snapshot("daily.0")), listing(target))
    assert b"already finished" in engine.cli(*prepare, check=3).stderr  # a late joiner starts nothing


def test_three_workers_give_the_same_result_as_one(engine, tmp_path):
    mutator = TreeMutator(engine.source, 13)
    mutator.build(dirs=5, depth=2, files_per_dir=4)
    write(os.path.join(engine.source, "known", "older"), b"as backed up")
    write(os.path.join(engine.source, "known", "newer"), b"as backed up")
    engine.backup()
    mutator.mutate(25)  # the target: the snapshot's tree changed in every way, with newer and older files
    prepared = str(tmp_path / "prepared")
    subprocess.run(["cp", "-a", engine.source, prepared], check=True)
    write(os.path.join(prepared, "known", "older"), b"changed, older", 10 ** 18)  # overwritten in either mode
    write(os.path.join(prepared, "known", "newer"), b"changed, newer", FUTURE)  # kept in safe mode
    results = {}
    for workers in (1, 3):
        for mode in ("safe", "mirror"):
            target = str(tmp_path / ("t%d-%s" % (workers, mode)))
            subprocess.run(["cp", "-a", prepared, target], check=True)
            extra = ("--mirror",) if mode == "mirror" else ()
            summary = engine.restore(target, "--snapshot", "daily.0", "--workers", workers, "--unit-files", "3",
                                     *extra)
            assert summary["status"] == "success"
            assert summary["parts"] > 4 or workers == 1
            results[workers, mode] = listing(target), counts(summary["plan"])
    for mode in ("safe", "mirror"):
        assert results[1, mode][0] == results[3, mode][0], diff(results[1, mode][0], results[3, mode][0])
        assert results[1, mode][1] == results[3, mode][1]
    assert not diff(listing(engine.snapshot("daily.0")), results[3, "mirror"][0])
    assert results[1, "safe"][1]["skip_newer"]["files"] > 0 and results[1, "safe"][1]["overwrite"]["files"] > 0


def test_sigkill_mid_restore_then_a_rerun_completes_it_and_keeps_newer_files(engine, tmp_path):
    for d in range(20):
        for f in range(10):
            write(os.path.join(engine.source, "d%02d" % d, "f%d" % f), b"x" * (100 * f))
    write(os.path.join(engine.source, "big", "large.bin"), os.urandom(1 << 20) * 64)
    engine.backup()
    target = str(tmp_path / "prod")
    write(os.path.join(target, "d05", "f3"), b"written after the snapshot", FUTURE)
    command = [sys.executable, ENGINE, "restore", "--backup-root", engine.root, "--id", "prod", "--target", target,
               "--snapshot", "daily.0", "--workers", "2", "--unit-files", "15", "--quiet"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    temp_root = os.path.join(target, ".efs-backup-restore.tmp")
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        if any(files for _d, _s, files in os.walk(temp_root)):
            break  # rsync is writing a temporary file: kill now
    assert proc.poll() is None, "the restore finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left_behind = any(files for _d, _s, files in os.walk(temp_root))  # unless rsync renamed it just before
    assert os.path.exists(engine.state("lock")), "the killed run's lock is left to go stale"
    assert not os.path.exists(os.path.join(target, "big", "large.bin")) or \
        read(os.path.join(target, "big", "large.bin")) == read(os.path.join(engine.snapshot("daily.0"), "big",
                                                                              "large.bin")), \
        "no half-written file under a real name"
    summary = engine.restore(target, "--snapshot", "daily.0", "--workers", "2", "--unit-files", "15")
    assert summary["status"] == "success"
    assert read(os.path.join(target, "d05", "f3")) == b"written after the snapshot"
    assert summary["plan"]["samples"]["skip_newer"] == ["d05/f3"]
    expected, got = listing(engine.snapshot("daily.0")), listing(target)
    assert sorted(set(expected) ^ set(got)) == [] and not os.path.exists(temp_root), left_behind
    assert diff(expected, got) == ["b'd05/f3': expected %r, got %r" % (expected[b"d05/f3"], got[b"d05/f3"])]


def test_names_of_any_bytes_restore(engine, tmp_path):
    names = os.path.join(os.fsencode(engine.source), b"names")
    for name in NAMES_CORPUS:
        write(os.path.join(names, name, name), name)
    engine.backup()
    target = str(tmp_path / "prod")
    summary = engine.restore(target, "--snapshot", "daily.0", "--workers", "2", "--unit-files", "3")
    assert summary["status"] == "success"
    assert not diff(listing(engine.snapshot("daily.0")), listing(target))
    chosen = [b"names/%s/%s" % (name, name) for name in (b"new\nline", b"\xff\xfe invalid utf-8 \x80",
                                                          b"arrow -> not a link")]
    only = str(tmp_path / "only")
    args = [arg for path in chosen for arg in ("--path", os.fsdecode(path))]
    summary = engine.restore(only, "--snapshot", "daily.0", *args)
    assert summary["plan"]["create"]["files"] == 3
    for path in chosen:
        assert read(os.path.join(os.fsencode(only), path)) == read(os.path.join(os.fsencode(target), path))
    assert sorted(os.listdir(os.path.join(os.fsencode(only), b"names"))) == sorted(p.split(b"/")[1] for p in chosen)
    shutil.rmtree(only)
    dry = engine.restore(only, "--snapshot", "daily.0", "--dry-run", *args)
    assert "names/\\xff\\xfe invalid utf-8 \\x80/\\xff\\xfe invalid utf-8 \\x80" in dry["plan"]["samples"]["create"]


def test_a_symlink_on_the_target_is_never_followed_out_of_it(engine, tmp_path):
    write(os.path.join(engine.source, "dir", "passwd"), b"from the snapshot")
    write(os.path.join(engine.source, "dir", "sub", "file"), b"deeper")
    write(os.path.join(engine.source, "other", "f"), b"f")
    engine.backup()
    outside = str(tmp_path / "etc")
    write(os.path.join(outside, "passwd"), b"root:x:0:0")
    before = unchanged(outside)
    for workers, unit_files in ((1, "100"), (2, "1")):  # one part, and "dir" a part of its own
        target = str(tmp_path / ("prod-%d" % workers))
        os.makedirs(target)
        os.symlink(outside, os.path.join(target, "dir"))
        summary = engine.restore(target, "--snapshot", "daily.0", "--workers", workers, "--unit-files", unit_files)
        assert summary["status"] == "success"
        assert unchanged(outside) == before
        assert os.readlink(os.path.join(target, "dir")) == outside, "a newer symlink is kept in safe mode"
        assert summary["plan"]["samples"]["skip_newer"] == ["dir"]
        failed = engine.restore(target, "--snapshot", "daily.0", "--path", "dir/sub", expect=1)
        [part] = failed["failed_parts"]
        assert part["path"] == "dir/sub" and "is not a directory (a symlink)" in part["reason"]
        assert unchanged(outside) == before
        summary = engine.restore(target, "--snapshot", "daily.0", "--mirror", "--workers", workers,
                                 "--unit-files", unit_files)
        assert summary["status"] == "success" and unchanged(outside) == before
        assert not diff(listing(engine.snapshot("daily.0")), listing(target))


def _mount(*args):
    return subprocess.run(["mount"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode == 0


def test_restore_from_a_read_only_backup_root_writes_only_through_the_state_dir(engine, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount")
    TreeMutator(engine.source, 17).build(dirs=4, depth=2, files_per_dir=3)
    engine.backup()
    ro_root, rw_state = str(tmp_path / "ro-root"), str(tmp_path / "rw-state")
    os.makedirs(ro_root)
    os.makedirs(rw_state)
    mounted = []
    try:
        if not _mount("--bind", engine.root, ro_root):
            pytest.skip("mount --bind is not possible here")
        mounted.append(ro_root)
        if not _mount("-o", "remount,bind,ro", ro_root):
            pytest.skip("a read-only remount is not possible here")
        if not _mount("--bind", engine.state(), rw_state):
            pytest.skip("mount --bind is not possible here")
        mounted.append(rw_state)
        with pytest.raises(OSError):
            open(os.path.join(ro_root, "probe"), "w")
        before = listing(engine.root)
        target = str(tmp_path / "prod")
        args = ["restore", "--backup-root", ro_root, "--id", "prod", "--target", target, "--snapshot", "latest",
                "--state-dir", rw_state, "--workers", "2", "--unit-files", "4", "--json", "--quiet"]
        without = engine.cli(*[a for a in args if a not in ("--state-dir", rw_state)], check=3)
        assert b"Read-only file system" in without.stderr and b"--state-dir" in without.stderr
        summary = json.loads(engine.cli(*args, check=0).stdout)
        assert summary["status"] == "success" and summary["parts"] > 1
        assert not diff(listing(os.path.join(ro_root, "prod", "daily.0")), listing(target))
        assert os.path.exists(os.path.join(rw_state, "history", summary["run_id"] + ".json"))
        after = listing(engine.root)
        assert {p for p in set(after) ^ set(before) if not p.startswith(b"prod/.efs-backup/")} == set()
        assert engine.cli(*args[:-2], "--require-mountpoint", "--json", check=3).stderr.find(b"same device") > 0
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", path], check=True)


def test_files_written_on_the_target_between_the_scan_and_the_copy_are_kept(engine, tmp_path, monkeypatch):
    from efs_backup_engine import restore as restores
    from efs_backup_engine.state import RestoreRequest

    small_tree(engine)
    engine.backup()
    target = str(tmp_path / "prod")
    shutil.copytree(engine.snapshot("daily.0"), target, symlinks=True)
    write(os.path.join(target, "a", "c", "file2"), b"old", 10 ** 9)  # older: planned as an overwrite
    os.unlink(os.path.join(target, "top"))  # missing: planned as a create
    real_parse = restores.parse

    def parse_then_write(out, src):
        yield from real_parse(out, src)
        # production writes both files after the engine sorted the scan, before it copies
        write(os.path.join(target, "a", "c", "file2"), b"written meanwhile")
        write(os.path.join(target, "top"), b"created meanwhile")

    monkeypatch.setattr(restores, "parse", parse_then_write)
    run = restores.prepare(RestoreRequest(engine.root, "prod", target, snapshot="daily.0", step=True))
    [result] = restores.work(engine.root, "prod", "w0")
    summary = restores.finalize(engine.root, "prod", run.run_id)
    assert read(os.path.join(target, "a", "c", "file2")) == b"written meanwhile"
    assert read(os.path.join(target, "top")) == b"created meanwhile"
    assert sorted(summary["plan"]["samples"]["skip_newer"]) == ["a/c/file2", "top"]
    assert summary["plan"]["overwrite"]["files"] == summary["plan"]["create"]["files"] == 0
    assert summary["plan"]["samples"]["overwrite"] == summary["plan"]["samples"]["create"] == []
    assert any("written on the target during the restore" in message for message in result["messages"])
    assert summary["status"] == "success" and lock_free(engine)
