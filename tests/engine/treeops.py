"""Test support for the engine: an independent tree listing (the oracle) and seeded random mutations.

Deliberately shares no code with the engine: a bug in the engine's own verify must not hide a bug here.
"""

import hashlib
import os
import random
import stat

NAMES_CORPUS = [
    b"plain.txt",
    b"with space",
    b"  leading and trailing spaces  ",
    b"new\nline",
    b"tab\there",
    b"-leading-dash",
    b"--rf",
    b"*",
    b"glob[ab]?.txt",
    b"\xff\xfe invalid utf-8 \x80",
    "unicod\u00e9 \u65e5\u672c".encode(),
    b"back\\slash",
    b"escape \\#012 look-alike",
    b"arrow -> not a link",
    b"fat => arrow",
    b"quote'\"s",
    b"$(not a command)",
    b"x" * 255,
    b".hidden",
    b"..double-dot-prefix",
    b"trailing.dot.",
    b"\x01\x02control",
]
# rsync 3.5 reads a --files-from entry that starts with '#' or ';' as a comment: engines before c6f1577 lost them.
COMMENT_LIKE_NAMES = [b"#hash first", b";semicolon first"]
NAMES_CORPUS += COMMENT_LIKE_NAMES


def listing(root):
    """{relative path bytes: metadata tuple} for the root and everything below it, content hashed."""
    root = os.fsencode(root)
    out = {}

    def entry(path, rel):
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        extra = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                extra = hashlib.sha256(handle.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(path)
        size = None if stat.S_ISDIR(st.st_mode) else st.st_size
        out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, st.st_mtime_ns, extra)
        if stat.S_ISDIR(st.st_mode):
            for name in os.listdir(path):
                entry(os.path.join(path, name), os.path.join(rel, name) if rel != b"." else name)

    entry(root, b".")
    return out


def fingerprint(root):
    """listing() plus each entry's inode, link count and ctime: any write, chmod, chown, link, unlink or rename
    in the tree changes it. For canary directories that nothing may touch."""
    out = {}
    for rel, meta in listing(root).items():
        st = os.lstat(os.path.join(os.fsencode(root), rel))
        out[rel] = meta + (st.st_ino, st.st_nlink, st.st_ctime_ns)
    return out


def diff(expected, actual, limit=20):
    problems = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            problems.append("missing %r" % path)
        elif path not in expected:
            problems.append("unexpected %r" % path)
        elif expected[path] != actual[path]:
            problems.append("%r: expected %r, got %r" % (path, expected[path], actual[path]))
        if len(problems) >= limit:
            break
    return problems


def hardlink_groups(root):
    """Sets of relative paths that share an inode within root (only groups of 2+)."""
    root = os.fsencode(root)
    groups = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                groups.setdefault(st.st_ino, set()).add(os.path.relpath(path, root))
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)


