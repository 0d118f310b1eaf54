"""Bring one part (a directory, recursively or just its own entries, or a batch of subdirectories) of the work
tree up to date with the source.

The work tree is usually a recycled expired snapshot whose unchanged files are hard links shared with newer
snapshots. Letting rsync update such a tree would chmod/chown/touch shared inodes in place and silently rewrite
the metadata of every newer snapshot, so the engine does the comparison itself (treediff.py) and rsync only
copies what the engine lists:

1. the engine walks source and work tree side by side (directory fds, never following a symlink; a big part's
   source side is listed ahead by a second process, source_lister.py), compares every entry (type, permissions,
   owner, size, ns mtime, symlink target, device, hard-link group) and repairs the work tree: it removes what the
   source no longer has or has as another type, *unlinks* every differing non-directory (so no shared inode is
   ever modified), creates new directories, and hard-links files that are identical in the newest snapshot
   (rsync's --link-dest rule);
2. one rsync copies exactly the listed names (rsync.run_listed: no recursion, no --delete) through the two
   directory fds (/proc/self/fd/N), so it is never handed a path it could resolve through a symlink;
3. the engine sets the attributes of every directory it created or changed, deepest first.

Namespace writes are therefore proportional to what changed since the recycled tree was taken, and the tree is
read once. A read error in the source (an unreadable directory) never turns into deletions: what can be read is
synced exactly, the unreadable directory keeps the newest snapshot's copy, and the part reports every such path.
"""

import contextlib
import errno
import os
import re
import stat
import time

from efs_backup_engine import safefs, treediff
from efs_backup_engine.itemize import parse_stats
from efs_backup_engine.parts import describe, worst
from efs_backup_engine.rsync import RSYNC_BASE, classify, fd_path, recursion, run_listed, run_rsync

# Errors that mean the work tree's shape surprised the walk (an entry replaced under it, a leftover of a killed
# run): repaired by discarding the part's copy. Anything else (an I/O or permission error) fails the part.
STRUCTURAL = (errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY)
_UNREADABLE = re.compile(r'(?:failed to open|opendir) "(.*)"(?::| failed:) Permission denied')


def new_result():
    return {"status": "ok", "messages": [], "files_scanned": 0, "dirs": 0, "bytes_total": 0,
            "files_transferred": 0, "bytes_transferred": 0, "created": 0, "deleted": 0, "changed": 0,
            "special": 0, "linked": 0, "unreadable": [], "pass": "", "rsync_exit": 0}


def sync_part(source, work_tree, rel, names, recursive, link_dests):
    """Sync one part into the work tree and return its result (status, counts, messages, unreadable paths).

    names None: the directory source/rel itself (recursively, or only its own entries when not recursive).
    names [...]: a batch of subdirectories of source/rel, each recursively; rel's own attributes are not touched.

    A structural surprise in the work tree (an entry that changed type under the walk, a leftover of a killed
    run that cannot be repaired in place) discards the part's copy in the work tree and syncs it again from the
    newest snapshot and the source, saying so: a run never stays blocked on its own work tree.
    """
    started = time.time()
    try:
        result = _sync(source, work_tree, rel, names, recursive, link_dests)
    except treediff.Vanished as exc:
        result = new_result()
        result["status"] = "warning" if rel or names else "failed"
        result["messages"].append(str(exc))
    except OSError as exc:
        if not isinstance(exc, safefs.NotADirectory) and exc.errno not in STRUCTURAL:
            result = new_result()
            result["status"] = "failed"
            result["messages"].append("part %s: %s: %s" % (describe({"path": rel, "names": names}), type(exc).__name__,
                                                                      exc))
            result["seconds"] = time.time() - started
            return result
        first = "%s: %s" % (type(exc).__name__, exc)
        with _parent_times_kept(source, work_tree, rel, names):
            _discard(work_tree, rel, names)
            result = _sync(source, work_tree, rel, names, recursive, link_dests)
        result["messages"].insert(0, "work tree repaired: the part's copy was discarded and synced again (%s)"
                                  % first)
        result["status"] = worst(result["status"], "warning")
        result["pass"] = "rebuilt"
    result["seconds"] = time.time() - started
    return result


