"""Parse rsync's `--out-format='%i %n%L'` lines into exact file names (bytes-safe).

rsync escapes every control character (newline included) and, under LC_ALL=C, every high-bit byte as
backslash-hash-three-octal-digits, and escapes a literal backslash-hash-digits in a name the same way, so the
escape is unambiguous and each output line is exactly one item. `%L` appends " -> TARGET" to symlinks and
" => LEADER" to hard-link followers (not always: a follower whose leader was not itemized has none); a name may
itself contain those separators, so the cut is chosen by checking the source (see _choose): a leader already reported that is the
same inode, the whole text when it is a name, a leader of the same inode that was not itemized (up to date). The backup path no longer parses this output (treediff compares the trees itself); restores do.
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


def _splits(rest, separator):
    """Every way to cut rest at one occurrence of separator, leftmost first."""
    found = []
    start = 0
    while True:
        pos = rest.find(separator, start)
        if pos < 0:
            return found
        found.append((rest[:pos], rest[pos + len(separator):]))
        start = pos + 1


def _choose(rest, separator, valid, exists, emitted, likely=None):
    """(name, other) for a line whose rest may carry " -> TARGET" or " => LEADER" (other None: no suffix).

    A name may contain the separator itself, so the text alone can be ambiguous; the source decides, in this
    order: a cut that `likely` confirms (for hard links: the leader was reported earlier in this listing) for a
    name not reported yet; the whole text when it is a name in the source not reported yet; a cut that `valid`
    confirms (the symlink's target, or a leader of the same inode that was not itemized because it is up to
    date); else the whole text.
    """
    cuts = [(unescape(name), unescape(other)) for name, other in _splits(rest, separator)]
    whole = unescape(rest)
    valid_cuts = [cut for cut in cuts if valid(*cut)]
    for cut in valid_cuts:
        if cut[0] not in emitted and (likely is None or likely(*cut)):
            return cut
    if exists(whole) and whole not in emitted:
        return whole, None
    for cut in valid_cuts:
        if cut[0] not in emitted:
            return cut
    if valid_cuts:
        return valid_cuts[0]
    return whole, None


def parse(stdout, source_dir):
    """Yield Items from rsync stdout (bytes). Lines that are not itemized changes (stats) are skipped."""
    src = os.fsencode(source_dir)
    emitted = set()

    def lstat(name):
        try:
            return os.lstat(os.path.join(src, name))
        except OSError:
            return None

    def exists(name):
        return lstat(name) is not None

    def same_inode(name, leader):
        a, b = lstat(name), lstat(leader)
        return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def leader_reported(_name, leader):
        # rsync names the group's leader after the leader's own line, when the leader was itemized at all
        return leader in emitted

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
            name, _target = _choose(rest, b" -> ", symlink_to, exists, emitted)
        elif code[0:1] == b"h" and b" => " in rest:
            name, leader = _choose(rest, b" => ", same_inode, exists, emitted, leader_reported)
        else:
            name = unescape(rest)
        name, is_dir = _strip_dir(name)
        emitted.add(name)
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
