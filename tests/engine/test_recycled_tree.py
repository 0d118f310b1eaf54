"""Issue 10's six defects, one regression test each, reproduced as the issue describes them on the local runner.

From the `retain` + 2nd run of an interval on, the engine recycles the expired snapshot as its work tree; every
source change since that tree was taken must be applied to it exactly, nothing may be written or deleted outside
the work tree, and no run may leave the interval unable to back up. `B` below is one `backup --retain 3` run: the
fifth run of an interval is the first one that recycles a tree.

Each test checks the snapshot's exact contents (listing: type, mode, owner, ns mtime, content hash, symlink
target), hard-link groups where they matter, exit codes, and a canary directory outside every tree.
"""

import json
import os
import shutil

import pytest

from enginekit import WITHOUT_READ_OVERRIDE
from treeops import diff, fingerprint, hardlink_groups, listing

RETAIN = 3
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="drops root's capabilities with setpriv: needs root")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def canary(tmp_path):
    """A directory outside the source and the backup root, with a file and a subdirectory; checked unchanged."""
    root = tmp_path / "outside"
    write(str(root / "victim"), b"outside the trees\n")
    write(str(root / "sub" / "deep"), b"deeper outside\n")
    before = fingerprint(str(root))

    def check():
        assert not diff(before, fingerprint(str(root))), "the canary outside every tree was touched"

    check.path = str(root)
    yield check
    check()


def backup(engine, workers=1, expect=0, extra=()):
    return engine.backup(retain=RETAIN, workers=workers, expect=expect, extra=extra)


def assert_snapshot_is(engine, name, expected):
    problems = diff(expected, listing(engine.snapshot(name)))
    assert not problems, "%s differs from the source state it was taken of: %s" % (name, problems)


def four_runs(engine, workers=1, extra=()):
    """B x4: after these, the next run recycles the first run's tree."""
    for _ in range(RETAIN + 1):
        backup(engine, workers=workers, extra=extra)


@pytest.mark.parametrize("workers,extra", [(1, ()), (2, ("--unit-files", "1")), (1, ("--resume-max-age", "0"))])
def test_defect1_a_file_replaced_by_a_directory_is_backed_up_and_later_runs_succeed(engine, canary, workers,
                                                                                   extra):
    src = engine.source
    write(os.path.join(src, "c"), b"x\n")
    four_runs(engine, workers, extra)
    os.unlink(os.path.join(src, "c"))
    write(os.path.join(src, "c", "inner"), b"z\n")
    state = listing(src)
    summary = backup(engine, workers, extra=extra)  # exit 0 expected; today: exit 1, NotADirectoryError
    assert summary["status"] == "success"
    assert_snapshot_is(engine, "daily.0", state)
    # and every later run succeeds too (today every later run fails the same way)
    for _ in range(RETAIN):
        summary = backup(engine, workers, extra=extra)
        assert summary["status"] == "success"
    for index in range(RETAIN):
        assert_snapshot_is(engine, "daily.%d" % index, state)


def test_defect2_a_symlink_to_an_in_tree_directory_replaced_by_a_directory_loses_nothing(engine, canary):
    src = engine.source
    write(os.path.join(src, "other", "victim"), b"v\n")
    os.symlink("other", os.path.join(src, "l"))
    four_runs(engine)
    os.unlink(os.path.join(src, "l"))
    write(os.path.join(src, "l", "victim"), b"n\n")
    state = listing(src)
    backup(engine)  # today: exit 0 but daily.0 lacks other/victim
    assert_snapshot_is(engine, "daily.0", state)
    assert read(os.path.join(engine.snapshot("daily.0"), "other", "victim")) == b"v\n"
    backup(engine)  # today: l/victim's content lands in other/victim
    assert_snapshot_is(engine, "daily.0", state)
    assert_snapshot_is(engine, "daily.1", state)
    assert read(os.path.join(engine.snapshot("daily.0"), "other", "victim")) == b"v\n"


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_defect3_a_symlink_out_of_both_trees_replaced_by_a_directory_touches_nothing_outside(engine, canary,
                                                                                            relative):
    src = engine.source
    target = os.path.relpath(canary.path, src) if relative else canary.path
    os.symlink(target, os.path.join(src, "l"))
    write(os.path.join(src, "keep"), b"k\n")
    four_runs(engine)
    canary()
    os.unlink(os.path.join(src, "l"))
    write(os.path.join(src, "l", "victim"), b"n\n")
    write(os.path.join(src, "l", "sub", "deep"), b"in the source\n")
    state = listing(src)
    for run in range(RETAIN + 1):  # today: the outside files are deleted, linked, deleted again, run after run
        backup(engine)
        canary()
        assert_snapshot_is(engine, "daily.0", state)


