"""Exact parsing of rsync's itemized output (itemize.py), on real rsync output: every field of every item.

Written against the mutants mutmut left alive in itemize.py with test_itemize.py alone (README, "Tests of the
engine"): directory flags and the stripped slash, deletions, the cut of ' -> ' and ' => ' when names contain them
(leaders reported or not: a follower whose leader is up to date was misparsed, finding R1 of issue 10's test
work), lines that are not items, and the --stats fields with thousands separators.
"""

import os
import shutil
import subprocess

from efs_backup_engine import itemize


def rsync_items(src, dst, *extra):
    proc = subprocess.run(["rsync", "-n", "-i", "-a", "-H", "--out-format=%i %n%L", *extra,
                           str(src) + "/", str(dst) + "/"],
                          stdout=subprocess.PIPE, check=True, env=dict(os.environ, LC_ALL="C"))
    return proc.stdout, list(itemize.parse(proc.stdout, str(src)))


def by_path(items):
    out = {}
    for item in items:
        assert item.path not in out, "one item per name: %r" % item.path
        out[item.path] = item
    return out


def test_directories_files_and_the_top_have_exact_names_and_flags(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)  # a one-letter directory: "a/" in the output
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "sub" / "f").write_bytes(b"x")
    (src / "top").write_bytes(b"y")
    dst.mkdir()
    _out, items = rsync_items(src, dst)
    items = by_path(item for item in items if item.path != b".")  # "." only when its times differ
    assert sorted(items) == [b"a", b"dir", b"dir/sub", b"dir/sub/f", b"top"]
    for name in (b"a", b"dir", b"dir/sub"):
        assert items[name].is_dir is True and items[name].deleting is False, items[name]
    for name in (b"dir/sub/f", b"top"):
        assert items[name].is_dir is False and items[name].leader is None, items[name]
        assert items[name].code.startswith(b">f"), items[name]


def test_deletions_of_files_and_directories(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "kept").write_bytes(b"k")
    (dst / "gone-dir" / "inner").mkdir(parents=True)
    (dst / "gone-file").write_bytes(b"g")
    (dst / "b").mkdir()  # one letter
    shutil.copy2(src / "kept", dst / "kept")
    os.utime(dst, ns=(os.stat(src).st_atime_ns, os.stat(src).st_mtime_ns))
    _out, items = rsync_items(src, dst, "--delete")
    deleted = {item.path: item for item in items if item.deleting}
    assert sorted(deleted) == [b"b", b"gone-dir", b"gone-dir/inner", b"gone-file"]
    assert deleted[b"gone-dir"].is_dir and deleted[b"gone-dir/inner"].is_dir and deleted[b"b"].is_dir
    assert not deleted[b"gone-file"].is_dir
    assert all(item.code == b"*deleting" and item.leader is None for item in deleted.values())


