#!/usr/bin/env python3
"""Deterministic test trees for the efs-backup benchmark (Python 3.9+, stdlib only).

* ``generate(root, nfiles, seed, skew=None)`` builds a tree of ``nfiles`` entries
  (regular files, a few symlinks and empty directories) whose names, contents,
  sizes, modes, owners and mtimes depend only on ``seed``.
* ``mutate(root, fraction, seed, round_no)`` changes ``fraction`` of the files:
  in-place content edits, appends, new files (sometimes in new directories, some
  symlinks), deletions, renames across directories, chmods and (as root) chowns.
  The same ``(seed, round_no)`` on the same tree gives the same changes.
* ``listing(root)`` returns ``{relpath: Entry}`` with type, mode, uid, gid, size,
  mtime_ns, symlink target and sha256 of content; ``compare()`` diffs two listings.

Only inode numbers and ctimes differ between two generations with one seed.
"""

import argparse
import bisect
import hashlib
import json
import os
import random
import stat
import sys
from collections import namedtuple

# mtimes: the generated tree lives in [OLD_BASE - 3y, OLD_BASE]; round r of the
# mutator stamps what it touches with NEW_BASE + r days, always newer than anything.
OLD_BASE = 1_600_000_000
NEW_BASE = 1_700_000_000
DAY = 86_400
POOL_SIZE = 8 << 20          # random bytes that file contents are sliced from
MAX_LARGE = 4 << 20          # largest generated file

Entry = namedtuple("Entry", "type mode uid gid size mtime_ns target sha256")

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

_WORDS = ("data", "report", "img", "log", "cache", "src", "lib", "doc", "user",
          "tmp", "build", "assets", "mail", "backup", "notes", "photo", "video",
          "config", "www", "db", "home", "proj", "shared", "archive")
_EXTS = (".txt", ".dat", ".log", ".json", ".csv", ".jpg", ".png", ".py", ".c",
         ".html", ".bin", ".gz", "")
_ODD = ("with space", "ünïcödé", "-leading-dash", "glob[1]*?", "semi;colon", "quote's")


_POOLS = {}


def _pool(seed):
    """Deterministic random bytes, sliced for file contents."""
    if seed not in _POOLS:
        rng = random.Random("pool:%s" % seed)
        _POOLS[seed] = rng.getrandbits(POOL_SIZE * 8).to_bytes(POOL_SIZE, "little")
    return _POOLS[seed]


def _size(rng):
    """File size: mostly small, some medium, very few large (mean ~3.5 KB)."""
    r = rng.random()
    if r < 0.01:
        return 0
    if r < 0.90:
        return int(64 * (4096 / 64) ** rng.random())           # 64 B .. 4 KiB
    if r < 0.999:
        return int(4096 * 8 ** rng.random())                   # 4 .. 32 KiB
    return int((256 << 10) * 16 ** rng.random())               # 256 KiB .. 4 MiB


def _content(rng, pool, size, label):
    head = ("%s\n" % label).encode("utf-8", "surrogateescape")[:size]
    rest = size - len(head)
    if rest <= 0:
        return head
    off = rng.randrange(0, POOL_SIZE - rest + 1)
    return head + pool[off:off + rest]


def _name(rng, i):
    word = rng.choice(_WORDS)
    if rng.random() < 0.005:
        word = rng.choice(_ODD)
    return "%s_%d%s" % (word, i, rng.choice(_EXTS))


def _file_mode(rng):
    r = rng.random()
    if r < 0.80:
        return 0o644
    if r < 0.88:
        return 0o600
    if r < 0.98:
        return 0o755
    return 0o444


def _owner(rng):
    """(uid, gid) for a new entry; only root can give files away."""
    r = rng.random()      # drawn even when not root, so the tree shape does not depend on it
    if not IS_ROOT:
        return None
    if r < 0.03:
        return (1000, 1000)
    if r < 0.04:
        return (1001, 100)
    return (0, 0)