class TreeMutator:
    """Builds a tree and applies seeded random changes at every depth: adds, edits, deletes, renames, chmods,
    chowns, time changes, symlinks, hard links; top-level deletions included."""

    def __init__(self, root, seed, names=NAMES_CORPUS):
        self.root = os.fsencode(root)
        self.rng = random.Random(seed)
        self.names = names  # the corpus its unusual names come from
        self.counter = 0

    def _name(self, prefix=b"f"):
        self.counter += 1
        if self.rng.random() < 0.15:
            return self.rng.choice(self.names)[:200] + b"-%d" % self.counter
        return prefix + b"%d" % self.counter

    def _dirs(self):
        dirs = [self.root]
        for dirpath, dirnames, _files in os.walk(self.root):
            dirs.extend(os.path.join(dirpath, d) for d in dirnames)
        return dirs

    def _files(self):
        files = []
        for dirpath, _dirnames, filenames in os.walk(self.root):
            files.extend(os.path.join(dirpath, f) for f in filenames)
        return sorted(files)

    def build(self, dirs=6, depth=3, files_per_dir=5):
        def fill(path, level):
            os.makedirs(path, exist_ok=True)
            for _ in range(files_per_dir):
                _write(os.path.join(path, self._name()), self._content())
            if level < depth:
                for _ in range(self.rng.randint(1, dirs if level == 0 else 3)):
                    fill(os.path.join(path, self._name(b"d")), level + 1)

        fill(self.root, 0)
        os.symlink(b"dangling-target", os.path.join(self.root, b"dangling link"))

    def _content(self):
        size = self.rng.choice([0, 1, 10, 100, 1000, 5000])
        return bytes(self.rng.getrandbits(8) for _ in range(size))

    def mutate(self, changes=12):
        ops = [self.add, self.edit_same_size, self.append, self.delete_file, self.rename, self.chmod,
               self.chown, self.touch, self.add_dir, self.delete_dir, self.symlink, self.hardlink, self.rename_dir]
        done = []
        for _ in range(changes):
            op = self.rng.choice(ops)
            try:
                done.append(op())
            except (IndexError, ValueError):
                continue
        return done

    def add(self):
        directory = self.rng.choice(self._dirs())
        _write(os.path.join(directory, self._name()), self._content())
        return "add"

    def edit_same_size(self):
        path = self.rng.choice([f for f in self._files() if os.path.isfile(f) and not os.path.islink(f)])
        st = os.stat(path)
        data = bytearray(open(path, "rb").read())
        if data:
            data[self.rng.randrange(len(data))] ^= 0xFF
        _write(path, bytes(data))
        # same size, same second: only a nanosecond-exact comparison can see this edit
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        return "edit"

    def append(self):
        path = self.rng.choice([f for f in self._files() if os.path.isfile(f) and not os.path.islink(f)])
        with open(path, "ab") as handle:
            handle.write(b"more")
        return "append"

    def delete_file(self):
        os.unlink(self.rng.choice(self._files()))
        return "delete"

    def rename(self):
        path = self.rng.choice(self._files())
        os.rename(path, os.path.join(self.rng.choice(self._dirs()), self._name(b"r")))
        return "rename"

    def rename_dir(self):
        candidates = [d for d in self._dirs() if d != self.root]
        path = self.rng.choice(candidates)
        os.rename(path, os.path.join(os.path.dirname(path), self._name(b"rd")))
        return "rename-dir"

    def chmod(self):
        path = self.rng.choice([f for f in self._files() if not os.path.islink(f)] + self._dirs()[1:])
        os.chmod(path, self.rng.choice([0o600, 0o640, 0o644, 0o755, 0o700, 0o444, 0o2755]))
        return "chmod"

    def chown(self):
        path = self.rng.choice([f for f in self._files() if not os.path.islink(f)])
        os.chown(path, self.rng.choice([0, 1000, 12345]), self.rng.choice([0, 100, 54321]))
        return "chown"

    def touch(self):
        path = self.rng.choice(self._files())
        if not os.path.islink(path):
            os.utime(path, ns=(0, self.rng.randrange(10 ** 18)))
        return "touch"

    def add_dir(self):
        path = os.path.join(self.rng.choice(self._dirs()), self._name(b"nd"))
        os.mkdir(path)
        for _ in range(self.rng.randint(0, 3)):
            _write(os.path.join(path, self._name()), self._content())
        return "add-dir"

    def delete_dir(self):
        import shutil

        candidates = [d for d in self._dirs() if d != self.root]
        shutil.rmtree(self.rng.choice(candidates))
        return "delete-dir"

    def symlink(self):
        directory = self.rng.choice(self._dirs())
        os.symlink(self._name(b"target"), os.path.join(directory, self._name(b"l")))
        return "symlink"

    def hardlink(self):
        path = self.rng.choice([f for f in self._files() if os.path.isfile(f) and not os.path.islink(f)])
        os.link(path, os.path.join(os.path.dirname(path), self._name(b"h")))
        return "hardlink"
