"""Refuse the wrong file systems before anything is touched.

The old scripts' worst failure: a mount failed, rsync --delete copied an empty directory, every snapshot was
wiped. Here a run refuses when the backup root lacks the marker `init` wrote, when the source is missing,
unreadable, not a mount point although one is required, nested with the backup root, or empty while the
newest snapshot is not (unless the operator explicitly allows an empty source). Restores add their own checks
(restore.py) on top of the same helpers: the target must not overlap the backup root or the state directory.
"""

import os
import re
import time

from efs_backup_contract.intervals import INTERVALS
from efs_backup_engine.errors import Refused
from efs_backup_engine.fsutil import makedirs, read_json, write_json_atomic
from efs_backup_engine.layout import BACKUP_ID_RE, MARKER


def init_root(backup_root):
    """Write the marker that proves this directory is an efs-backup root (idempotent)."""
    if not os.path.isdir(backup_root):
        raise Refused("backup root %s does not exist or is not a directory" % backup_root)
    marker = os.path.join(backup_root, MARKER)
    existing = read_json(marker)
    if existing is not None:
        return existing, False
    data = {"format": 1, "created": time.time(), "note": "efs-backup root; do not delete"}
    write_json_atomic(marker, data)
    return data, True


def check_backup_root(layout):
    if not os.path.isdir(layout.root):
        raise Refused("backup root %s does not exist (is the backup file system mounted?)" % layout.root)
    if not os.path.isfile(layout.marker):
        raise Refused("backup root %s has no %s marker: it is not an initialised efs-backup root (wrong or "
                      "unmounted file system?). Run `efs-backup-engine init --backup-root %s` once on the right "
                      "file system." % (layout.root, MARKER, layout.root))


def check_names(backup_id, interval=None, retain=None):
    if not BACKUP_ID_RE.match(backup_id or ""):
        raise Refused("backup id %r: use 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
                      % backup_id)
    if interval is not None and interval not in INTERVALS:
        raise Refused("interval %r: expected one of %s" % (interval, ", ".join(INTERVALS)))
    if retain is not None and retain < 1:
        raise Refused("retain %r: expected an integer >= 1" % retain)


def is_mountpoint(path):
    """os.path.ismount, which compares devices and so misses a bind mount of a directory of the same file
    system; those are found in /proc/self/mountinfo (mount points octal-escaped, field 5)."""
    if os.path.ismount(path):
        return True
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    unescape = re.compile(rb"\\([0-7]{3})")
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4 and unescape.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4]) == os.fsencode(real):
            return True
    return False


def mount_relative(path):
    """The path inside its file system: relative to the nearest enclosing mount point ("." for the mount point),
    so that two hosts mounting one file system at different places name the same directory alike."""
    real = os.path.realpath(path)
    probe = real
    while not os.path.isdir(probe):  # a target not created yet: its nearest existing ancestor
        probe = os.path.dirname(probe)
    while probe != "/" and not is_mountpoint(probe):
        probe = os.path.dirname(probe)
    return os.path.relpath(real, probe)


def inside(path, directory):
    """Whether path is directory or lies below it, both resolved through every symlink (realpath)."""
    real_path, real_dir = os.path.realpath(path), os.path.realpath(directory)
    return real_path == real_dir or real_path.startswith(real_dir.rstrip("/") + "/")


def overlaps(a, b):
    return inside(a, b) or inside(b, a)


def check_source(source, layout, newest_snapshot, require_mountpoint, allow_empty):
    if not os.path.isdir(source):
        raise Refused("source %s does not exist or is not a directory (is the production file system mounted?)"
                      % source)
    if overlaps(source, layout.root):
        raise Refused("source %s and backup root %s overlap; they must be separate trees" % (source, layout.root))
    if require_mountpoint and not is_mountpoint(source):
        raise Refused("source %s is not a mount point: the production file system is not mounted there" % source)
    try:
        with os.scandir(source) as entries:
            source_empty = next(entries, None) is None
    except OSError as exc:
        raise Refused("source %s is not readable: %s" % (source, exc))
    if source_empty and not allow_empty and newest_snapshot:
        with os.scandir(newest_snapshot) as entries:
            if next(entries, None) is not None:
                raise Refused("source %s is empty but the newest snapshot %s is not: refusing to record an empty "
                              "snapshot (failed mount?). Pass --allow-empty-source if the source really is empty."
                              % (source, newest_snapshot))


def ensure_state_dirs(layout, paths=None):
    for path in layout.state_dirs() if paths is None else paths:
        makedirs(path)
