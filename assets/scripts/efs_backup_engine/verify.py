"""Compare a snapshot with the source: a full metadata walk plus content checksums (a sample or all files).

Compared per entry: type, permission bits, numeric owner and group, size and mtime (ns) of files and symlinks,
symlink targets, device numbers. Directory mtimes are compared too. Entries are matched by exact name bytes.

Hard-link groups are compared within their scope: names that are one inode in the source must be one inode in
the snapshot and the other way round, for names in the same directory (always one part), or across the whole
tree when the run was one part (hardlinks="tree"). Names of one inode in different parts may legitimately
differ (README: hard links are kept within a part).
"""

import hashlib
import os
import random
import stat

CHUNK = 1 << 20
SAMPLE_FRACTION = 0.05
SAMPLE_MIN = 100


def walk(root, inodes=None):
    """{relative path bytes: (type, mode, uid, gid, size, mtime_ns, extra)} for every entry below root.
    inodes (a dict): filled with {path: (dev, ino)} of every regular file."""
    root_b = os.fsencode(root)
    entries = {}
    stack = [b""]
    while stack:
        rel = stack.pop()
        directory = os.path.join(root_b, rel) if rel else root_b
        with os.scandir(directory) as it:
            for entry in it:
                path = os.path.join(rel, entry.name) if rel else entry.name
                st = entry.stat(follow_symlinks=False)
                kind = stat.S_IFMT(st.st_mode)
                extra = None
                size = st.st_size
                mtime = st.st_mtime_ns
                if stat.S_ISLNK(st.st_mode):
                    extra = os.readlink(entry.path)
                elif stat.S_ISDIR(st.st_mode):
                    stack.append(path)
                    size = None
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    extra = st.st_rdev
                elif stat.S_ISREG(st.st_mode) and inodes is not None:
                    inodes[path] = (st.st_dev, st.st_ino)
                entries[path] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, mtime, extra)
    return entries


FIELDS = ("type", "mode", "uid", "gid", "size", "mtime_ns", "target")


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hardlink_groups(inodes, paths, scope):
    """{frozenset of names sharing an inode} with two or more names, per directory (scope "directory") or over
    the whole tree ("tree"), for the given paths."""
    by_key = {}
    for path in paths:
        where = os.path.dirname(path) if scope == "directory" else b""
        by_key.setdefault((where, inodes[path]), set()).add(path)
    return {frozenset(names) for names in by_key.values() if len(names) > 1}


def compare(source, snapshot, checksum="sample", seed=None, limit=1000, hardlinks="directory"):
    """Returns {"compared", "checksummed", "mismatches": [...]} (mismatch texts are capped at `limit`)."""
    src_inodes, dst_inodes = {}, {}
    src = walk(source, src_inodes)
    dst = walk(snapshot, dst_inodes)
    mismatches = []
    both = [path for path in src_inodes if path in dst_inodes]
    src_groups = hardlink_groups(src_inodes, both, hardlinks)
    dst_groups = hardlink_groups(dst_inodes, both, hardlinks)
    for group in sorted(src_groups - dst_groups, key=sorted):
        mismatches.append("hard links: %s are one file in the source, not in the snapshot"
                          % ", ".join(repr(os.fsdecode(name)) for name in sorted(group)))
    for group in sorted(dst_groups - src_groups, key=sorted):
        mismatches.append("hard links: %s are one file in the snapshot, not in the source"
                          % ", ".join(repr(os.fsdecode(name)) for name in sorted(group)))
    for path in sorted(set(src) | set(dst)):
        shown = os.fsdecode(path)
        if path not in dst:
            mismatches.append("missing in snapshot: %r" % shown)
        elif path not in src:
            mismatches.append("not in source: %r" % shown)
        elif src[path] != dst[path]:
            fields = [name for name, a, b in zip(FIELDS, src[path], dst[path]) if a != b]
            mismatches.append("%r differs in %s" % (shown, ", ".join(fields)))
    regular = [p for p, meta in src.items() if meta[0] == stat.S_IFREG and p in dst and dst[p][0] == stat.S_IFREG]
    if checksum == "full":
        chosen = regular
    elif checksum == "sample":
        rng = random.Random(seed)
        count = min(len(regular), max(SAMPLE_MIN, int(len(regular) * SAMPLE_FRACTION)))
        chosen = rng.sample(sorted(regular), count)
    else:
        chosen = []
    src_b, dst_b = os.fsencode(source), os.fsencode(snapshot)
    for path in chosen:
        try:
            same = _digest(os.path.join(src_b, path)) == _digest(os.path.join(dst_b, path))
        except OSError as exc:
            mismatches.append("%r unreadable: %s" % (os.fsdecode(path), exc))
            continue
        if not same:
            mismatches.append("%r content differs" % os.fsdecode(path))
    return {"compared": len(src), "checksummed": len(chosen), "checksum": checksum,
            "mismatches": mismatches[:limit], "mismatch_count": len(mismatches)}
