"""Parse rsync's `--out-format='%i %n%L'` lines into exact file names (bytes-safe).

rsync escapes every control character (newline included) and, under LC_ALL=C, every high-bit byte as
backslash-hash-three-octal-digits, and escapes a literal backslash-hash-digits in a name the same way, so the
escape is unambiguous and each output line is exactly one item. `%L` appends " -> TARGET" to symlinks and
" => LEADER" to hard links; a name may itself contain those separators, so the split is chosen by checking the
source: the symlink whose target matches, or the two names that are the same inode.
"""

import os
import re
from collections import namedtuple

_ESCAPE = re.compile(rb"\\#([0-7]{3})")
_CODE = re.compile(rb"^([<>ch.*])([fdLDS])")

Item = namedtuple("Item", "code path is_dir deleting leader")


def unescape(raw):
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), raw)


def _strip_dir(name):
    if name.endswith(b"/") and len(name) > 1:
        return name[:-1], True
    return name, False


def _split(rest, separator, accept):
    """Return (name, other) for the split of rest at separator that accept() approves, else (rest, None)."""
    start = 0
    candidates = []
    while True:
        pos = rest.find(separator, start)
        if pos < 0:
            break
        candidates.append((rest[:pos], rest[pos + len(separator):]))
        start = pos + 1
    for name, other in candidates:
        if accept(unescape(name), unescape(other)):
            return name, other
    if candidates:
        return candidates[0]
    return rest, None


def parse(stdout, source_dir):
    """Yield Items from rsync stdout (bytes). Lines that are not itemized changes (stats) are skipped."""
    src = os.fsencode(source_dir)

    def same_inode(name, leader):
        try:
            a = os.lstat(os.path.join(src, name))
            b = os.lstat(os.path.join(src, leader))
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def symlink_to(name, target):
        try:
            return os.readlink(os.path.join(src, name)) == target
        except OSError:
            return False

    for line in stdout.split(b"\n"):
        if line.startswith(b"*deleting"):
            name, is_dir = _strip_dir(unescape(line[12:]))
            yield Item(b"*deleting", name, is_dir, True, None)
            continue
        match = _CODE.match(line)
        if not match or len(line) < 13 or line[11:12] != b" ":
            continue
        code, rest = line[:11], line[12:]
        leader = None
        if code[1:2] == b"L" and b" -> " in rest:
            rest, _target = _split(rest, b" -> ", symlink_to)
        elif code[0:1] == b"h" and b" => " in rest:
            rest, leader = _split(rest, b" => ", same_inode)
            leader = unescape(leader) if leader is not None else None
        name, is_dir = _strip_dir(unescape(rest))
        yield Item(code, name, is_dir, False, leader)


def parse_stats(stdout):
    """The numbers of rsync's --stats block that the engine records."""
    stats = {}
    patterns = {
        "files": rb"^Number of files: ([\d,]+)",
        "regular": rb"^Number of files: [\d,]+ \(reg: ([\d,]+)",
        "created": rb"^Number of created files: ([\d,]+)",
        "deleted": rb"^Number of deleted files: ([\d,]+)",
        "transferred": rb"^Number of regular files transferred: ([\d,]+)",
        "total_size": rb"^Total file size: ([\d,]+)",
        "transferred_size": rb"^Total transferred file size: ([\d,]+)",
    }
    for key, pattern in patterns.items():
        match = re.search(pattern, stdout, re.M)
        if match:
            stats[key] = int(match.group(1).replace(b",", b""))
    match = re.search(rb"^Number of files: .*special: ([\d,]+)", stdout, re.M)
    stats["special"] = int(match.group(1).replace(b",", b"")) if match else 0
    match = re.search(rb"^Number of files: .*dir: ([\d,]+)", stdout, re.M)
    stats["dirs"] = int(match.group(1).replace(b",", b"")) if match else 0
    return stats
