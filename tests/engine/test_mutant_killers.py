"""Tests for hand-made mutants of the engine that no other test killed (issue 10, "Tests that catch mutants").

Each test names the mutant it kills; each was checked by applying that mutant by hand and seeing the test fail:
- restore: the dry-run guard on the unlink in the walk of a chosen path removed;
- resume: the source-equality condition dropped (a run resumed with another --source kept the old source's parts);
- lock: a zombie (exited, not yet reaped) process counted as alive, caught before only by chance.
"""

import json
import os
import shutil
import socket
import subprocess
import time

from test_lock import fake_lock, make_tree
from test_restore import small_tree, unchanged, write
from treeops import diff, listing

OLD = 10 ** 9  # 1970-01-01T00:00:01Z: older than any snapshot


def test_dry_run_path_restore_over_an_older_non_directory_changes_nothing_and_reports_it(engine, tmp_path):
    """Mutant: `if not dry_run:` removed before the unlink of a chosen directory's older non-directory on the
    target. The dry run then deleted `a/b` (a file on the target) and still reported "nothing was changed"."""
    small_tree(engine)
    engine.backup()
    target = str(tmp_path / "prod")
    shutil.copytree(engine.snapshot("daily.0"), target, symlinks=True)
    shutil.rmtree(os.path.join(target, "a", "b"))
    write(os.path.join(target, "a", "b"), b"a file where the snapshot has the directory", OLD)
    for extra in ((), ("--mirror",)):
        before = unchanged(target)
        summary = engine.restore(target, "--snapshot", "daily.0", "--path", "a/b", "--dry-run", *extra)
        assert unchanged(target) == before, "a dry run changes nothing (listing and ctimes)"
        assert summary["status"] == "success" and summary["dry_run"] is True, summary
        plan = summary["plan"]
        assert plan["overwrite"]["dirs"] == 1 and plan["samples"]["overwrite"] == ["a/b"], plan
        assert plan["create"]["files"] == 1 and plan["samples"]["create"] == ["a/b/file1"], plan
        assert summary["totals"]["files_transferred"] == 0
    # the real run does what the dry run reported
    real = engine.restore(target, "--snapshot", "daily.0", "--path", "a/b")
    assert real["plan"]["overwrite"]["dirs"] == 1 and real["plan"]["create"]["files"] == 1
    assert not diff(listing(os.path.join(engine.snapshot("daily.0"), "a", "b")),
                    listing(os.path.join(target, "a", "b")))


def test_a_run_resumed_with_another_source_promotes_nothing_of_the_old_source(engine, tmp_path):
    """Mutant: resume keeps finished parts without checking that the interrupted run had the same --source. The
    run with the new source then promoted the old source's parts as its own."""
    old, new = str(tmp_path / "old-source"), engine.source
    for root, tag in ((old, b"OLD"), (new, b"new")):
        for d in range(4):
            write(os.path.join(root, "d%d" % d, "f"), tag + b" %d" % d)
        write(os.path.join(root, "top"), tag)
    common = ["--backup-root", engine.root, "--id", "prod", "--interval", "daily"]
    engine.cli("prepare", "--source", old, "--retain", "2", "--workers", "2", "--unit-files", "1",
               "--run-id", "run-old", *common, check=0)
    engine.cli("work", "--worker-id", "w0", *common, check=0)  # every part of the old source finishes
    engine.cli("abort", "--run-id", "run-old", *common, check=0)  # then the run is abandoned, work kept
    summary = engine.backup(retain=2, workers=2, extra=("--unit-files", "1"))
    assert summary["status"] == "success" and summary["attempt"] == 2
    problems = diff(listing(new), listing(engine.snapshot("daily.0")))
    assert not problems, "the snapshot must be the new source's, none of the old one's: %s" % problems
    assert summary["resumed_parts"] == 0, "no part of another source may be kept"


def _zombie():
    """A child that has exited and is not reaped: /proc/<pid>/stat exists, state Z."""
    child = subprocess.Popen(["true"])
    deadline = time.time() + 10
    while time.time() < deadline:
        with open("/proc/%d/stat" % child.pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return child, fields[19]  # state, and the process start time the heartbeat name carries
        time.sleep(0.01)
    raise AssertionError("the child never became a zombie")


def test_a_zombie_holding_the_lock_is_dead_deterministically(engine):
    """Mutant: _process_start ignores the process state, so a zombie (killed, waiting to be reaped by a parent that
    is busy or hung) counts as a live lock holder and every run is refused until it is reaped."""
    make_tree(engine, files=16)
    child, start = _zombie()
    try:
        host = socket.gethostname()
        layout = fake_lock(engine, host, age_seconds=0)  # fresh: only the process check can call it dead
        os.rename(os.path.join(layout.lock_dir, "hb.%s.4242.1234" % host),
                  os.path.join(layout.lock_dir, "hb.%s.%d.%s" % (host, child.pid, start)))
        shown = engine.cli("unlock", "--backup-root", engine.root, "--id", "prod", check=0).stdout.decode()
        assert "ALIVE" not in shown, shown
        summary = engine.backup(retain=2)
        assert summary["status"] == "success" and engine.snapshots() == ["daily.0"]
        with open(os.path.join(layout.broken_locks, "t-other-run", "broken.txt")) as handle:
            assert "dead" in handle.read()
    finally:
        child.wait()
    assert json.loads(engine.cli("list", "--backup-root", engine.root, "--id", "prod", "--json",
                                 check=0).stdout)["lock"]["held"] is False
