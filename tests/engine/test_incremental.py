"""Many incremental runs with adds, edits, deletes, renames, chmods and chowns at every depth: every retained
snapshot must equal the source as it was at its run, metadata included, after all later runs."""

import os

import pytest

from treeops import TreeMutator, diff, hardlink_groups, listing


def run_rounds(engine, rounds, retain, workers, seed, extra=()):
    mutator = TreeMutator(engine.source, seed)
    mutator.build()
    states = []
    for round_no in range(rounds):
        if round_no:
            mutator.mutate(15)
        summary = engine.backup(retain=retain, workers=workers, expect=0, extra=extra)
        assert summary["status"] == "success", summary
        states.append(listing(engine.source))
    return states, summary


@pytest.mark.parametrize("workers,unit_files", [(1, None), (3, 8)])
def test_every_retained_snapshot_equals_the_source_at_its_time(engine, workers, unit_files):
    retain = 3
    extra = ("--unit-files", unit_files) if unit_files else ()
    states, last = run_rounds(engine, rounds=9, retain=retain, workers=workers, seed=7 + workers, extra=extra)
    assert engine.snapshots() == ["daily.0", "daily.1", "daily.2"]
    for index in range(retain):
        expected = states[-1 - index]
        problems = diff(expected, listing(engine.snapshot("daily.%d" % index)))
        assert not problems, "daily.%d differs from its source state: %s" % (index, problems)
    if unit_files:
        assert last["parts"] > 5, "small --unit-files must split the tree into many parts"
        assert len(last["workers"]) >= 2


def test_unchanged_files_are_shared_and_changed_ones_are_not(engine):
    mutator = TreeMutator(engine.source, 3)
    mutator.build()
    for _ in range(4):  # fill retention so the next run recycles the spare tree
        mutator.mutate(5)
        engine.backup(retain=2)
    untouched = os.path.join(engine.source, "untouched.bin")
    with open(untouched, "wb") as handle:
        handle.write(b"u" * 1000)
    chmodded = os.path.join(engine.source, "chmodded.txt")
    with open(chmodded, "wb") as handle:
        handle.write(b"c")
    os.chmod(chmodded, 0o644)
    engine.backup(retain=2)
    engine.backup(retain=2)
    os.chmod(chmodded, 0o600)
    summary = engine.backup(retain=2)
    new, old = engine.snapshot("daily.0"), engine.snapshot("daily.1")
    assert os.stat(os.path.join(new, "untouched.bin")).st_ino == os.stat(os.path.join(old, "untouched.bin")).st_ino
    # the chmod is in today's snapshot only: yesterday's copy keeps its own inode and mode
    assert os.stat(os.path.join(new, "chmodded.txt")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(old, "chmodded.txt")).st_mode & 0o777 == 0o644
    assert summary["totals"]["files_transferred"] < 10


def test_hard_links_within_the_tree_are_kept(engine):
    os.makedirs(os.path.join(engine.source, "d"))
    first = os.path.join(engine.source, "d", "a")
    with open(first, "w") as handle:
        handle.write("shared")
    os.link(first, os.path.join(engine.source, "d", "b"))
    engine.backup(retain=2)
    os.link(first, os.path.join(engine.source, "d", "c"))  # a new link to an unchanged file
    engine.backup(retain=2)
    engine.backup(retain=2)  # recycled tree
    assert hardlink_groups(engine.snapshot("daily.0")) == hardlink_groups(engine.source)
    assert hardlink_groups(engine.snapshot("daily.0")) == [[b"d/a", b"d/b", b"d/c"]]


def test_n_workers_produce_the_same_snapshot_as_one(engine):
    mutator = TreeMutator(engine.source, 99)
    mutator.build(dirs=8, depth=4, files_per_dir=4)
    split = ("--unit-files", "10")
    engine.backup(backup_id="one", retain=2, workers=1, extra=split)
    engine.backup(backup_id="four", retain=2, workers=4, extra=split)
    mutator.mutate(30)
    engine.backup(backup_id="one", retain=2, workers=1, extra=split)
    summary = engine.backup(backup_id="four", retain=2, workers=4, extra=split)
    source = listing(engine.source)
    one = listing(engine.snapshot("daily.0", backup_id="one"))
    four = listing(engine.snapshot("daily.0", backup_id="four"))
    assert not diff(source, one)
    assert not diff(one, four), "4 workers must produce the same snapshot as 1"
    assert summary["parts"] > 10
    assert sum(1 for w in summary["workers"] if w["units"]) >= 2
