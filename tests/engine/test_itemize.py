"""rsync output parsing and exit classification, on real rsync output where possible."""

import os
import subprocess

from efs_backup_engine import itemize
from efs_backup_engine.rsync import classify


def test_escaped_names_parse_back_to_the_exact_bytes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    names = [b"new\nline", b"\xff\xfe", b"back\\#012slash", b"a -> b", b"c => d", b"sp ace"]
    for name in names:
        (src / os.fsdecode(name)).write_bytes(b"x")
    os.symlink(b"t -> u", os.path.join(os.fsencode(src), b"link -> x"))
    os.link(os.path.join(os.fsencode(src), b"c => d"), os.path.join(os.fsencode(src), b"e => f"))
    proc = subprocess.run(["rsync", "-n", "-i", "-a", "-H", "--out-format=%i %n%L", str(src) + "/", str(dst) + "/"],
                          stdout=subprocess.PIPE, check=True, env=dict(os.environ, LC_ALL="C"))
    items = {item.path: item for item in itemize.parse(proc.stdout, str(src))}
    for name in names + [b"link -> x"]:
        assert name in items, (name, sorted(items))
    follower = items.get(b"e => f") if items[b"e => f"].leader else items[b"c => d"]
    assert follower.leader in (b"c => d", b"e => f") and follower.leader != follower.path


def test_stats_are_parsed():
    out = (b"Number of files: 1,234 (reg: 1,000, dir: 200, link: 30, special: 4)\n"
           b"Number of created files: 12\nNumber of deleted files: 3\n"
           b"Number of regular files transferred: 7\nTotal file size: 9,876,543 bytes\n"
           b"Total transferred file size: 4,321 bytes\n")
    stats = itemize.parse_stats(out)
    assert stats == {"files": 1234, "regular": 1000, "created": 12, "deleted": 3, "transferred": 7,
                     "total_size": 9876543, "transferred_size": 4321, "special": 4, "dirs": 200}


def test_exit_classification():
    sender = b'rsync: [sender] send_files failed to open "/src/x": Permission denied (13)\n' \
             b"rsync error: some files/attrs were not transferred (see previous errors) (code 23)\n"
    receiver = b'rsync: [receiver] mkstemp "/dst/.x.AbCd" failed: Permission denied (13)\n' + sender
    vanished = b'file has vanished: "/src/y"\n'
    assert classify(0, b"")[0] == "ok"
    assert classify(23, sender)[0] == "warning"
    assert classify(24, vanished)[0] == "warning"
    assert classify(23, receiver)[0] == "failed"
    # an untagged destination-side message (no "rsync:" prefix) is a failure too, never a warning
    untagged = b'could not make way for new regular file: a/b\n' + sender
    assert classify(23, untagged)[0] == "failed"
    assert classify(23, b"")[0] == "failed", "exit 23 without any message to explain it"
    assert classify(11, b"rsync: [receiver] write failed: No space left on device (28)\n")[0] == "failed"
    assert classify(12, b"")[0] == "failed"
