"""Where everything lives on the backup file system.

    <backup-root>/.efs-backup-root                 marker written by `init`; runs refuse a root without it
    <backup-root>/<backup-id>/<interval>.<n>       promoted snapshots, n = 0 newest (the old solution's layout)
    <backup-root>/<backup-id>/.efs-backup/         engine state, never a snapshot:
        lock/                                      the per-backup-id run lock (see lock.py)
        runs/<interval>/                           the in-flight (or interrupted) run of that interval
            run.json  units/  claims/  results/  workers/  tree/   (tree/ is the working copy; units/ holds the
                                                   parts: see parts.py; run.json: state.py)
        spare/<interval>                           the expired snapshot kept to be recycled as the next work tree
        manifests/<interval>.<n>.json              one manifest per promoted snapshot
        journal.json                               the promotion journal while a promotion is in progress
        history/<run-id>.json                      run summaries (successes and failures), backups and restores
        trash/                                     expired trees waiting for lazy deletion
        restores/<run-id>/                         a restore's bookkeeping: run.json  units/  claims/  results/

Restores read snapshots and write only inside the state directory. EC2 workers mount the backup file system
read-only and this directory read-write elsewhere: Layout(..., state_dir=THAT_MOUNT) puts every state path there.
"""

import os
import re

from efs_backup_contract.intervals import INTERVALS
from efs_backup_engine.fsutil import read_json

MARKER = ".efs-backup-root"
STATE = ".efs-backup"
SNAPSHOT_RE = re.compile(r"^(%s)\.(\d+)\Z" % "|".join(INTERVALS))
# The engine's own backup-id rule (up to 128 characters: a directory name on the backup file system).
BACKUP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def snapshot_name(interval, index):
    return "%s.%d" % (interval, index)


def snapshot_time(layout, name):
    """When a snapshot was finished: its manifest's `finished`, else (adopted) the directory's mtime."""
    manifest = read_json(layout.manifest(name))
    if manifest and manifest.get("finished"):
        return manifest["finished"]
    return os.stat(layout.snapshot(name)).st_mtime  # adopted snapshot: the old scripts touched .0


class Layout:
    def __init__(self, backup_root, backup_id, state_dir=None):
        self.root = os.path.abspath(backup_root)
        self.backup_id = backup_id
        self.id_dir = os.path.join(self.root, backup_id)
        self.default_state = os.path.join(self.id_dir, STATE)
        self.state = os.path.abspath(state_dir) if state_dir else self.default_state
        self.marker = os.path.join(self.root, MARKER)
        self.lock_dir = os.path.join(self.state, "lock")
        self.broken_locks = os.path.join(self.state, "lock-broken")
        self.manifests = os.path.join(self.state, "manifests")
        self.history = os.path.join(self.state, "history")
        self.trash = os.path.join(self.state, "trash")
        self.journal = os.path.join(self.state, "journal.json")

    def restore_dir(self, run_id):
        return os.path.join(self.state, "restores", run_id)

    def run_dir(self, interval):
        return os.path.join(self.state, "runs", interval)

    def work_tree(self, interval):
        return os.path.join(self.run_dir(interval), "tree")

    def spare(self, interval):
        return os.path.join(self.state, "spare", interval)

    def snapshot(self, name):
        return os.path.join(self.id_dir, name)

    def manifest(self, name):
        return os.path.join(self.manifests, name + ".json")

    def state_dirs(self):
        return [self.state, self.manifests, self.history, self.trash, self.broken_locks,
                os.path.join(self.state, "runs"), os.path.join(self.state, "spare")]

    def snapshots(self, interval=None):
        """Promoted snapshots as (interval, index, name), newest first within an interval."""
        found = []
        try:
            names = os.listdir(self.id_dir)
        except FileNotFoundError:
            return found
        for name in names:
            match = SNAPSHOT_RE.match(name)
            if not match or (interval and match.group(1) != interval):
                continue
            if os.path.isdir(os.path.join(self.id_dir, name)) and not os.path.islink(os.path.join(self.id_dir, name)):
                found.append((match.group(1), int(match.group(2)), name))
        found.sort(key=lambda item: (INTERVALS.index(item[0]), item[1]))
        return found

    def spares(self):
        spare_root = os.path.join(self.state, "spare")
        try:
            return [os.path.join(spare_root, name) for name in os.listdir(spare_root)]
        except FileNotFoundError:
            return []