def test_defect3_a_directory_replaced_by_a_symlink_out_of_the_trees_is_never_written_through(engine, canary):
    """The reverse change: the recycled tree has a directory where the source now has an absolute symlink to the
    outside; the symlink is copied as a symlink and nothing is written through it, run after run."""
    src = engine.source
    write(os.path.join(src, "l", "victim"), b"in the source\n")
    write(os.path.join(src, "l", "sub", "deep"), b"in the source, deeper\n")
    four_runs(engine)
    shutil.rmtree(os.path.join(src, "l"))
    os.symlink(canary.path, os.path.join(src, "l"))
    state = listing(src)
    for run in range(RETAIN + 1):
        backup(engine)
        canary()
        assert_snapshot_is(engine, "daily.0", state)


@pytest.mark.parametrize("recycled", [False, True], ids=["new-tree", "recycled-tree"])
def test_defect4_a_hard_link_group_split_in_the_source_is_split_in_the_snapshot(engine, canary, recycled):
    src = engine.source
    write(os.path.join(src, "a"), b"s\n")
    os.link(os.path.join(src, "a"), os.path.join(src, "b"))
    if recycled:
        four_runs(engine)
    else:
        backup(engine)
    shutil.copy2(os.path.join(src, "b"), os.path.join(src, "b.t"))  # cp -p b b.t; mv b.t b
    os.rename(os.path.join(src, "b.t"), os.path.join(src, "b"))
    assert hardlink_groups(src) == []
    state = listing(src)
    backup(engine)  # today: a and b are still one inode in daily.0
    assert_snapshot_is(engine, "daily.0", state)
    assert hardlink_groups(engine.snapshot("daily.0")) == [], "a and b are two files in the source"


@pytest.mark.parametrize("recycled", [False, True], ids=["new-tree", "recycled-tree"])
def test_defect4_two_files_merged_into_a_hard_link_group_are_one_inode_in_the_snapshot(engine, canary, recycled):
    src = engine.source
    write(os.path.join(src, "a"), b"same\n")
    shutil.copy2(os.path.join(src, "a"), os.path.join(src, "b"))
    if recycled:
        four_runs(engine)
    else:
        backup(engine)
    os.unlink(os.path.join(src, "b"))  # ln -f a b
    os.link(os.path.join(src, "a"), os.path.join(src, "b"))
    state = listing(src)
    backup(engine)
    assert_snapshot_is(engine, "daily.0", state)
    assert hardlink_groups(engine.snapshot("daily.0")) == [[b"a", b"b"]]


def test_defect4_verify_compares_hard_link_groups(engine):
    """verify must notice a snapshot whose hard-link structure differs from the source's (a split group)."""
    src = engine.source
    write(os.path.join(src, "a"), b"s\n")
    os.link(os.path.join(src, "a"), os.path.join(src, "b"))
    write(os.path.join(src, "c"), b"alone\n")
    backup(engine)
    snapshot = engine.snapshot("daily.0")
    assert hardlink_groups(snapshot) == [[b"a", b"b"]]
    verify = ["verify", "--source", src, "--backup-root", engine.root, "--id", "prod", "--snapshot", "daily.0",
              "--checksum", "full", "--json"]
    assert json.loads(engine.cli(*verify, check=0).stdout)["mismatch_count"] == 0
    # split the group inside the snapshot (same content, same metadata: only the structure differs)
    shutil.copy2(os.path.join(snapshot, "b"), os.path.join(snapshot, "b.t"))
    os.rename(os.path.join(snapshot, "b.t"), os.path.join(snapshot, "b"))
    os.utime(snapshot, ns=(os.lstat(src).st_atime_ns, os.lstat(src).st_mtime_ns))
    assert not diff(listing(src), listing(snapshot)), "per-entry metadata is identical"
    report = json.loads(engine.cli(*verify, check=2).stdout)  # today: exit 0, no mismatch
    assert report["mismatch_count"] >= 1
    assert "hard link" in "\n".join(report["mismatches"]).lower()