def _stamp_old(rng):
    s = OLD_BASE - rng.randrange(0, 3 * 365 * DAY)
    return s * 1_000_000_000 + rng.randrange(0, 1_000_000_000)


def _stamp_new(rng, round_no):
    s = NEW_BASE + round_no * DAY + rng.randrange(0, DAY // 2)
    return s * 1_000_000_000 + rng.randrange(0, 1_000_000_000)


def _write_file(path, data, mode, owner, mtime_ns):
    with open(path, "wb") as f:
        f.write(data)
    if owner is not None:
        os.chown(path, owner[0], owner[1])
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def generate(root, nfiles, seed, skew=None, max_depth=7, dirs=None, top_level=None):
    """Create a deterministic tree of about ``nfiles`` non-directory entries under ``root``.

    ``skew``: if set (e.g. 0.8), the first top-level directory (``big``) gets that
    fraction of the files and of the directories; the rest is spread over the other
    top-level directories.  ``dirs`` / ``top_level``: number of directories / of top-level
    directories (default ``nfiles / 25`` / 6..24 depending on ``nfiles``).  Returns a dict of counts.
    """
    rng = random.Random("gen:%s:%s" % (seed, skew))
    pool = _pool(seed)
    os.makedirs(root, exist_ok=True)
    ntop = top_level or max(6, min(24, nfiles // 4000 + 8))
    ndirs = max(ntop, dirs or nfiles // 25)
    # top-level directories and their weights
    tops = []
    for t in range(ntop):
        name = "big" if (skew and t == 0) else "%s_%02d" % (rng.choice(_WORDS), t)
        tops.append(name)
    if skew:
        weights = [skew] + [(1.0 - skew) / (ntop - 1)] * (ntop - 1)
    else:
        weights = [rng.uniform(0.3, 1.7) for _ in range(ntop)]
    tot = sum(weights)
    weights = [w / tot for w in weights]
    # directories: per top, a random recursive tree with depth <= max_depth
    dirs_of = []            # per top: list of relative dir paths
    all_dirs = []           # (relpath, depth)
    for t, name in enumerate(tops):
        want = max(1, int(round(ndirs * weights[t])))
        mine = [(name, 1)]
        for k in range(want - 1):
            parent, depth = rng.choice(mine)
            if depth >= max_depth:
                parent, depth = mine[0]
            mine.append(("%s/%s_d%d" % (parent, rng.choice(_WORDS), k), depth + 1))
        dirs_of.append([d for d, _ in mine])
        all_dirs.extend(mine)
    for d, _ in all_dirs:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    # per-directory weights (Pareto: a few directories hold many files)
    cum_of = []
    for dl in dirs_of:
        acc, cum = 0.0, []
        for _ in dl:
            acc += min(rng.paretovariate(1.2), 200.0)
            cum.append(acc)
        cum_of.append(cum)
    top_cum = []
    acc = 0.0
    for w in weights:
        acc += w
        top_cum.append(acc)
    counts = {"files": 0, "symlinks": 0, "bytes": 0, "dirs": len(all_dirs) + 1,
              "top_level": ntop}
    made = []               # relative file paths, for symlink targets
    for i in range(nfiles):
        if rng.random() < 0.002 or i == 0:
            parent = ""      # a few top-level files
        else:
            t = min(bisect.bisect_left(top_cum, rng.random() * top_cum[-1]), ntop - 1)
            cum = cum_of[t]
            j = min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(cum) - 1)
            parent = dirs_of[t][j]
        rel = (parent + "/" if parent else "") + _name(rng, i)
        path = os.path.join(root, rel)
        if made and rng.random() < 0.01:
            # symlink: relative to a sibling-ish file, or dangling
            if rng.random() < 0.2:
                target = "missing-%d" % i
            else:
                target = os.path.relpath(rng.choice(made), parent or ".")
            os.symlink(target, path)
            os.utime(path, ns=(_stamp_old(rng),) * 2, follow_symlinks=False)
            counts["symlinks"] += 1
            continue
        size = _size(rng)
        _write_file(path, _content(rng, pool, size, rel), _file_mode(rng), _owner(rng),
                    _stamp_old(rng))
        made.append(rel)
        counts["files"] += 1
        counts["bytes"] += size
    # a few explicitly empty directories
    for k in range(max(2, ndirs // 200)):
        d = os.path.join(rng.choice(all_dirs)[0], "empty_%d" % k)
        os.makedirs(os.path.join(root, d), exist_ok=True)
        counts["dirs"] += 1
    # directory modes, owners and mtimes, bottom-up so creating children does not bump them
    all_paths = sorted(sorted({d for d, _ in all_dirs}), key=lambda p: -p.count("/"))
    for d in all_paths:
        p = os.path.join(root, d)
        own = _owner(rng)
        if own is not None:
            os.chown(p, own[0], own[1])
        os.chmod(p, 0o755 if rng.random() < 0.9 else rng.choice((0o750, 0o700, 0o775)))
    _restamp_dirs(root, rng)
    return counts


def _restamp_dirs(root, rng):
    """Give every directory (deepest first) a deterministic old mtime."""
    dirs = []
    for dirpath, dirnames, _ in os.walk(root):
        dirs.append(dirpath)
    dirs.sort()
    for d in sorted(dirs, key=lambda p: -p.count(os.sep)):
        ts = _stamp_old(rng)
        os.utime(d, ns=(ts, ts))


def _scan(root):
    """Sorted lists of (regular files, symlinks, dirs) as relative paths (dirs exclude root)."""
    files, links, dirs = [], [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel + "/"
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                links.append(rel + d)
            else:
                dirs.append(rel + d)
        for f in sorted(filenames):
            (links if os.path.islink(os.path.join(dirpath, f)) else files).append(rel + f)
    return files, links, dirs


# Share of the changes per operation (of ``fraction`` x number of files per round).
MUTATION_MIX = (
    ("edit", 0.34),     # overwrite bytes in place, same size, new mtime
    ("append", 0.15),   # grow, new mtime
    ("create", 0.18),   # new file (10% in a new directory, 5% symlinks)
    ("delete", 0.15),
    ("rename", 0.10),   # move to another directory under a new name (mtime kept)
    ("chmod", 0.06),    # mode only: mtime unchanged (ctime changes)
    ("chown", 0.02),    # owner only (as root; otherwise another chmod)
)


def mutate(root, fraction, seed, round_no):
    """Change ``fraction`` of the regular files under ``root``; returns counts per operation."""
    rng = random.Random("mut:%s:%s" % (seed, round_no))
    pool = _pool(seed)
    files, links, dirs = _scan(root)
    n = max(len(MUTATION_MIX), int(round(fraction * len(files))))
    plan = []
    for op, share in MUTATION_MIX:
        plan.extend([op] * max(1, int(round(n * share))))
    in_place = [op for op in plan if op not in ("create",)]
    victims = rng.sample(files, min(len(in_place), len(files)))
    stats = {op: 0 for op, _ in MUTATION_MIX}
    stats["dirs_created"] = 0
    stats["dirs_removed"] = 0
    touched = set()         # directories whose entries changed: restamped at the end
    vi = 0
    for k, op in enumerate(plan):
        if op == "create":
            if rng.random() < 0.10 or not dirs:
                parent = (rng.choice(dirs) + "/" if dirs else "") + "new_r%d_%d" % (round_no, k)
                os.makedirs(os.path.join(root, parent), exist_ok=True)
                dirs.append(parent)
                touched.add(os.path.dirname(parent))
                stats["dirs_created"] += 1
            else:
                parent = rng.choice(dirs) if rng.random() > 0.01 else ""
            rel = (parent + "/" if parent else "") + "r%d_%s" % (round_no, _name(rng, k))
            path = os.path.join(root, rel)
            if os.path.lexists(path):       # only when a round is replayed on the same tree
                continue
            touched.add(parent)
            if rng.random() < 0.05 and files:
                target = os.path.relpath(rng.choice(files), parent or ".")
                os.symlink(target, path)
                os.utime(path, ns=(_stamp_new(rng, round_no),) * 2, follow_symlinks=False)
            else:
                size = _size(rng)
                _write_file(path, _content(rng, pool, size, rel), _file_mode(rng), _owner(rng),
                            _stamp_new(rng, round_no))
            stats["create"] += 1
            continue
        if vi >= len(victims):
            continue
        rel = victims[vi]
        vi += 1
        path = os.path.join(root, rel)
        if op == "edit":
            st = os.lstat(path)
            with open(path, "r+b") as f:
                if st.st_size == 0:
                    f.write(_content(rng, pool, 100, rel))
                else:
                    ln = min(st.st_size, rng.randrange(1, 4097))
                    off = rng.randrange(0, st.st_size - ln + 1)
                    f.seek(off)
                    start = rng.randrange(0, POOL_SIZE - ln)
                    f.write(pool[start:start + ln])
            ts = _stamp_new(rng, round_no)
            os.utime(path, ns=(ts, ts))
        elif op == "append":
            with open(path, "ab") as f:
                ln = rng.randrange(1, 8193)
                start = rng.randrange(0, POOL_SIZE - ln)
                f.write(pool[start:start + ln])
            ts = _stamp_new(rng, round_no)
            os.utime(path, ns=(ts, ts))
        elif op == "delete":
            os.unlink(path)
            touched.add(os.path.dirname(rel))
        elif op == "rename":
            dest_dir = rng.choice(dirs)
            touched.add(os.path.dirname(rel))
            touched.add(dest_dir)
            new = os.path.join(root, dest_dir, "mv_r%d_%d_%s" % (round_no, k, os.path.basename(rel)))
            os.rename(path, new)
        elif op == "chown" and IS_ROOT:
            st = os.lstat(path)
            if st.st_uid == 0:
                os.chown(path, 1000, 1000)
            else:
                os.chown(path, 0, 0)
        else:  # chmod (and chown when not root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            new_mode = {0o644: 0o640, 0o640: 0o644, 0o600: 0o644, 0o755: 0o750,
                        0o750: 0o755, 0o444: 0o644}.get(mode, 0o644)
            os.chmod(path, new_mode)
        stats[op if (op != "chown" or IS_ROOT) else "chmod"] += 1
    # remove an empty directory now and then (deletions of directories, too)
    if rng.random() < 0.5:
        for d in sorted(dirs, key=lambda p: (-p.count("/"), p)):
            p = os.path.join(root, d)
            if not os.listdir(p):
                os.rmdir(p)
                touched.discard(d)
                touched.add(os.path.dirname(d))
                stats["dirs_removed"] += 1
                break
    for d in sorted(touched, key=lambda p: (-p.count("/"), p)):
        p = os.path.join(root, d) if d else root
        if os.path.isdir(p):
            ts = _stamp_new(rng, round_no)
            os.utime(p, ns=(ts, ts))
    stats["changes"] = sum(stats[op] for op, _ in MUTATION_MIX)
    stats["files_before"] = len(files)
    return stats


# ----------------------------------------------------------------------------- listings

_HASH_CACHE = {}


def _sha256(path, st):
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    h = _HASH_CACHE.get(key)
    if h is None:
        d = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                d.update(b)
        h = d.hexdigest()
        _HASH_CACHE[key] = h
    return h


def clear_hash_cache():
    _HASH_CACHE.clear()


def _entry(path, st):
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return Entry("l", stat.S_IMODE(mode), st.st_uid, st.st_gid, 0, st.st_mtime_ns,
                     os.fsdecode(os.readlink(path)), "")
    if stat.S_ISDIR(mode):
        return Entry("d", stat.S_IMODE(mode), st.st_uid, st.st_gid, 0, st.st_mtime_ns, "", "")
    if stat.S_ISREG(mode):
        return Entry("f", stat.S_IMODE(mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                     "", _sha256(path, st))
    return Entry("o", stat.S_IMODE(mode), st.st_uid, st.st_gid, 0, st.st_mtime_ns, "", "")


def listing(root, skip_top=()):
    """Full metadata + content listing of ``root``: {relpath: Entry}; root itself is ``"."``.

    ``skip_top``: top-level names to leave out (e.g. an engine's hidden state directory).
    """
    out = {".": _entry(root, os.lstat(root))}
    stack = [""]
    while stack:
        rel = stack.pop()
        base = os.path.join(root, rel) if rel else root
        with os.scandir(base) as it:
            for de in it:
                if not rel and de.name in skip_top:
                    continue
                r = rel + "/" + de.name if rel else de.name
                st = de.stat(follow_symlinks=False)
                e = _entry(de.path, st)
                out[r] = e
                if e.type == "d":
                    stack.append(r)
    return out


def write_listing(lst, path):
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        for rel in sorted(lst):
            f.write(json.dumps([rel] + list(lst[rel]), ensure_ascii=True) + "\n")


def read_listing(path):
    out = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            row = json.loads(line)
            out[row[0]] = Entry(*row[1:])
    return out


def compare(expected, actual, ignore_root_mtime=True, max_examples=5):
    """Diff two listings.  Returns {"ok": bool, "counts": {...}, "examples": [...]}.

    Compared per path: presence, type, mode, uid, gid, size (regular files), mtime_ns,
    symlink target, sha256.  The root directory's mtime is ignored by default
    (snapshot tools touch their snapshot root).
    """
    counts = {}
    examples = []

    def bad(kind, rel, detail=""):
        counts[kind] = counts.get(kind, 0) + 1
        if len(examples) < max_examples:
            examples.append("%s %s %s" % (kind, rel, detail))

    for rel, e in expected.items():
        a = actual.get(rel)
        if a is None:
            bad("missing", rel)
            continue
        if a.type != e.type:
            bad("type", rel, "%s!=%s" % (a.type, e.type))
            continue
        if a.mode != e.mode:
            bad("mode", rel, "%o!=%o" % (a.mode, e.mode))
        if a.uid != e.uid or a.gid != e.gid:
            bad("owner", rel, "%d:%d!=%d:%d" % (a.uid, a.gid, e.uid, e.gid))
        if e.type == "f" and a.size != e.size:
            bad("size", rel, "%d!=%d" % (a.size, e.size))
        if a.mtime_ns != e.mtime_ns and not (ignore_root_mtime and rel == "."):
            bad("mtime", rel, "%d!=%d" % (a.mtime_ns, e.mtime_ns))
        if a.target != e.target:
            bad("target", rel)
        if a.sha256 != e.sha256:
            bad("content", rel)
    for rel in actual:
        if rel not in expected:
            bad("extra", rel)
    return {"ok": not counts, "counts": counts, "examples": examples}


def tree_totals(lst):
    """(non-directory entries, bytes of regular files) of a listing."""
    n = b = 0
    for rel, e in lst.items():
        if e.type != "d":
            n += 1
            b += e.size
    return n, b


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("root")
    g.add_argument("--files", type=int, default=100_000)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--skew", type=float, default=None)
    m = sub.add_parser("mutate")
    m.add_argument("root")
    m.add_argument("--fraction", type=float, default=0.01)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--round", type=int, required=True)
    ls = sub.add_parser("list")
    ls.add_argument("root")
    ls.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("expected")
    c.add_argument("actual")
    a = p.parse_args(argv)
    if a.cmd == "generate":
        print(json.dumps(generate(a.root, a.files, a.seed, a.skew)))
    elif a.cmd == "mutate":
        print(json.dumps(mutate(a.root, a.fraction, a.seed, a.round)))
    elif a.cmd == "list":
        write_listing(listing(a.root), a.out)
    else:
        r = compare(read_listing(a.expected), read_listing(a.actual))
        print(json.dumps(r, indent=1))
        return 0 if r["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
