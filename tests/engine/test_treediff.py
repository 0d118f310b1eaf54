"""treediff at the level of one part, where a race between parts can be staged deterministically."""

import os
import stat

from efs_backup_engine import safefs, treediff


def test_a_batch_part_never_resets_its_holder_directorys_mode(tmp_path):
    """Found by the soak (R5): a batch part remembered its directory's mode when it started (0700: just made by the
    parent's part, whose attributes come last) and put it back when it finished, after the parent's part had set
    the source's mode (0311): the snapshot kept 0700. A batch part may only undo what it changed itself."""
    source, work = tmp_path / "source", tmp_path / "work"
    (source / "r" / "child").mkdir(parents=True)
    (source / "r" / "child" / "file").write_text("x")
    os.chmod(source / "r", 0o311)
    (work / "r").mkdir(parents=True)
    os.chmod(work / "r", 0o700)  # made by the parent's part, its attributes not set yet
    with treediff.Trees(str(source), str(work), []) as trees:
        part = treediff.compare_part(trees, "r", ["child"], True)
        os.chmod(work / "r", 0o311)  # meanwhile the parent's part finishes: the source's mode
        part.finish()
    assert stat.S_IMODE(os.lstat(work / "r").st_mode) == 0o311
    assert (work / "r" / "child").is_dir()