@AS_ROOT
@pytest.mark.parametrize("recycled", [False, True], ids=["new-tree", "recycled-tree"])
def test_defect5_an_unreadable_directory_never_brings_deleted_files_back(engine, canary, recycled):
    """Root without CAP_DAC_READ_SEARCH/CAP_DAC_OVERRIDE (as with NFS root squashing) cannot open a mode-000
    directory. Deletions elsewhere in the same part must still propagate, or the part fails and nothing is
    promoted; either way the run summary names the unreadable path."""
    src = engine.source
    engine.wrapper = WITHOUT_READ_OVERRIDE
    write(os.path.join(src, "docs", "gone"), b"deleted before the last run\n")
    write(os.path.join(src, "docs", "keep"), b"kept\n")
    write(os.path.join(src, "top-gone"), b"deleted too\n")
    write(os.path.join(src, "locked", "secret"), b"unreadable\n")
    if recycled:
        four_runs(engine)
    else:
        backup(engine)
    os.chmod(os.path.join(src, "locked"), 0)
    os.unlink(os.path.join(src, "docs", "gone"))
    os.unlink(os.path.join(src, "top-gone"))
    names_before = engine.snapshots()
    before = listing(engine.snapshot("daily.0"))
    proc = engine.cli("backup", "--source", src, "--backup-root", engine.root, "--id", "prod", "--interval",
                      "daily", "--retain", RETAIN, "--json", "--quiet")
    os.chmod(os.path.join(src, "locked"), 0o755)
    text = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode in (1, 2), (proc.returncode, text)
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    assert "locked" in json.dumps(summary), "the run summary names the unreadable path: %s" % summary
    if proc.returncode == 1:  # the part failed honestly: nothing promoted
        assert summary["status"] == "failed"
        assert engine.snapshots() == names_before
        assert not diff(before, listing(engine.snapshot("daily.0")))
        return
    assert summary["status"] == "warning"
    assert summary.get("unreadable") == ["locked"], summary.get("unreadable")
    snapshot = engine.snapshot("daily.0")
    # README: the unreadable directory's copy is the newest snapshot's copy (not an empty directory, not deleted)
    assert read(os.path.join(snapshot, "locked", "secret")) == b"unreadable\n"
    assert not os.path.lexists(os.path.join(snapshot, "docs", "gone")), "a deleted file came back"
    assert not os.path.lexists(os.path.join(snapshot, "top-gone")), "a deleted file came back"
    assert read(os.path.join(snapshot, "docs", "keep")) == b"kept\n"
    expected = {path: meta for path, meta in listing(src).items() if not path.startswith(b"locked")}
    actual = {path: meta for path, meta in listing(snapshot).items() if not path.startswith(b"locked")}
    problems = diff(expected, actual)
    assert not problems, "everything readable must be exact: %s" % problems


@pytest.mark.parametrize("recycled", [False, True], ids=["new-tree", "recycled-tree"])
def test_defect6_hard_link_names_containing_the_arrow_are_parsed_exactly(engine, canary, recycled):
    src = os.fsencode(engine.source)
    names = [b"p", b"p => q", b"q"]
    write(os.path.join(src, b"g", names[0]), b"old content\n")
    for name in names[1:]:
        os.link(os.path.join(src, b"g", names[0]), os.path.join(src, b"g", name))
    if recycled:
        four_runs(engine)
    else:
        backup(engine)
    with open(os.path.join(src, b"g", b"q"), "r+b") as handle:  # the group's content changes (all three names)
        handle.write(b"NEW")
    state = listing(engine.source)
    backup(engine)  # today: daily.0/g/'p => q' keeps the old content and leaves the group
    assert_snapshot_is(engine, "daily.0", state)
    assert hardlink_groups(engine.snapshot("daily.0")) == [[b"g/p", b"g/p => q", b"g/q"]]
    assert read(os.path.join(os.fsencode(engine.snapshot("daily.0")), b"g", b"p => q")) == b"NEW content\n"


