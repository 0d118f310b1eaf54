"""The acceptance test's hands on the production file system (mounted at /mnt/source by its Lambda function).

Events (the integ test's assertions invoke the function with one of them; each returns JSON):
  {"action": "seed"}                     the sample tree under data/: awkward names, hard links, symlinks, modes,
                                         owners, fixed mtimes -> {"status": "seeded", "entries": N}
  {"action": "change"}                   a second state for the second backup -> {"status": "changed"}
  {"action": "absent", "path": P}        -> {"absent": true|false}
  {"action": "compare", "left": L, "right": R}
                                         both trees equal in names, types, content, modes, owners, mtimes, symlink
                                         targets and hard-link structure -> {"equal": true|false, "differences": [...]}
Paths are relative to the file system root; nothing outside it is touched.
"""

import hashlib
import os
import shutil
import stat

ROOT = "/mnt/source"
MTIME = 1700000000  # fixed, so a restored tree can be compared exactly


def _path(rel):
    full = os.path.normpath(os.path.join(ROOT, rel))
    if full != ROOT and not full.startswith(ROOT + "/"):
        raise ValueError("path outside the file system: %r" % rel)
    return full


def _write(path, data, mode=0o644, owner=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    if owner:
        os.chown(path, *owner)
    os.utime(path, (MTIME, MTIME))


def seed():
    """Idempotent (the assertion waiter may invoke it again after an error): starts from an empty data/."""
    data = _path("data")
    if os.path.lexists(data):
        shutil.rmtree(data)
    awkward = ["with space.txt", "tab\tname", "newline\nname", "ünïcødé-名前.txt", "-leading-dash", "*glob?[x]",
               "quote'\"both", "back\\slash", ".hidden", "x" * 200, "trailing space "]
    for index, name in enumerate(awkward):
        _write(os.path.join(data, "awkward", name), ("awkward %d\n" % index).encode() * (index + 1))
    _write(os.path.join(data, "awkward", "empty"), b"")
    restore_me = os.path.join(data, "restore-me")
    _write(os.path.join(restore_me, "original.bin"), os.urandom(256 * 1024))
    os.makedirs(os.path.join(restore_me, "sub dir"), exist_ok=True)
    os.link(os.path.join(restore_me, "original.bin"), os.path.join(restore_me, "hardlink.bin"))
    os.link(os.path.join(restore_me, "original.bin"), os.path.join(restore_me, "sub dir", "hardlink 2.bin"))
    os.symlink("original.bin", os.path.join(restore_me, "relative-link"))
    os.symlink("/mnt/elsewhere/absolute", os.path.join(restore_me, "absolute-link"))
    os.symlink("does-not-exist", os.path.join(restore_me, "dangling-link"))
    os.symlink("sub dir", os.path.join(restore_me, "dir-link"))
    _write(os.path.join(restore_me, "private", "secret.txt"), b"owner only\n", mode=0o600, owner=(1234, 5678))
    os.chmod(os.path.join(restore_me, "private"), 0o700)
    _write(os.path.join(restore_me, "sub dir", "ünïcødé name.txt"), b"nested\n", mode=0o640)
    for depth in range(12):
        _write(os.path.join(data, "deep", *["level%d" % i for i in range(depth + 1)], "leaf"), b"%d\n" % depth)
    for directory, _dirs, _files in os.walk(data, topdown=False):
        os.utime(directory, (MTIME, MTIME))
    return {"status": "seeded", "entries": sum(len(d) + len(f) for _r, d, f in os.walk(data))}


def change():
    """Idempotent: a second call after a completed change changes nothing more."""
    data = _path("data")
    marker = os.path.join(data, "new in run 2", "file (2).txt")
    if os.path.exists(marker):
        return {"status": "changed"}
    with open(os.path.join(data, "awkward", "with space.txt"), "ab") as handle:
        handle.write(b"appended for the second backup\n")
    os.unlink(os.path.join(data, "awkward", "-leading-dash"))
    _write(os.path.join(data, "new in run 2", "file (2).txt"), b"new\n")
    os.chmod(os.path.join(data, "awkward", "empty"), 0o600)
    _write(os.path.join(data, "restore-me", "added later.txt"), b"added before the second backup\n")
    os.utime(os.path.join(data, "restore-me"), (MTIME, MTIME))
    return {"status": "changed"}


def describe(top):
    """{relative path: (type, mode, uid, gid, size, mtime, link target, sha256, hard-link group)}; a hard-link
    group is named by the smallest path sharing the inode, so listing order does not matter."""
    entries, inodes = {}, {}
    for directory, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, top)
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            digest = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                if info.st_nlink > 1:
                    inodes.setdefault(info.st_ino, []).append(rel)
            entries[rel] = [stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid,
                            info.st_size if not stat.S_ISDIR(info.st_mode) else 0,
                            int(info.st_mtime) if not stat.S_ISLNK(info.st_mode) else None, target, digest, None]
    for paths in inodes.values():
        for rel in paths:
            entries[rel][-1] = min(paths) if len(paths) > 1 else None
    return {rel: tuple(entry) for rel, entry in entries.items()}


def compare(left, right):
    a, b = describe(_path(left)), describe(_path(right))
    differences = sorted(set(a) ^ set(b))[:20]
    differences += ["%s: %r != %r" % (k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]][:20]
    return {"equal": not differences and bool(a), "entries": len(a), "differences": differences}


def handler(event, _context):
    action = event["action"]
    if action == "seed":
        return seed()
    if action == "change":
        return change()
    if action == "absent":
        return {"absent": not os.path.lexists(_path(event["path"]))}
    if action == "compare":
        return compare(event["left"], event["right"])
    raise ValueError("unknown action %r" % action)
