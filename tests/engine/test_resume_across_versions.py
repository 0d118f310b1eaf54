"""A run prepared by the engine before the refactor of issue 13 (typed run state, "part" for "unit") resumes under
this engine, and the other way round (a rollback): the run state on disk (run.json, units/, claims/, results/) is
the same format. The earlier engine is the real one, exported from git at BASE into a temporary directory."""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from enginekit import ENGINE, REPO
from treeops import COMMENT_LIKE_NAMES, NAMES_CORPUS, TreeMutator, diff, listing

# main just before the engine's refactor: the engine that wrote the runs in flight when this one is deployed.
BASE = "21ff37a"
COMMON = ["--id", "prod", "--interval", "daily"]
# The names the engine at BASE copies right: it left out names rsync 3.5 reads as --files-from comments.
BASE_NAMES = [name for name in NAMES_CORPUS if name not in COMMENT_LIKE_NAMES]


@pytest.fixture
def earlier(tmp_path):
    """The command line of the engine at BASE."""
    if not os.path.isdir(os.path.join(REPO, ".git")) and not os.path.isfile(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout: the earlier engine cannot be exported")
    proc = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", BASE, "assets/scripts"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0, "the earlier engine (%s) must be in the repository's history: %s" % (
        BASE, proc.stderr.decode())
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        archive.extractall(str(tmp_path / "earlier"))
    return str(tmp_path / "earlier" / "assets" / "scripts" / "efs-backup-engine")


def run(launcher, *args, check=0):
    proc = subprocess.run([sys.executable, launcher] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == check, (launcher, args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    return proc


def last_json(proc):
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def run_dir(engine):
    return engine.state("runs", "daily")


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("first,second", [("earlier", "this"), ("this", "earlier")])
def test_a_backup_prepared_and_half_done_by_one_engine_is_resumed_by_the_other(engine, earlier, first, second):
    """One engine prepares a 2-worker run, syncs every part, then loses the result of one part (its worker was
    killed between syncing it and recording it) whose directory changes meanwhile; the run is aborted. The other
    engine resumes it: attempt 2, every recorded part kept, the lost one redone, the snapshot exactly the source."""
    engines = {"earlier": earlier, "this": ENGINE}
    root = ["--backup-root", engine.root]
    TreeMutator(engine.source, 13, BASE_NAMES).build(dirs=5, depth=2, files_per_dir=4)
    run(engines[first], "prepare", "--source", engine.source, "--retain", "2", "--workers", "2", "--unit-files", "6",
        "--run-id", "run-1", *root, *COMMON)
    run(engines[first], "work", "--worker-id", "w0", *root, *COMMON)
    results = sorted(os.listdir(os.path.join(run_dir(engine), "results")))
    assert len(results) > 3, "the tree must have been split into parts"
    lost = None
    for name in results:
        spec = json.loads(read(os.path.join(run_dir(engine), "units", name)))
        if spec["path"] and not spec.get("split"):
            lost = name, spec
            break
    assert lost, "a part below the root"
    name, spec = lost
    os.unlink(os.path.join(run_dir(engine), "results", name))
    changed = os.path.join(engine.source, spec["path"], *(spec.get("names") or [])[:1], "written-meanwhile")
    with open(changed, "w") as handle:
        handle.write("the redone part copies this")
    run(engines[first], "abort", "--run-id", "run-1", "--reason", "worker lost", *root, *COMMON)
    record_before = json.loads(read(os.path.join(run_dir(engine), "run.json")))

    prepared = last_json(run(engines[second], "prepare", "--source", engine.source, "--retain", "2", "--workers", "2",
                             "--unit-files", "6", "--run-id", "run-2", *root, *COMMON))
    assert prepared["attempt"] == 2 and prepared["resumed_from"] == "run-1" and prepared["tree_base"] == "resumed"
    assert prepared["resumed_parts"] == len(results) - 1
    assert prepared["started"] == record_before["started"], "the resumed run keeps its start"
    saved = json.loads(read(os.path.join(run_dir(engine), "run.json")))
    assert set(saved) == set(record_before) | {"resumed_from", "resumed_parts"}, (sorted(saved), sorted(record_before))
    assert saved == prepared
    for worker in ("w0", "w1"):
        run(engines[second], "work", "--worker-id", worker, *root, *COMMON)
    summary = last_json(run(engines[second], "finalize", "--run-id", "run-2", "--json", *root, *COMMON))
    assert summary["status"] == "success" and summary["attempt"] == 2, summary
    assert summary["resumed_parts"] == len(results) - 1 and summary["parts"] == len(results)
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))
    assert read(os.path.join(engine.snapshot("daily.0"), os.path.relpath(changed, engine.source))) == \
        b"the redone part copies this"


