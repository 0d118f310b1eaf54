"""What a snapshot keeps: permissions, numeric owners, nanosecond times, symlinks (dangling too), hard links,
sparse files, empty directories, FIFOs and sockets, and any name at any depth."""

import os
import socket
import stat

from treeops import NAMES_CORPUS, diff, hardlink_groups, listing


def populate(root):
    root = os.fsencode(root)
    os.makedirs(os.path.join(root, b"perm"))
    for mode in (0o600, 0o644, 0o755, 0o4755, 0o2750, 0o1777, 0o000):
        path = os.path.join(root, b"perm", b"m%o" % mode)
        with open(path, "wb") as handle:
            handle.write(b"mode")
        os.chmod(path, mode)
    owned = os.path.join(root, b"owned")
    with open(owned, "wb") as handle:
        handle.write(b"owner")
    os.chown(owned, 12345, 54321)  # ids that exist on no machine: kept numerically
    timed = os.path.join(root, b"timed")
    with open(timed, "wb") as handle:
        handle.write(b"t")
    os.utime(timed, ns=(1, 1234567890123456789))
    os.symlink(b"does/not/exist", os.path.join(root, b"dangling"))
    os.symlink(b"perm", os.path.join(root, b"dir-link"))
    os.makedirs(os.path.join(root, b"empty", b"nested-empty"))
    sparse = os.path.join(root, b"sparse")
    with open(sparse, "wb") as handle:
        handle.seek(64 * 1024 * 1024)
        handle.write(b"end")
    os.mkfifo(os.path.join(root, b"fifo"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(root, b"sock").decode())
    sock.close()
    os.link(owned, os.path.join(root, b"owned-hardlink"))
    names = os.path.join(root, b"names")
    os.makedirs(names)
    for name in NAMES_CORPUS:
        os.makedirs(os.path.join(names, name))
        with open(os.path.join(names, name, name), "wb") as handle:
            handle.write(name)
    deep = os.path.join(root, b"deep")
    for level in range(40):
        deep = os.path.join(deep, b"level-%02d-" % level + b"d" * 40)
    os.makedirs(deep)
    with open(os.path.join(deep, b"bottom"), "wb") as handle:
        handle.write(b"deep")


def test_snapshot_keeps_metadata_special_files_and_any_name(engine):
    populate(engine.source)
    summary = engine.backup(retain=2, extra=("--unit-files", "5"))
    snapshot = engine.snapshot("daily.0")
    assert not diff(listing(engine.source), listing(snapshot))
    assert hardlink_groups(snapshot) == [[b"owned", b"owned-hardlink"]]
    assert os.stat(os.path.join(snapshot, "sparse")).st_blocks * 512 < 1024 * 1024, "sparse file stays sparse"
    assert stat.S_ISFIFO(os.lstat(os.path.join(snapshot, "fifo")).st_mode)
    assert stat.S_ISSOCK(os.lstat(os.path.join(snapshot, "sock")).st_mode)
    assert summary["totals"]["special"] >= 2, "FIFOs and sockets are counted in the summary"
    assert summary["status"] == "success"


def test_changes_to_every_name_reach_the_next_snapshot(engine):
    populate(engine.source)
    engine.backup(retain=2, extra=("--unit-files", "5"))
    names = os.path.join(os.fsencode(engine.source), b"names")
    for index, name in enumerate(NAMES_CORPUS):
        target = os.path.join(names, name, name)
        if index % 3 == 0:
            os.unlink(target)
        elif index % 3 == 1:
            with open(target, "ab") as handle:
                handle.write(b" changed")
        else:
            os.chmod(target, 0o600)
            os.rename(os.path.join(names, name), os.path.join(names, name[:200] + b" renamed"))
    os.rename(os.path.join(os.fsencode(engine.source), b"deep"), os.path.join(os.fsencode(engine.source), b"-deep"))
    for _ in range(3):  # the third run recycles the first run's tree: every change must be applied to it
        engine.backup(retain=2, extra=("--unit-files", "5"))
    assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))


def test_names_rsync_could_read_as_comments_are_copied_on_every_run(engine):
    """rsync 3.5 skips a --files-from entry that starts with '#' or ';' as a comment. The engine lists a part's
    changed files relative to the part's directory, so a changed top-level '#notes' was silently left out of
    the snapshot (unlinked from the work tree, never copied; rsync exit 0). One part, the plainest run."""
    source = os.fsencode(engine.source)
    names = [b"#notes", b";semi", b"#", b"sub/#nested", b"sub/;nested"]
    for name in names:
        os.makedirs(os.path.dirname(os.path.join(source, name)), exist_ok=True)
        with open(os.path.join(source, name), "wb") as handle:
            handle.write(b"v0")
    engine.backup(retain=2)
    for round_no in range(1, 4):  # the third run recycles the first run's tree: the changes go into old copies
        for name in names:
            with open(os.path.join(source, name), "ab") as handle:
                handle.write(b" v%d" % round_no)
        summary = engine.backup(retain=2)
        assert summary["status"] == "success"
        assert not diff(listing(engine.source), listing(engine.snapshot("daily.0")))
