"""Bring one unit (a directory, recursively or just its own entries) of the work tree up to date with rsync.

Why two passes: the work tree is usually a recycled expired snapshot whose unchanged files are hard links
shared with newer snapshots. Letting rsync update such a tree directly would chmod/chown/touch shared inodes in
place and silently rewrite the metadata of every newer snapshot. So:

1. a dry run (`rsync -n -i --delete`) lists exactly what differs between source and work tree;
2. the engine deletes what rsync would delete and *unlinks* every differing non-directory from the work tree,
   so no shared inode is ever modified;
3. a second rsync transfers only the listed names (`--files-from`), with `--link-dest` to the newest snapshots:
   files that are already identical there become one hard link, the rest are copied. Ancestor directories are
   listed too so their attributes (mtime) end up as in the source.

Namespace writes are therefore proportional to what changed since the recycled tree was taken, not to the
size of the tree. A unit whose work directory is new or empty takes a single ordinary `--link-dest` pass.
"""

import os
import stat
import subprocess
import time

from efs_backup_engine import itemize
from efs_backup_engine.fsutil import makedirs, remove_tree

# --modify-window=-1: compare mtimes to the nanosecond. rsync's default (whole seconds) misses a same-size edit
# made within the second of the previous copy, and leaves directory times off by up to a second.
RSYNC_BASE = ["-a", "-H", "-S", "-x", "--numeric-ids", "--modify-window=-1", "--stats"]


def _rsync_env():
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # escape every non-ASCII byte in output so names parse exactly
    return env


# stderr lines of rsync that a source-side problem explains (rsync >= 3.2 tags its messages with the role).
_SENDER_SIDE = ("[sender]", "file has vanished", "IO error encountered -- skipping file deletion")
_SUMMARIES = ("rsync error: some files", "rsync warning: some files")