def _fresh(source, work_tree, rel, names, recursive):
    """The very first copy of a part (no snapshot to link against, nothing of it in the work tree yet): one
    ordinary rsync reproduces it exactly, hard-link groups included, at rsync's own speed. None if the part's
    copy is not empty (then the comparison is needed)."""
    rel_b = os.fsencode(rel)
    src_root = safefs.open_root(source)
    dst_root = safefs.open_root(work_tree)
    held = []
    try:
        try:
            src_fd = safefs.open_dir(src_root, rel_b)
        except (FileNotFoundError, safefs.NotADirectory, PermissionError):
            return None  # the comparison reports it
        held.append(src_fd)
        dst_fd = safefs.open_dir(dst_root, rel_b, create=True, replace=True)
        held.append(dst_fd)
        with os.scandir(dst_fd) as entries:
            present = {entry.name for entry in entries}
        if (present if names is None else present & set(names)):
            return None
        if names is None:
            code, out, err = run_rsync(RSYNC_BASE + recursion(recursive) + [fd_path(src_fd), fd_path(dst_fd)],
                                       pass_fds=tuple(held))
        else:
            code, out, err = run_listed(RSYNC_BASE, names, src_fd, dst_fd, pass_fds=tuple(held), recursive=recursive)
        missing = [name for name in names or () if safefs.lstat_at(src_fd, name) is None]
    finally:
        for fd in held + [src_root, dst_root]:
            os.close(fd)
    result = new_result()
    stats = parse_stats(out)
    status, messages = classify(code, err)
    result.update(status=status, messages=messages, rsync_exit=code)
    result["pass"] = "fresh"
    result.update(files_scanned=stats.get("files", 0), dirs=stats.get("dirs", 0),
                  bytes_total=stats.get("total_size", 0), special=stats.get("special", 0),
                  files_transferred=stats.get("transferred", 0), bytes_transferred=stats.get("transferred_size", 0),
                  created=stats.get("created", 0))
    result["unreadable"] += _unreadable_paths(err, rel)
    for name in missing:
        result["messages"].append("%s vanished from the source before it was copied" % os.path.join(rel, name))
        result["status"] = worst(result["status"], "warning")
    return result


def _unreadable_paths(stderr, rel):
    """The source paths (relative to the source root) rsync could not open, from its messages; it names them
    through the part's /proc/self/fd/N root."""
    found = []
    for line in stderr.decode("utf-8", "replace").splitlines():
        match = _UNREADABLE.search(line)
        if match:
            inside = re.match(r"^/proc/self/fd/\d+/?(.*)$", match.group(1))
            found.append(os.path.join(rel, inside.group(1) if inside else match.group(1)))
    return found


@contextlib.contextmanager
def _parent_times_kept(source, work_tree, rel, names):
    """The directory holding the part's entries belongs to another part that may have finished: rebuilding this
    part's entries must leave it with the times that part gives it, the source's (not the times it had before the
    rebuild: that part may have set them meanwhile)."""
    if names is None and not safefs.components(rel):
        yield  # the root part: its directory is its own
        return
    holder = os.fsencode(rel) if names is not None else os.fsencode(os.path.dirname(rel.rstrip("/")))
    yield
    root, src_root = safefs.open_root(work_tree), safefs.open_root(source)
    try:
        want = safefs.lstat_rel(src_root, holder)
        try:
            fd = safefs.open_dir(root, holder)
        except (FileNotFoundError, safefs.NotADirectory):
            return
        try:
            if want is not None and stat.S_ISDIR(want.st_mode) and os.fstat(fd).st_mtime_ns != want.st_mtime_ns:
                os.utime(fd, ns=(want.st_atime_ns, want.st_mtime_ns))
        finally:
            os.close(fd)
    finally:
        os.close(root)
        os.close(src_root)


def _discard(work_tree, rel, names):
    root = safefs.open_root(work_tree)
    try:
        if names is None:
            if safefs.components(rel):
                safefs.remove_rel(root, os.fsencode(rel))
            else:
                with os.scandir(root) as entries:
                    listing = [os.fsencode(entry.name) for entry in entries]
                for name in listing:
                    safefs.remove_at(root, name)
        else:
            for name in names:
                safefs.remove_rel(root, os.path.join(os.fsencode(rel), os.fsencode(name)))
    finally:
        os.close(root)


def _sync(source, work_tree, rel, names, recursive, link_dests):
    if not link_dests:
        fresh = _fresh(source, work_tree, rel, names, recursive)
        if fresh is not None:
            return fresh
    result = new_result()
    with treediff.Trees(source, work_tree, link_dests) as trees:
        diff = treediff.compare_part(trees, rel, list(names) if names is not None else None, recursive)
        result["pass"] = "incremental" if diff.dest_existed else "fresh"
        result.update(diff.counts())
        result["unreadable"] = list(diff.unreadable)
        for path in diff.unreadable:
            result["messages"].append("unreadable in the source: %s (kept as in the newest snapshot)" % path)
        if diff.unreadable or diff.vanished:
            result["status"] = "warning"
        result["messages"] += diff.messages
        if diff.transfer:
            code, out, err = run_listed(RSYNC_BASE + ["--no-implied-dirs"], diff.transfer, diff.src_fd, diff.dst_fd,
                                        pass_fds=(diff.src_fd, diff.dst_fd))
            stats = parse_stats(out)
            status, messages = classify(code, err)
            result["rsync_exit"] = code
            result["status"] = worst(result["status"], status)
            result["messages"] += messages
            result["files_transferred"] = stats.get("transferred", 0)
            result["bytes_transferred"] = stats.get("transferred_size", 0)
            result["created"] += stats.get("created", 0)
            result["unreadable"] += _unreadable_paths(err, rel)
        try:
            diff.finish()  # directory attributes, deepest first, after every entry is in place
        except OSError as exc:
            result["status"] = "failed"
            result["messages"].append("setting directory attributes in part %s: %s: %s"
                                      % (rel or ".", type(exc).__name__, exc))
    return result

