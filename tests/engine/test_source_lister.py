"""The lister that reads a big part's source side ahead of its walk (engine source_lister.py).

What it must never do: change a walk's outcome, follow a symlink, write, or outlive the walk. Each test compares
a walk that uses the lister with the same walk that lists everything itself, on real trees."""

import os
import signal
import subprocess
import sys
import time

import pytest

import efs_backup_engine
from efs_backup_engine import safefs, source_lister, treediff


def _tree(root, dirs=6, depth=3, files=4):
    """A source tree of dirs**depth-ish directories, with files, a symlink to a directory and a hard-link pair."""
    paths = [root]
    for level in range(depth):
        paths = [os.path.join(p, "d%d" % i) for p in paths for i in range(dirs if level == 0 else 2)]
        for path in paths:
            os.makedirs(path)
            for index in range(files):
                with open(os.path.join(path, "f%d" % index), "w") as handle:
                    handle.write("%s %d\n" % (path, index))
    os.symlink("d0", os.path.join(root, "link-to-d0"))
    os.link(os.path.join(root, "d0", "f0"), os.path.join(root, "d0", "f0-again"))


def _walk(source, work, lister):
    """One recursive part of the whole tree, with the lister from the first subdirectory on (lister=True) or never."""
    with treediff.Trees(source, work, []) as trees:
        real_after, real_always = source_lister.LIST_AHEAD_AFTER, source_lister.ALWAYS
        source_lister.ALWAYS, source_lister.LIST_AHEAD_AFTER = lister, (0 if lister else 2 ** 62)
        try:
            part = treediff.compare_part(trees, "", None, True)
        finally:
            source_lister.ALWAYS, source_lister.LIST_AHEAD_AFTER = real_always, real_after
        outcome = (sorted(part.transfer), part.counts(), sorted(part.dir_attrs), sorted(part.messages),
                   part.listed_ahead)
        part.finish()
    return outcome


def _work_tree_state(work):
    state = {}
    for directory, dirs, files in os.walk(work):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            state[os.path.relpath(os.path.join(directory, name), work)] = (st.st_mode, st.st_size, st.st_nlink)
    return state


@pytest.fixture
def trees(tmp_path):
    source, work_a, work_b = str(tmp_path / "source"), str(tmp_path / "work-a"), str(tmp_path / "work-b")
    os.makedirs(source)
    _tree(source)
    for work in (work_a, work_b):  # two equal work trees, each with something to remove and to replace
        os.makedirs(os.path.join(work, "d1", "only-in-work"))
        os.makedirs(os.path.join(work, "d2"))
        with open(os.path.join(work, "d2", "f1"), "w") as handle:
            handle.write("stale\n")
    return source, work_a, work_b


def test_a_walk_with_the_lister_decides_exactly_what_a_walk_without_it_decides(trees):
    source, with_lister, without = trees
    listed = _walk(source, with_lister, True)
    local = _walk(source, without, False)
    assert listed[4] > 10, "the lister was not used"
    assert local[4] == 0
    assert listed[:4] == local[:4]
    assert _work_tree_state(with_lister) == _work_tree_state(without)


def test_a_lister_out_of_step_is_dropped_and_the_walk_lists_the_rest_itself(trees, monkeypatch):
    """Asked for the subtrees in another order than the walk enters them, the lister sends a listing the walk did
    not ask for: the walk stops using it and lists everything after that itself."""
    source, with_lister, without = trees
    real = source_lister.Lister.hand_over
    monkeypatch.setattr(source_lister.Lister, "hand_over", lambda self, device, roots: real(self, device,
                                                                                             list(reversed(roots))))
    listed = _walk(source, with_lister, True)
    local = _walk(source, without, False)
    assert listed[4] == 0
    assert listed[:4] == local[:4]
    assert _work_tree_state(with_lister) == _work_tree_state(without)


def test_a_lister_that_dies_mid_walk_leaves_the_walk_to_list_the_rest(trees, monkeypatch):
    source, with_lister, without = trees
    real = source_lister.Lister.take
    taken = []

    def dying(self, path):
        if len(taken) == 3:  # it dies before the rest of what it sent reaches the walk: the walk sees the end
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.read()
        listing = real(self, path)
        taken.append(path)
        return listing

    monkeypatch.setattr(source_lister.Lister, "take", dying)
    listed = _walk(source, with_lister, True)
    local = _walk(source, without, False)
    assert listed[4] == 3  # what reached the walk before the lister died is used, the rest listed here
    assert listed[:4] == local[:4]
    assert _work_tree_state(with_lister) == _work_tree_state(without)