def classify(exit_code, stderr):
    """(status, messages) for an rsync exit: ok, warning (source-side trouble on a live FS) or failed.

    Exit 24 (files vanished) is a warning. Exit 23 is a warning only when every message is the sending side's
    (unreadable or vanished source files) or rsync's closing summary: any other line — a receiver or generator
    error, or an untagged message such as "could not make way for new regular file" — means writing the
    destination went wrong, and the part fails. Every other exit code fails too.
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if exit_code == 0:
        return "ok", lines
    if exit_code == 24:
        return "warning", lines
    if exit_code == 23 and lines and all(any(mark in line for mark in _SENDER_SIDE) or line.startswith(_SUMMARIES)
                                         for line in lines):
        return "warning", lines
    return "failed", lines or ["rsync exited with code %d" % exit_code]


def _run(args, files_from=None):
    proc = subprocess.run(["rsync"] + args, input=files_from, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=_rsync_env())
    return proc.returncode, proc.stdout, proc.stderr


def _ancestors(path):
    parts = path.split(b"/")
    return [b"/".join(parts[:i]) for i in range(1, len(parts))]


def _is_real_dir(path):
    return os.path.isdir(path) and not os.path.islink(path)


def _is_empty_dir(path):
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except (FileNotFoundError, NotADirectoryError):
        return True


def _unit_dirs(root, rel):
    return os.path.join(root, rel) if rel else root


def sync_unit(source, work_tree, rel, names, recursive, link_dests):
    """Sync one unit into the work tree and return its result (status, counts, messages).

    names None: the directory source/rel itself (recursively, or only its own entries when not recursive).
    names [...]: a batch of subdirectories of source/rel, each recursively; rel's own attributes are not touched.
    """
    started = time.time()
    src = _unit_dirs(source, rel)
    dst = _unit_dirs(work_tree, rel)
    result = {"status": "ok", "messages": [], "files_scanned": 0, "dirs": 0, "bytes_total": 0,
              "files_transferred": 0, "bytes_transferred": 0, "created": 0, "deleted": 0, "changed": 0,
              "special": 0, "linked": 0, "pass": "", "rsync_exit": 0}
    if names is None:
        if not _is_real_dir(src):
            # Removed from the source after the unit was planned: so is its copy.
            if rel:
                remove_tree(dst)
            result["messages"].append("source directory vanished before it was copied; removed from the snapshot")
            result["status"] = "warning" if rel else "failed"
            result["seconds"] = time.time() - started
            return result
        makedirs(os.path.dirname(dst.rstrip("/")) or "/")
        sources = [src + "/"]
        fresh = _is_empty_dir(dst)
    else:
        present = []
        for name in names:
            if _is_real_dir(os.path.join(src, name)):
                present.append(name)
            else:
                remove_tree(os.path.join(dst, name))
                result["status"] = "warning"
                result["messages"].append("%s vanished from the source before it was copied; removed from the "
                                          "snapshot" % os.path.join(rel, name))
        makedirs(dst)
        sources = [os.path.join(src, name) for name in present]
        fresh = all(_is_empty_dir(os.path.join(dst, name)) for name in present)
        if not present:
            result["seconds"] = time.time() - started
            return result
    recursion = ["-r"] if recursive else ["--no-r", "-d"]
    link_dirs = [d for d in (_unit_dirs(link_dest, rel) for link_dest in link_dests) if _is_real_dir(d)]
    links = ["--link-dest=" + d for d in link_dirs]

    if fresh:
        result["pass"] = "fresh"
        code, out, err = _run(RSYNC_BASE + recursion + ["--delete"] + links + sources + [dst + "/"])
        stats = itemize.parse_stats(out)
        result.update(_counts(stats, stats))
        result["created"] = stats.get("created", 0)
        status, messages = classify(code, err)
        result["status"] = _worst(result["status"], status)
        result["messages"] += messages
        result["rsync_exit"] = code
        result["seconds"] = time.time() - started
        return result

    result["pass"] = "incremental"
    code, out, err = _run(RSYNC_BASE + recursion + ["-n", "-i", "--delete", "--out-format=%i %n%L"] + sources
                          + [dst + "/"])
    status, messages = classify(code, err)
    status, messages = _worst(result["status"], status), result["messages"] + messages
    result["rsync_exit"] = code
    if status == "failed":
        result.update(status=status, messages=messages, seconds=time.time() - started)
        return result
    scan_stats = itemize.parse_stats(out)
    dst_b = os.fsencode(dst)
    src_b = os.fsencode(src)
    link_dirs_b = [os.fsencode(d) for d in link_dirs]
    linked = 0
    wanted = set()
    gone = set()
    changed = 0
    for item in itemize.parse(out, src):
        target = os.path.join(dst_b, item.path)
        if item.deleting:
            remove_tree(target)
            gone.add(item.path)
            wanted.update(_ancestors(item.path))
            continue
        changed += 1
        gone.discard(item.path)  # replaced by an entry of another type
        wanted.update(_ancestors(item.path))
        if not item.is_dir:
            _unlink_non_dir(target)
            if item.code[1:2] == b"f" and item.leader is None and _link_from_newest(src_b, link_dirs_b, item.path,
                                                                                  target):
                linked += 1
                continue
        wanted.add(item.path)
        if item.leader is not None:
            wanted.add(item.leader)
            wanted.update(_ancestors(item.leader))
    wanted -= gone  # ancestors listed for deleted entries may be deleted directories themselves
    if names is None:
        wanted.add(b".")  # the unit's own directory: its times are restored after its entries changed
    deleted = len(gone)
    result["deleted"] = deleted
    result["changed"] = changed
    result["linked"] = linked
    apply_stats = {}
    if changed or deleted:
        listing = b"\0".join(sorted(wanted)) + b"\0"
        code2, out2, err2 = _run(RSYNC_BASE + ["--files-from=-", "--from0"] + links + [src + "/", dst + "/"],
                                 files_from=listing)
        apply_stats = itemize.parse_stats(out2)
        status2, messages2 = classify(code2, err2)
        messages = messages + messages2
        if code2:
            result["rsync_exit"] = code2
        status = _worst(status, status2)
    result.update(_counts(scan_stats, apply_stats))
    result["created"] = apply_stats.get("created", 0)
    result["status"], result["messages"] = status, messages
    result["seconds"] = time.time() - started
    return result


def _counts(scan_stats, transfer_stats):
    return {
        "files_scanned": scan_stats.get("files", 0),
        "dirs": scan_stats.get("dirs", 0),
        "bytes_total": scan_stats.get("total_size", 0),
        "special": scan_stats.get("special", 0),
        "files_transferred": transfer_stats.get("transferred", 0),
        "bytes_transferred": transfer_stats.get("transferred_size", 0),
    }


def _link_from_newest(src_root, link_roots, rel, target):
    """Hard-link an unchanged file from the newest snapshot into the work tree, as rsync's --link-dest would.

    The work tree is usually a tree several runs old: most files it lacks changed in an earlier run and sit,
    identical to the source, in the newest snapshot. Linking them here spares the apply pass a per-file check.
    Same rule as rsync: regular file, same size, mtime (ns), mode and owner. Files with several links in the
    source are left to rsync -H. Any error (a directory not created yet, EMLINK) falls back to rsync.
    """
    try:
        source = os.lstat(os.path.join(src_root, rel))
    except OSError:
        return False
    if not stat.S_ISREG(source.st_mode) or source.st_nlink != 1:
        return False
    for root in link_roots:
        candidate = os.path.join(root, rel)
        try:
            kept = os.lstat(candidate)
        except OSError:
            continue
        if (stat.S_ISREG(kept.st_mode) and kept.st_size == source.st_size and kept.st_mtime_ns == source.st_mtime_ns
                and kept.st_mode == source.st_mode and kept.st_uid == source.st_uid and kept.st_gid == source.st_gid):
            try:
                os.link(candidate, target)
                return True
            except OSError:
                return False
    return False


def _unlink_non_dir(path):
    """Drop a file/symlink/special from the work tree so rsync creates a fresh inode (never edits a shared one)."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _worst(a, b):
    order = ("ok", "warning", "failed")
    return a if order.index(a) >= order.index(b) else b
