"""rsync.run_listed: rsync copies exactly the names it is given, whichever way they reach it (its command line while
they fit, --files-from beyond), whatever bytes they hold, and however many there are. Real rsync, real files."""

import os

import pytest

from efs_backup_engine import rsync
from treeops import NAMES_CORPUS, listing

# Names rsync could take for something else: comments in --files-from, options, a remote host, a glob, "./".
TRICKY = [b"#notes", b";semi", b"#", b"-rf", b"--delete", b"host:path", b"a::b", b"*", b"x/./y", b"new\nline"]


def tree(root, paths):
    for path in paths:
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(path)


def copy(src, dst, paths, options=(), recursive=False):
    src_fd, dst_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY), os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        code, _out, err = rsync.run_listed(rsync.RSYNC_BASE + list(options), paths, src_fd, dst_fd,
                                           pass_fds=(src_fd, dst_fd), recursive=recursive)
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    assert code == 0, err


@pytest.mark.parametrize("budget", ["command line", "files-from"])
def test_exactly_the_listed_names_are_copied_whatever_bytes_they_hold(tmp_path, monkeypatch, budget):
    if budget == "files-from":
        monkeypatch.setattr(rsync, "ARGS_BUDGET", 0)
    src, dst = os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst")
    names = [name.replace(b"/", b"_") for name in TRICKY + NAMES_CORPUS]
    listed = names + [b"dir/" + name for name in names]
    tree(src, listed + [b"dir/not listed", b"not listed"])
    os.makedirs(os.path.join(dst, b"dir"))
    copy(src, dst, listed, options=["--no-implied-dirs"])
    got = {path for path, entry in listing(dst).items() if path != b"." and path != b"dir"}
    assert got == set(listed)
    assert all(open(os.path.join(dst, path), "rb").read() == path for path in listed)


@pytest.mark.parametrize("budget", ["command line", "files-from"])
def test_a_listed_directory_is_copied_whole_only_when_recursive(tmp_path, monkeypatch, budget):
    if budget == "files-from":
        monkeypatch.setattr(rsync, "ARGS_BUDGET", 0)
    src = os.fsencode(tmp_path / "src")
    tree(src, [b"#d/one", b"#d/sub/two", b"other/three"])
    for recursive, expected in ((True, {b"#d", b"#d/one", b"#d/sub", b"#d/sub/two"}), (False, {b"#d"})):
        dst = os.fsencode(tmp_path / ("dst-%s" % recursive))
        os.makedirs(dst)
        copy(src, dst, [b"#d"], recursive=recursive)
        assert set(listing(dst)) - {b"."} == expected


def test_more_names_than_one_command_line_holds(tmp_path):
    """Paths of about 1,000 bytes: 2,500 of them are more than the exec limit of the default 8 MiB stack (2 MiB),
    so they go through --files-from, and every one is copied."""
    src, dst = os.fsencode(tmp_path / "src"), os.fsencode(tmp_path / "dst")
    deep = b"/".join([b"d" * 200] * 4)
    listed = [deep + b"/#f%04d" % number for number in range(2500)]
    assert sum(len(path) for path in listed) > rsync.ARGS_BUDGET
    tree(src, listed)
    os.makedirs(os.path.join(dst, deep))
    copy(src, dst, listed, options=["--no-implied-dirs"])
    assert sorted(os.listdir(os.path.join(dst, deep))) == sorted(os.path.basename(path) for path in listed)