@AS_ROOT
def test_a_failure_deleting_expired_trees_after_promotion_is_not_a_failed_run(engine, canary):
    """Found by the model suite: lowering the retention sends expired trees to the trash, deleted lazily after the
    promotion. A tree the run cannot delete (here: a readable but not searchable directory, root without the
    read-override capabilities) must not turn the promoted run into exit 1 ("failed, nothing promoted") with a
    traceback and no summary: the run reports its snapshot, and the next run succeeds."""
    src = engine.source
    write(os.path.join(src, "keep"), b"k\n")
    write(os.path.join(src, "locked", "secret"), b"s\n")
    os.chmod(os.path.join(src, "locked"), 0o644)  # listable, not searchable
    for _ in range(3):
        engine.backup(retain=3)
    engine.wrapper = WITHOUT_READ_OVERRIDE
    proc = engine.cli("backup", "--source", src, "--backup-root", engine.root, "--id", "prod", "--interval",
                      "daily", "--retain", 1, "--json", "--quiet")
    engine.wrapper = []
    lines = proc.stdout.decode().strip().splitlines()
    promoted = engine.snapshots()
    with open(engine.state("manifests", "daily.0.json")) as handle:
        newest = json.load(handle)["run_id"]
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    assert "run_id" in summary, "a run summary, not a traceback: %s" % proc.stderr.decode()[-800:]
    if summary["run_id"] == newest:  # this run promoted: it did not fail
        assert promoted == ["daily.0"]
        assert proc.returncode in (0, 2) and summary["status"] in ("success", "warning"), (proc.returncode, summary)
    else:  # failed honestly (here: the newest copy of the unreadable directory is unreadable too): nothing changed
        assert proc.returncode == 1 and summary["status"] == "failed"
        assert promoted == ["daily.0", "daily.1", "daily.2"]
    os.chmod(os.path.join(src, "locked"), 0o755)
    engine.backup(retain=1)
    assert engine.snapshots() == ["daily.0"]
    assert not diff(listing(src), listing(engine.snapshot("daily.0")))


@pytest.mark.parametrize("workers,extra", [(1, ()), (2, ("--unit-files", "1"))])
def test_directories_whose_modes_block_the_walk_keep_their_exact_modes(engine, canary, workers, extra):
    """Found by the model suite (R3): directories that the owner cannot read or search (000, 0311, 0644), nested in
    each other, new since the recycled tree: every mode in the snapshot is the source's (the engine may open them
    up for its own walk, but must set them back)."""
    src = engine.source
    write(os.path.join(src, "a"), b"a\n")
    four_runs(engine, workers, extra)
    modes = {"b/locked0": 0o000, "b/locked0/locked2": 0o311, "b/locked1": 0o311, "c": 0o644, "c/d": 0o000,
             "e": 0o555, "e/f": 0o644}
    for rel in modes:
        write(os.path.join(src, rel, "secret"), rel.encode())
    for rel in sorted(modes, key=len, reverse=True):  # innermost first: the parents stay searchable meanwhile
        os.chmod(os.path.join(src, rel), modes[rel])
    state = listing(src)
    for _ in range(2):
        backup(engine, workers, extra=extra)
        assert_snapshot_is(engine, "daily.0", state)
    assert_snapshot_is(engine, "daily.1", state)


@AS_ROOT
def test_an_unreadable_directory_keeps_the_newest_snapshots_contents(engine, canary):
    """Found by the model suite (R4): README "Read errors never delete anything": a source directory the run cannot
    read is, in the new snapshot, the newest snapshot's copy -- not an empty directory -- and the summary says so."""
    src = engine.source
    write(os.path.join(src, "a"), b"a\n")
    write(os.path.join(src, "b", "c d"), b"c\n")
    for interval, retain in (("daily", 2), ("hourly", 1)):
        for _ in range(retain + 1):
            engine.backup(interval=interval, retain=retain)
    write(os.path.join(src, "locked0", "secret"), b"only root with CAP_DAC_READ_SEARCH reads this\n")
    os.chmod(os.path.join(src, "locked0"), 0)
    engine.backup(interval="hourly", retain=1, workers=3, extra=("--unit-files", "2"))
    engine.backup(interval="daily", retain=3, workers=4, extra=("--unit-files", "2"))
    newest = listing(os.path.join(engine.snapshot("daily.0"), "locked0"))
    assert b"secret" in newest
    engine.wrapper = WITHOUT_READ_OVERRIDE
    proc = engine.cli("backup", "--source", src, "--backup-root", engine.root, "--id", "prod", "--interval",
                      "daily", "--retain", 2, "--workers", 2, "--unit-files", 1, "--json", "--quiet")
    engine.wrapper = []
    summary = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    if proc.returncode == 1:
        # This engine cannot read the newest copy either (mode 000 there, no DAC override on the backup side,
        # which production workers do have): it fails the part rather than keep an empty directory.
        assert summary["status"] == "failed" and "snapshot" not in summary
        assert any("locked0" in part["path"] + part["reason"] for part in summary["failed_parts"]), summary
        assert listing(os.path.join(engine.snapshot("daily.0"), "locked0")) == newest, "nothing promoted"
        return
    assert proc.returncode == 2 and summary["status"] == "warning" and summary.get("unreadable") == ["locked0"], \
        (proc.returncode, summary.get("status"), summary.get("unreadable"))
    kept = listing(os.path.join(engine.snapshot("daily.0"), "locked0"))
    assert kept == newest, "the unreadable directory must hold the newest snapshot's copy: %s" % diff(newest, kept)
