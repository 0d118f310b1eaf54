"""verify.compare, exactly: every kind of difference gives its one message, in order, and nothing else.

Written against the mutants mutmut left alive in verify.py with test_verify.py alone (README, "Tests of the
engine"): missing and extra entries, each compared field, nested paths, hard-link groups in both scopes and both
directions, the checksum modes, and the cap on messages.
"""

import os
import shutil
import stat
import subprocess

import pytest

from efs_backup_engine import verify

T = 1_600_000_000 * 10 ** 9


def make(root, with_device):
    """A tree with one entry of every kind; every time set, so a copy can be made identical."""
    os.makedirs(os.path.join(root, "dir", "sub"))
    files = {"f": b"file", "g": b"gg", "c": b"content", "t": b"type", "dir/sub/deep": b"deep", "a": b"linked",
             "x/a": b"cross", "y/keep": b"y"}
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "wb") as handle:
            handle.write(data)
    os.link(os.path.join(root, "a"), os.path.join(root, "b"))  # one inode, one directory
    os.link(os.path.join(root, "x", "a"), os.path.join(root, "y", "a"))  # one inode, two directories
    os.symlink("aa", os.path.join(root, "l"))
    os.mkfifo(os.path.join(root, "fifo"))
    if with_device:
        os.mknod(os.path.join(root, "dev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(T, T), follow_symlinks=False)
    os.utime(root, ns=(T, T))


def copy(src, dst):
    """An identical copy: rsync keeps types, modes, owners, times (symlinks' too) and hard links."""
    subprocess.run(["rsync", "-a", "-H", "--numeric-ids", src + "/", dst + "/"], check=True)


@pytest.fixture
def trees(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    make(src, with_device=os.geteuid() == 0)
    copy(src, dst)
    return src, dst


def touch_back(path, ns=T):
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def test_identical_trees_compare_clean_with_every_entry_counted(trees):
    src, dst = trees
    result = verify.compare(src, dst, checksum="full")
    assert result["mismatches"] == [] and result["mismatch_count"] == 0
    entries = sum(len(d) + len(f) for _p, d, f in os.walk(src))
    assert result["compared"] == entries
    regular = sum(1 for p, _d, f in os.walk(src) for n in f if stat.S_ISREG(os.lstat(os.path.join(p, n)).st_mode))
    assert result["checksummed"] == regular and result["checksum"] == "full"
    assert verify.compare(src, dst, checksum="none")["checksummed"] == 0
    assert verify.compare(src, dst, checksum="sample", seed=1)["checksummed"] == regular  # fewer than 100: all


def test_every_difference_has_its_exact_message(trees):
    src, dst = trees
    os.unlink(os.path.join(dst, "f"))  # missing
    with open(os.path.join(dst, "extra"), "wb") as handle:  # extra
        handle.write(b"x")
    os.chmod(os.path.join(dst, "g"), 0o600)  # mode only
    with open(os.path.join(dst, "dir", "sub", "deep"), "ab") as handle:  # size and mtime, nested
        handle.write(b"er")
    os.unlink(os.path.join(dst, "l"))  # same length, other target
    os.symlink("bb", os.path.join(dst, "l"))
    touch_back(os.path.join(dst, "l"))
    os.unlink(os.path.join(dst, "t"))  # type
    os.mkdir(os.path.join(dst, "t"))
    touch_back(os.path.join(dst, "t"))
    with open(os.path.join(dst, "c"), "r+b") as handle:  # content only: same size, same mtime
        handle.write(b"C")
    touch_back(os.path.join(dst, "c"))
    touch_back(os.path.join(dst, "dir"), T + 1)  # a directory's mtime
    root = os.geteuid() == 0
    if root:
        os.chown(os.path.join(dst, "y", "keep"), 4242, 0)
    touch_back(os.path.join(dst, "y"))
    touch_back(dst)
    result = verify.compare(src, dst, checksum="full")
    assert result["mismatches"][:8 if root else 7] == [
        "'dir' differs in mtime_ns",
        "'dir/sub/deep' differs in size, mtime_ns",
        "not in source: 'extra'",
        "missing in snapshot: 'f'",
        "'g' differs in mode",
        "'l' differs in target",
        "'t' differs in type, mode, size",
    ] + (["'y/keep' differs in uid"] if root else []), result["mismatches"]
    # content, compared for the regular files present on both sides (any order)
    fields = 8 if root else 7
    assert sorted(result["mismatches"][fields:]) == ["'c' content differs", "'dir/sub/deep' content differs"]
    assert result["mismatch_count"] == fields + 2
    assert verify.compare(src, dst, checksum="none")["mismatch_count"] == fields
    capped = verify.compare(src, dst, checksum="full", limit=3)
    assert len(capped["mismatches"]) == 3 and capped["mismatch_count"] == fields + 2


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes need root")
def test_device_numbers_are_compared(trees):
    src, dst = trees
    os.unlink(os.path.join(dst, "dev"))
    os.mknod(os.path.join(dst, "dev"), 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    touch_back(os.path.join(dst, "dev"))
    touch_back(dst)
    assert verify.compare(src, dst, checksum="none")["mismatches"] == ["'dev' differs in target"]


def split(root, rel):
    tmp = os.path.join(root, rel + ".tmp")
    shutil.copy2(os.path.join(root, rel), tmp)
    os.rename(tmp, os.path.join(root, rel))
    touch_back(os.path.dirname(os.path.join(root, rel)) or root)


def test_hard_link_groups_in_both_directions_and_both_scopes(trees):
    src, dst = trees
    split(dst, "b")  # same directory: a and b are one file in the source only
    touch_back(dst)
    assert verify.compare(src, dst, checksum="none")["mismatches"] == [
        "hard links: 'a', 'b' are one file in the source, not in the snapshot"]
    # the other way round: one file in the snapshot only
    assert verify.compare(dst, src, checksum="none")["mismatches"] == [
        "hard links: 'a', 'b' are one file in the snapshot, not in the source"]
    # across directories: only the tree scope (a one-part snapshot) compares them
    shutil.rmtree(dst)
    copy(src, dst)
    split(dst, "y/a")
    touch_back(dst)
    assert verify.compare(src, dst, checksum="none", hardlinks="directory")["mismatches"] == []
    assert verify.compare(src, dst, checksum="none", hardlinks="tree")["mismatches"] == [
        "hard links: 'x/a', 'y/a' are one file in the source, not in the snapshot"]