def test_a_directory_that_vanishes_after_the_lister_read_it_is_skipped_with_its_subtree(trees, monkeypatch):
    """The lister has listed d3 and everything below it; then d3 goes before the walk enters it. The walk reports
    it vanished, drops the lister's listings of d3's subtree and goes on using the lister after it."""
    source, with_lister, _without = trees
    real_hand_over = source_lister.Lister.hand_over

    def hand_over_then_wait(self, device, roots):  # the whole (small) tree fits in the pipe: the lister ends
        real_hand_over(self, device, roots)
        self.proc.wait()

    monkeypatch.setattr(source_lister.Lister, "hand_over", hand_over_then_wait)
    real = safefs.open_child
    gone = []

    def vanishing(dir_fd, name, force=False):
        if name == "d3" and not force and not gone:
            gone.append(subprocess.run(["rm", "-rf", os.path.join(source, "d3")], check=True))
        return real(dir_fd, name, force)

    monkeypatch.setattr(safefs, "open_child", vanishing)
    transfer, counts, _attrs, messages, listed_ahead = _walk(source, with_lister, True)
    assert gone
    assert any("d3 vanished from the source" in message for message in messages)
    assert not any(path.startswith("d3/") for path in transfer)
    assert listed_ahead > 10  # still used for d4 and d5 after the skipped subtree
    assert os.path.isdir(os.path.join(with_lister, "d4", "d0", "d0"))


def _run_lister(part_fd, device, roots):
    """Every message a lister sends for roots, up to its end, read as they come (the walk's take() would hide the
    errors and drop what is out of step)."""
    lister = source_lister.Lister.start(part_fd)
    assert lister.ready(wait=True)
    lister.hand_over(device, roots)
    messages = []
    while True:
        message = lister._receive()
        messages.append(message)
        if message is None or message[0] is None:
            break
    assert lister.proc.wait() == 0
    lister.close()
    return messages


def test_the_lister_never_follows_a_symlink_out_of_its_tree(tmp_path):
    """A root asked for through a symlink (to a directory outside the tree), or a symlink on the way to it, gives
    an error for that root, never the listing of what the link points to."""
    outside = tmp_path / "outside"
    (outside / "secret-dir").mkdir(parents=True)
    (outside / "secret-file").write_text("outside every tree\n")
    source = tmp_path / "source"
    (source / "real").mkdir(parents=True)
    (source / "real" / "file").write_text("inside\n")
    os.symlink(str(outside), str(source / "out"))
    os.symlink(str(outside), str(source / "real" / "out"))
    fd = safefs.open_root(str(source))
    try:
        messages = _run_lister(fd, os.fstat(fd).st_dev, ["out", "out/secret-dir", "real"])
    finally:
        os.close(fd)
    by_path = {message[0]: message for message in messages}
    assert by_path["out"][1] == "error" and by_path["out/secret-dir"][1] == "error"
    assert by_path["real"][1] == "ok"
    assert sorted(name for name, _fields in by_path["real"][2]) == ["file", "out"]
    assert "real/out" not in by_path  # a symlink is listed as an entry, never entered
    assert messages[-1] == (None, "end", None)
    listed_names = {name for message in messages if message and message[1] == "ok" for name, _f in message[2]}
    assert not listed_names & {"secret-dir", "secret-file"}


def test_the_lister_does_not_outlive_a_walk_that_was_killed(tmp_path):
    """The process that walks is killed (SIGKILL) while its lister runs ahead (here: blocked on a full pipe): the
    lister ends at its next write (the pipe has no reader), it never keeps reading the source for nobody."""
    source = tmp_path / "source"
    source.mkdir()
    _tree(str(source))
    script = (
        "import os, sys, time\n"
        "from efs_backup_engine import safefs, source_lister\n"
        "fd = safefs.open_root(sys.argv[1])\n"
        "lister = source_lister.Lister.start(fd)\n"
        "assert lister.ready(wait=True)\n"
        "lister.hand_over(os.fstat(fd).st_dev, ['d%d' % (i % 6) for i in range(6000)])\n"
        "assert lister.take('d0')\n"
        "print(lister.proc.pid, flush=True)\n"
        "time.sleep(60)\n")
    walker = subprocess.Popen([sys.executable, "-c", script, str(source)], stdout=subprocess.PIPE,
                              env=efs_backup_engine.child_env())
    lister_pid = int(walker.stdout.readline())
    time.sleep(0.5)
    assert _alive(lister_pid)  # asked for far more than the pipe holds: it waits for the walk to read
    walker.send_signal(signal.SIGKILL)
    walker.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(lister_pid):
        time.sleep(0.05)
    assert not _alive(lister_pid), "the lister outlived its walk"


def _alive(pid):
    """Whether pid runs (a zombie, reaped by init later, does not: it reads nothing)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_dir_cache_opens_a_directory_from_its_cached_parent_and_never_through_a_symlink(tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "d").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside"), str(root / "a" / "b" / "link"))
    fd = safefs.open_root(str(root))
    cache = safefs.DirCache(fd, limit=8, owns_root=True)
    try:
        c = cache.get(b"a/b/c")
        assert os.path.samestat(os.fstat(c), os.lstat(root / "a" / "b" / "c"))
        assert set(cache.fds) == {b"", b"a", b"a/b", b"a/b/c"}  # every level cached on the way
        d = cache.get("a/b/d")
        assert os.path.samestat(os.fstat(d), os.lstat(root / "a" / "b" / "d"))
        assert cache.get("a/b/link") is None
        assert cache.get("a/b/link/x") is None
        assert cache.get("a/missing/x") is None
        for name in ("x%d" % i for i in range(10)):  # past the limit: the least recently used are closed
            (root / name).mkdir()
            assert cache.get(name) is not None
        assert len(cache.fds) <= 8
        assert os.path.samestat(os.fstat(cache.get("a/b/c")), os.lstat(root / "a" / "b" / "c"))
    finally:
        cache.close()
