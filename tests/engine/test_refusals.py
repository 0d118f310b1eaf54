"""Wrong file systems are refused with a clear message and nothing is touched."""

import os
import shutil

from treeops import listing


def snapshot_state(engine):
    return {name: listing(engine.snapshot(name)) for name in engine.snapshots()}


def make_tree(engine):
    os.makedirs(os.path.join(engine.source, "dir"))
    with open(os.path.join(engine.source, "dir", "file"), "w") as handle:
        handle.write("data")


def test_backup_root_without_marker_is_refused(engine, tmp_path):
    make_tree(engine)
    other = tmp_path / "not-initialised"
    other.mkdir()
    proc = engine.cli("backup", "--source", engine.source, "--backup-root", other, "--id", "prod",
                      "--interval", "daily", "--retain", "2", check=3)
    assert b"no .efs-backup-root marker" in proc.stderr
    assert os.listdir(other) == []


def test_empty_source_is_refused_while_the_newest_snapshot_is_not(engine):
    make_tree(engine)
    engine.backup(retain=2)
    before = snapshot_state(engine)
    shutil.rmtree(os.path.join(engine.source, "dir"))  # what a failed mount looks like: an empty directory
    proc = engine.cli("backup", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                      "--interval", "daily", "--retain", "2", check=3)
    assert b"is empty but the newest snapshot" in proc.stderr
    assert b"--allow-empty-source" in proc.stderr
    assert snapshot_state(engine) == before
    assert not os.path.exists(os.path.join(engine.root, "prod", ".efs-backup", "lock"))
    # an operator who means it can record the empty source
    engine.backup(retain=2, extra=("--allow-empty-source",))
    assert os.listdir(engine.snapshot("daily.0")) == []
    assert snapshot_state(engine)["daily.1"] == before["daily.0"]


def test_missing_source_is_refused(engine):
    make_tree(engine)
    engine.backup(retain=2)
    before = snapshot_state(engine)
    proc = engine.cli("backup", "--source", engine.source + "-typo", "--backup-root", engine.root, "--id", "prod",
                      "--interval", "daily", "--retain", "2", check=3)
    assert b"does not exist" in proc.stderr
    assert snapshot_state(engine) == before


def test_source_that_is_not_a_mount_point_is_refused_when_required(engine):
    make_tree(engine)
    proc = engine.cli("backup", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                      "--interval", "daily", "--retain", "2", "--require-mountpoint", check=3)
    assert b"is not a mount point" in proc.stderr
    assert engine.snapshots() == [] if os.path.isdir(os.path.join(engine.root, "prod")) else True


def test_overlapping_source_and_backup_root_are_refused(engine):
    make_tree(engine)
    proc = engine.cli("backup", "--source", engine.root, "--backup-root", engine.root, "--id", "prod",
                      "--interval", "daily", "--retain", "2", check=3)
    assert b"overlap" in proc.stderr


def test_bad_arguments_are_refused(engine):
    make_tree(engine)
    base = ["backup", "--source", engine.source, "--backup-root", engine.root, "--interval", "daily"]
    assert b"backup id" in engine.cli(*base, "--id", "../escape", "--retain", "2", check=3).stderr
    assert b"must be >= 1" in engine.cli(*base, "--id", "prod", "--retain", "0", check=64).stderr
    assert b"is not an integer" in engine.cli(*base, "--id", "prod", "--retain", "two", check=64).stderr
    assert b"invalid choice" in engine.cli("backup", "--source", engine.source, "--backup-root", engine.root,
                                           "--id", "prod", "--interval", "yearly", "--retain", "2",
                                           check=64).stderr


def test_retention_beyond_the_hard_link_limit_is_refused(engine):
    make_tree(engine)
    proc = engine.cli("backup", "--source", engine.source, "--backup-root", engine.root, "--id", "prod",
                      "--interval", "hourly", "--retain", "170", check=3)
    assert b"177" in proc.stderr
    assert engine.snapshots() == []


def test_names_with_shell_metacharacters_never_reach_a_shell(engine, tmp_path):
    """The engine passes names to rsync as argv and NUL-separated lists: nothing is ever evaluated."""
    marker = tmp_path / "pwned"
    name = "$(touch %s)`touch %s`;touch %s" % (marker, marker, marker)
    os.makedirs(os.path.join(engine.source, name))
    with open(os.path.join(engine.source, name, "f"), "w") as handle:
        handle.write("x")
    engine.backup(retain=2)
    with open(os.path.join(engine.source, name, "f"), "w") as handle:
        handle.write("xy")
    engine.backup(retain=2)
    assert not marker.exists()
    assert open(os.path.join(engine.snapshot("daily.0"), name, "f")).read() == "xy"
