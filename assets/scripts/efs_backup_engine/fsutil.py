"""Small file-system primitives that are safe on NFS/EFS: atomic JSON writes, server-side clock, removal."""

import json
import os
import socket
import uuid

from efs_backup_engine import safefs


def write_json_atomic(path, data, durable=True):
    """Write JSON so that readers see the old content or the new one, never a torn file.

    durable=True also fsyncs before the rename (journal, manifests, lock): on a local disk that survives a
    machine crash. The per-part bookkeeping (parts, claims, results) skips it: a killed process loses nothing
    without it, NFS clients flush on close anyway, and an fsync per part stalls badly on a busy local disk.
    """
    tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:12])
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.rename(tmp, path)


def read_json(path, default=None, corrupt_ok=False):
    """Parsed JSON, or default if missing (or, with corrupt_ok, unreadable: e.g. an unsynced file that a machine
    crash left empty on a local disk)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except ValueError:
        if corrupt_ok:
            return default
        raise


def create_exclusive(path, data):
    """Create path holding JSON data, complete from the instant it appears; False if it already exists.

    The content goes to a private temporary file first, then link() publishes it: link fails with EEXIST if the
    name exists (atomic on local disks and NFS), so exactly one creator wins and no reader sees a partial file.
    Not fsynced: used for the per-part bookkeeping only (see write_json_atomic).
    """
    tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:12])
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def fs_now(directory):
    """The file system's idea of "now": the mtime of a freshly touched probe file.

    Ages of heartbeat files are measured against this, so a worker whose own clock is skewed
    can never judge a live lock stale.
    """
    probe = os.path.join(directory, ".clock-%s-%d" % (socket.gethostname(), os.getpid()))
    with open(probe, "w"):
        pass
    os.utime(probe)
    try:
        return os.stat(probe).st_mtime
    finally:
        os.unlink(probe)


def remove_tree(path, overlapped=False):
    """Remove a file, symlink or directory tree; missing is fine. Nothing below path is followed: the removal goes
    through directory fds (safefs.remove_at), so a symlink inside the tree is removed, never its target. Only
    path's parent is resolved as a path (the engine's own layout). overlapped: see safefs.remove_at."""
    parent, name = os.path.split(os.path.abspath(path).rstrip("/"))
    try:
        fd = safefs.open_root(parent)
    except FileNotFoundError:
        return
    try:
        safefs.remove_at(fd, os.fsencode(name), overlapped)
    finally:
        os.close(fd)


def makedirs(path, mode=0o755):
    os.makedirs(path, mode=mode, exist_ok=True)