def test_symlink_names_and_targets_containing_the_arrow(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    links = {b"link -> x": b"t -> u", b"plain": b"a -> b -> c", b" -> lead": b"target", b"x -> y -> z": b"w"}
    for name, target in links.items():
        os.symlink(target, os.path.join(os.fsencode(src), name))
    _out, items = rsync_items(src, dst)
    items = by_path(item for item in items if item.path != b".")
    assert sorted(items) == sorted(links)
    for name in links:
        assert items[name].code[1:2] == b"L" and not items[name].is_dir and items[name].leader is None


def test_hard_link_names_containing_the_fat_arrow_get_their_exact_leader(tmp_path):
    """The defect-6 group: p, 'p => q', q (one inode), plus names with the separator at the start and twice."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    s = os.fsencode(src)
    names = [b"p", b"p => q", b"q", b" => head", b"r => s => t"]
    with open(os.path.join(s, names[0]), "wb") as handle:
        handle.write(b"content")
    for name in names[1:]:
        os.link(os.path.join(s, names[0]), os.path.join(s, name))
    _out, items = rsync_items(src, dst)
    items = by_path(item for item in items if item.path != b".")
    assert sorted(items) == sorted(names)
    leaders = [item for item in items.values() if item.leader is None]
    assert len(leaders) == 1, "one name of the group is transferred, the others are linked to it: %s" % items
    leader = leaders[0].path
    for name, item in items.items():
        if name != leader:
            assert item.leader == leader and item.code[0:1] == b"h", item


def test_a_follower_whose_leader_is_not_itemized_gets_its_own_name(tmp_path):
    """rsync prints `hf... r => p` for a new member r of a group whose leader p is up to date (p has no line of its
    own): the name is r, whatever the names contain."""
    for new, others in ((b"r", [b"p", b"q"]), (b"p => q", [b"p", b"q"]), (b"x", [b"a => b", b"c"])):
        src, dst = tmp_path / ("src-%d" % len(new)), tmp_path / ("dst-%d" % len(new))
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(dst, ignore_errors=True)
        src.mkdir()
        s = os.fsencode(src)
        with open(os.path.join(s, others[0]), "wb") as handle:
            handle.write(b"content")
        os.link(os.path.join(s, others[0]), os.path.join(s, others[1]))
        subprocess.run(["rsync", "-a", "-H", str(src) + "/", str(dst) + "/"], check=True)
        os.link(os.path.join(s, others[0]), os.path.join(s, new))  # the new member; the others are up to date
        _out, items = rsync_items(src, dst)
        items = by_path(item for item in items if item.path != b".")
        assert list(items) == [new], (new, items)
        assert items[new].leader in (None,) + tuple(others) and not items[new].is_dir


def test_restore_of_a_missing_hard_link_member_whose_leader_is_present(engine, tmp_path):
    """The restore path of the case above: the target holds p (identical) but lacks its hard link r."""
    src = os.fsencode(engine.source)
    with open(os.path.join(src, b"p"), "wb") as handle:
        handle.write(b"content")
    os.link(os.path.join(src, b"p"), os.path.join(src, b"r"))
    engine.backup()
    target = str(tmp_path / "target")
    subprocess.run(["rsync", "-a", "-H", engine.snapshot("daily.0") + "/", target + "/"], check=True)
    os.unlink(os.path.join(target, "r"))
    summary = engine.restore(target, "--snapshot", "daily.0")  # today: exit 1, FileNotFoundError 'r => p'
    assert summary["status"] == "success", summary
    assert sorted(os.listdir(target)) == ["p", "r"]
    assert os.stat(os.path.join(target, "r")).st_ino == os.stat(os.path.join(target, "p")).st_ino


def test_lines_that_are_not_items_are_skipped():
    out = (b"sending incremental file list\n"
           b">f+++++++++ real\n"
           b"Number of files: 3 (reg: 2, dir: 1)\n"
           b"cd+++++++ short\n"  # too short for an itemize code: not an item
           b">f+++++++++x glued\n"  # no space after the code: not an item
           b"\n")
    assert [(item.code, item.path) for item in itemize.parse(out, "/nonexistent")] == [(b">f+++++++++", b"real")]


def test_escapes_are_decoded_to_the_exact_bytes():
    out = b">f+++++++++ new\\#012line \\#377\\#200 back\\#134#012slash\n"
    [item] = itemize.parse(out, "/nonexistent")
    assert item.path == b"new\nline \xff\x80 back\\#012slash"


def test_stats_with_thousands_separators_anywhere_in_the_output():
    out = (b"some item line first\n"
           b"Number of files: 1,234,567 (reg: 1,000,000, dir: 12,345, link: 3, special: 1,001)\n"
           b"Number of created files: 2,000\n")
    stats = itemize.parse_stats(out)
    assert stats["files"] == 1234567 and stats["regular"] == 1000000 and stats["created"] == 2000
    assert stats["dirs"] == 12345 and stats["special"] == 1001
    bare = itemize.parse_stats(b"line\nNumber of files: 5 (reg: 5)\n")
    assert bare == {"files": 5, "regular": 5, "special": 0, "dirs": 0}