@pytest.mark.parametrize("first,second", [("earlier", "this"), ("this", "earlier")])
def test_a_restore_prepared_by_one_engine_is_worked_and_finalized_by_the_other(engine, earlier, first, second,
                                                                               tmp_path):
    """restore-prepare on one engine (the step the first worker runs), restore-work and restore-finalize on the
    other: the record both read is the same, and the restore is exact."""
    engines = {"earlier": earlier, "this": ENGINE}
    root = ["--backup-root", engine.root, "--id", "prod"]
    TreeMutator(engine.source, 17, BASE_NAMES).build(dirs=4, depth=2, files_per_dir=4)
    engine.backup()
    target = str(tmp_path / "target")
    prepared = last_json(run(engines[first], "restore-prepare", "--target", target, "--snapshot", "daily.0",
                             "--workers", "2", "--unit-files", "5", "--run-id", "exec-1", *root))
    record = json.loads(read(engine.state("restores", "exec-1", "run.json")))
    assert prepared == record and record["kind"] == "restore" and record["unit_files"] == 5
    joined = last_json(run(engines[second], "restore-prepare", "--target", target, "--snapshot", "daily.0",
                           "--workers", "2", "--unit-files", "5", "--run-id", "exec-1", *root))
    assert joined == dict(record, joined=True), "the joiner reads the record as it was written"
    for worker in ("w0", "w1"):
        run(engines[second], "restore-work", "--worker-id", worker, "--run-id", "exec-1", *root, check=0)
    summary = last_json(run(engines[second], "restore-finalize", "--run-id", "exec-1", "--json", *root))
    assert summary["status"] == "success" and summary["parts"] > 1, summary
    assert not diff(listing(engine.snapshot("daily.0")), listing(target))


def test_both_engines_write_the_same_run_records(engine, earlier, tmp_path):
    """The records each engine writes for the same request: the same keys, the same values but for the run's
    own (its id, backup-id, times and run-specific paths). A fresh backup run, its resumed attempt, and a restore."""
    records = {}
    TreeMutator(engine.source, 19, BASE_NAMES).build(dirs=3, depth=2, files_per_dir=3)
    engine.backup()
    for name, launcher in (("earlier", earlier), ("this", ENGINE)):
        common = ["--backup-root", engine.root, "--id", name, "--interval", "daily"]
        prepare = ["prepare", "--source", engine.source, "--retain", "2", "--workers", "2", "--unit-files", "4"]
        fresh = last_json(run(launcher, *prepare, "--run-id", "fresh", *common))
        run(launcher, "abort", "--run-id", "fresh", *common)
        resumed = last_json(run(launcher, *prepare, "--run-id", "again", *common))
        run(launcher, "abort", "--run-id", "again", *common)
        restore = last_json(run(launcher, "restore-prepare", "--target", str(tmp_path / name), "--snapshot", "daily.0",
                                "--workers", "2", "--unit-files", "5", "--dry-run", "--run-id", "restore-" + name,
                                "--backup-root", engine.root, "--id", "prod"))
        run(launcher, "restore-abort", "--run-id", "restore-" + name, "--backup-root", engine.root, "--id", "prod")
        records[name] = {"fresh": fresh, "resumed": resumed, "restore": restore}
    own = {"run_id", "backup_id", "started", "attempt_started", "resumed_from", "scratch", "temp", "target",
           "target_in_mount"}
    for kind in ("fresh", "resumed", "restore"):
        earlier_record, this_record = records["earlier"][kind], records["this"][kind]
        assert sorted(earlier_record) == sorted(this_record), kind
        assert {key: value for key, value in earlier_record.items() if key not in own} == \
            {key: value for key, value in this_record.items() if key not in own}, kind
    assert "resumed_from" not in records["this"]["fresh"] and records["this"]["resumed"]["resumed_from"] == "fresh"