def test_a_rebuilt_part_leaves_its_holder_with_the_sources_times(tmp_path, monkeypatch):
    """A structural surprise discards a part's copy and syncs it again (sync.sync_part). The directory holding the
    part belongs to the parent's part, which may have finished: it must end with the source's times, not with
    whatever the rebuild or a stale remembered value would leave."""
    from efs_backup_engine import safefs, sync

    source, work = tmp_path / "source", tmp_path / "work"
    (source / "r" / "child").mkdir(parents=True)
    (source / "r" / "child" / "file").write_text("x")
    os.utime(source / "r", ns=(1_500_000_000 * 10 ** 9, 1_500_000_000 * 10 ** 9))
    (work / "r" / "child").mkdir(parents=True)
    (work / "r" / "child" / "stale").write_text("from a killed run")
    real = treediff.compare_part
    calls = []

    def surprised(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise safefs.NotADirectory(20, "an entry changed type under the walk", "child")
        return real(*args, **kwargs)

    monkeypatch.setattr(treediff, "compare_part", surprised)
    result = sync.sync_part(str(source), str(work), "r", ["child"], True, [])
    assert result["status"] == "warning" and result["pass"] == "rebuilt", result
    assert sorted(os.listdir(work / "r" / "child")) == ["file"]
    assert os.lstat(work / "r").st_mtime_ns == os.lstat(source / "r").st_mtime_ns


def _file_replaced_by_a_directory(tmp_path):
    """R6's trees: the source's `-dash` is a directory (holding `inner`) where the recycled work tree has a file."""
    source, work = tmp_path / "source", tmp_path / "work"
    (source / "-dash").mkdir(parents=True)
    (source / "-dash" / "inner").write_text("new")
    work.mkdir()
    (work / "-dash").write_text("a file in the recycled tree")
    return source, work


def _file_becomes_directory(work_entry, copied):
    """What the other part that owns the same entry does meanwhile: the file is replaced by the directory the
    source now has (and, when that part is the directory's own, it has already copied `copied` into it)."""
    os.unlink(work_entry)
    os.mkdir(work_entry, 0o700)
    if copied:
        (work_entry / copied).write_text("by the other part")


def test_a_dir_part_tolerates_its_root_entry_being_repaired_by_the_parents_part(tmp_path, monkeypatch):
    """Found by the soak (R6): a file the source replaced by a directory is the root of a dir part and an entry of
    its parent's part; both repair it. The dir part saw a file, the parent's part made it a directory meanwhile,
    and the dir part's unlink failed with EISDIR: a structural surprise, so the part was discarded and synced
    again and the run ended as a warning. Finding the directory it wanted must simply be fine."""
    from efs_backup_engine import safefs

    source, work = _file_replaced_by_a_directory(tmp_path)
    real = safefs.open_child
    staged = []

    def racing(dir_fd, name, force=False):
        try:
            return real(dir_fd, name, force)
        except safefs.NotADirectory:
            if os.fsdecode(name) == "-dash" and not staged:
                staged.append(name)
                _file_becomes_directory(work / "-dash", None)  # the parent's part: no recursion
            raise

    monkeypatch.setattr(safefs, "open_child", racing)
    with treediff.Trees(str(source), str(work), []) as trees:
        part = treediff.compare_part(trees, "-dash", None, True)
        part.finish()
    assert staged, "the race was not staged"
    assert part.transfer == ["inner"]
    assert stat.S_ISDIR(os.lstat(work / "-dash").st_mode)


def test_a_parents_part_never_removes_a_directory_it_listed_as_a_file(tmp_path, monkeypatch):
    """The other side of R6: the parent's part listed the entry as a file; before it removed it, the dir part made
    it a directory and copied into it. Removing "the file" then must not remove that directory recursively (the
    snapshot would silently lose what the dir part copied): a non-directory is only ever unlinked."""
    source, work = _file_replaced_by_a_directory(tmp_path)
    real = safefs.listing
    staged = []

    def racing(dir_fd, only=None):
        listed = real(dir_fd, only)
        if os.fstat(dir_fd).st_ino == os.lstat(work).st_ino and not staged:
            staged.append(dir_fd)
            _file_becomes_directory(work / "-dash", "inner")
        return listed

    monkeypatch.setattr(safefs, "listing", racing)
    with treediff.Trees(str(source), str(work), []) as trees:
        part = treediff.compare_part(trees, "", None, False)  # the level part: the root's own entries
        part.finish()
    assert staged, "the race was not staged"
    assert sorted(os.listdir(work / "-dash")) == ["inner"]
    assert stat.S_ISDIR(os.lstat(work / "-dash").st_mode)


def test_a_level_part_leaves_its_directory_with_the_sources_times_when_a_child_part_made_a_subdirectory(
        tmp_path, monkeypatch):
    """Found by the soak and a stress run (e/x/y, b, locked1: a directory's mtime was the run's time). The level
    part of r (r's own entries) read r's attributes when it started; before it listed r's entries, the part of a
    new subdirectory r/new made its directory (PartDiff.open creates it), which sets r's mtime to now. The level
    part then found r/new already there, changed nothing in r, and never set r's times again: the snapshot kept
    the run's time. A part's own directory gets the source's attributes when the part ends, whatever it saw at
    its start."""
    source, work = tmp_path / "source", tmp_path / "work"
    (source / "r" / "new").mkdir(parents=True)
    (source / "r" / "file").write_text("x")
    os.utime(source / "r" / "file", ns=(1_400_000_000 * 10 ** 9, 1_400_000_000 * 10 ** 9))
    os.utime(source / "r", ns=(1_500_000_000 * 10 ** 9, 1_500_000_000 * 10 ** 9))
    (work / "r").mkdir(parents=True)
    (work / "r" / "file").write_text("x")
    os.utime(work / "r" / "file", ns=(1_400_000_000 * 10 ** 9, 1_400_000_000 * 10 ** 9))
    os.utime(work / "r", ns=(1_500_000_000 * 10 ** 9, 1_500_000_000 * 10 ** 9))  # as the source: nothing to do
    real = safefs.listing
    staged = []

    def racing(dir_fd, only=None):
        if os.fstat(dir_fd).st_ino == os.lstat(work / "r").st_ino and not staged:
            staged.append(dir_fd)
            os.mkdir(work / "r" / "new", 0o700)  # the child part r/new opens (creates) its directory
        return real(dir_fd, only)

    monkeypatch.setattr(safefs, "listing", racing)
    with treediff.Trees(str(source), str(work), []) as trees:
        part = treediff.compare_part(trees, "r", None, False)  # the level part of r
        part.finish()
    assert staged, "the race was not staged"
    assert os.lstat(work / "r").st_mtime_ns == os.lstat(source / "r").st_mtime_ns
