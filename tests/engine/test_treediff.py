"""treediff at the level of one part, where a race between parts can be staged deterministically."""

import os
import stat

from efs_backup_engine import treediff


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
    """A structural surprise discards a part's copy and syncs it again (sync.sync_unit). The directory holding the
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
    result = sync.sync_unit(str(source), str(work), "r", ["child"], True, [])
    assert result["status"] == "warning" and result["pass"] == "rebuilt", result
    assert sorted(os.listdir(work / "r" / "child")) == ["file"]
    assert os.lstat(work / "r").st_mtime_ns == os.lstat(source / "r").st_mtime_ns
