"""Dynamic, balanced partitioning of the tree into units that workers claim atomically on the backup FS.

A unit is a directory path relative to the source root. A run starts with one unit: the root. A worker that
claims a unit counts the entries below it (directory listings only, no per-file stat) up to a budget: if the
subtree is within the budget, the worker syncs it recursively; if not, it adds one new unit per subdirectory
and syncs just the directory's own entries ("level" mode). Idle workers claim the new units at once, so a
worker that finishes early takes more work, and one huge top-level directory is shared by every worker.

State, under runs/<interval>/ on the backup file system:
    units/<id>.json     {"path": ..., "depth": n}, created with O_EXCL (splitting twice is harmless)
    claims/<id>         created with O_EXCL by the one worker that wins the unit
    results/<id>.json   the unit's outcome, written atomically when it ends
A unit is finished when it has a result. Resuming a run clears the claims of unfinished or failed units.
"""

import hashlib
import os

from efs_backup_engine.fsutil import create_exclusive, makedirs, read_json, write_json_atomic


def unit_id(path):
    return hashlib.sha1(os.fsencode(path)).hexdigest()[:24]


def count_entries(directory, budget):
    """Count entries below directory from listings only (no per-file stat); stops once past budget."""
    count = 0
    stack = [directory]
    while stack and count <= budget:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    count += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            pass  # unreadable: rsync reports it
    return count


def subdirectories(directory):
    """Names of the directory's own subdirectories (not following symlinks); [] if unreadable."""
    try:
        with os.scandir(directory) as entries:
            return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


class UnitStore:
    def __init__(self, run_dir):
        self.units_dir = os.path.join(run_dir, "units")
        self.claims_dir = os.path.join(run_dir, "claims")
        self.results_dir = os.path.join(run_dir, "results")

    def create(self):
        for path in (self.units_dir, self.claims_dir, self.results_dir):
            makedirs(path)

    def add(self, path, depth):
        uid = unit_id(path)
        create_exclusive(os.path.join(self.units_dir, uid + ".json"), {"path": path, "depth": depth})
        return uid

    def units(self):
        found = {}
        for name in os.listdir(self.units_dir):
            if name.endswith(".json"):
                spec = read_json(os.path.join(self.units_dir, name))
                if spec is not None:
                    found[name[:-5]] = spec
        return found

    def claims(self):
        claims = {}
        for name in os.listdir(self.claims_dir):
            if ".tmp-" not in name:
                claims[name] = read_json(os.path.join(self.claims_dir, name), {}) or {}
        return claims

    def results(self):
        results = {}
        for name in os.listdir(self.results_dir):
            if name.endswith(".json"):
                result = read_json(os.path.join(self.results_dir, name))
                if result is not None:
                    results[name[:-5]] = result
        return results

    def claim_next(self, worker):
        """Claim the shallowest unclaimed unit (big ones first balances best). None if nothing is free."""
        units = self.units()
        claimed = set(os.listdir(self.claims_dir))
        free = sorted((spec["depth"], spec["path"], uid) for uid, spec in units.items() if uid not in claimed)
        for _depth, _path, uid in free:
            if create_exclusive(os.path.join(self.claims_dir, uid), worker):
                return uid, units[uid]
        return None

    def has_children(self, path):
        return any(os.path.dirname(spec["path"]) == path and spec["path"] != path for spec in self.units().values())

    def mark_split(self, uid, spec):
        """Remember that this unit was split, so a resumed run never syncs it recursively again."""
        write_json_atomic(os.path.join(self.units_dir, uid + ".json"), dict(spec, split=True))

    def record(self, uid, result):
        write_json_atomic(os.path.join(self.results_dir, uid + ".json"), result)

    def reset(self, keep_finished):
        """Make unfinished units (and failed ones) claimable again; with keep_finished=False, start over."""
        results = self.results()
        for uid in list(results):
            if not keep_finished or results[uid].get("status") == "failed":
                os.unlink(os.path.join(self.results_dir, uid + ".json"))
                results.pop(uid)
        if not keep_finished:
            for name in os.listdir(self.units_dir):
                os.unlink(os.path.join(self.units_dir, name))
        for name in os.listdir(self.claims_dir):
            if name not in results:
                os.unlink(os.path.join(self.claims_dir, name))
        return len(results)
