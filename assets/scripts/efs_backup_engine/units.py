"""Dynamic, balanced partitioning of the tree into parts ("units") that workers claim atomically on the backup FS.

A unit is either a directory (`{"path": P}`) or a batch of sibling subdirectories (`{"path": P, "names": [...]}`),
paths relative to the source root. A run starts with one unit: the root directory. A worker that claims a
directory counts the entries below it from listings (no per-file stat) up to a budget. Within the budget, the
directory is synced recursively in one rsync. Over it, the unit is *split*: its own entries are synced alone
("level" mode), and its subdirectories become new units: each one over the budget on its own (to be split again
when claimed), the others grouped into batches of up to the budget, so a tree of many small directories costs a
few rsync runs, not one per directory. Idle workers claim new units at once, largest first, so a worker that
finishes early takes more work and one huge directory is shared by every worker.

State, under runs/<interval>/ on the backup file system:
    units/<id>.json     the unit; a split rewrites it atomically with the list of its children (the commit point),
                        then creates the children (idempotent: replaying a split after a kill creates the same ones)
    claims/<id>         published with link() by the one worker that wins the unit
    results/<id>.json   the unit's outcome, written atomically when it ends
A unit is finished when it has a result. Resuming a run clears the claims of unfinished or failed units.
"""

import hashlib
import os

from efs_backup_engine.fsutil import create_exclusive, makedirs, read_json, write_json_atomic


def unit_id(spec):
    key = os.fsencode(spec["path"])
    if spec.get("names") is not None:
        key += b"\0" + b"\0".join(os.fsencode(name) for name in spec["names"])
    return hashlib.sha1(key).hexdigest()[:24]


def describe(spec):
    """A unit's name in summaries: "." for the root, the directory, or a batch as "dir/{a,b,c}"."""
    rel, names = spec["path"], spec.get("names")
    if names is None:
        return rel or "."
    prefix = rel + "/" if rel else ""
    if len(names) == 1:
        return prefix + names[0]
    shown = ",".join(names[:5]) + (",...+%d" % (len(names) - 5) if len(names) > 5 else "")
    return prefix + "{" + shown + "}"


def plan_children(directory, rel, depth, budget):
    """The units that replace a split directory's subdirectories: big ones alone, small ones batched."""
    children, batch, batch_size = [], [], 0

    def close_batch():
        if batch:
            children.append({"path": rel, "names": list(batch), "depth": depth + 1, "estimate": batch_size})

    for name in sorted(subdirectories(directory)):
        size = count_entries(os.path.join(directory, name), budget) + 1
        if size > budget:
            children.append({"path": os.path.join(rel, name) if rel else name, "depth": depth + 1,
                             "estimate": None})
            continue
        if batch_size + size > budget:
            close_batch()
            batch, batch_size = [], 0
        batch.append(name)
        batch_size += size
    close_batch()
    return children


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
    """The run's parts on the backup file system. Unit, claim and result files never change once published (a
    split rewrites its unit file, but only the worker holding the claim reads that), so each process reads every
    file once: a claim attempt or a wait costs three directory listings, whatever the number of parts and
    workers, plus one read per file it has not seen yet."""

    def __init__(self, run_dir):
        self.units_dir = os.path.join(run_dir, "units")
        self.claims_dir = os.path.join(run_dir, "claims")
        self.results_dir = os.path.join(run_dir, "results")
        self._seen = {"units": {}, "claims": {}, "results": {}}

    def create(self):
        for path in (self.units_dir, self.claims_dir, self.results_dir):
            makedirs(path)

    def add(self, spec):
        uid = unit_id(spec)
        create_exclusive(os.path.join(self.units_dir, uid + ".json"), spec)
        return uid

    def _files(self, kind, directory, keep, default=None):
        """{name: parsed content} of the directory's published files (names for which keep(name) holds), read
        once per process. An unreadable file (an unsynced one a machine crash left empty) is tried again next
        time; a file that disappeared (a reset) is dropped."""
        cache = self._seen[kind]
        names = {name for name in os.listdir(directory) if keep(name)}
        for name in list(cache):
            if name not in names:
                del cache[name]
        for name in names - set(cache):
            content = read_json(os.path.join(directory, name), default, corrupt_ok=True)
            if content is not None:
                cache[name] = content
        return cache

    def units(self):
        """Every unit: the files, plus the children named in split records (which are written durably, so a
        child whose own unsynced file was lost in a machine crash is still known and gets done)."""
        files = self._files("units", self.units_dir, lambda name: name.endswith(".json"))
        found = {name[:-5]: spec for name, spec in files.items()}
        for spec in list(found.values()):
            for child in spec.get("children") or ():
                found.setdefault(unit_id(child), child)
        return found

    def claims(self):
        files = self._files("claims", self.claims_dir, lambda name: ".tmp-" not in name, default={})
        return {name: content or {} for name, content in files.items()}

    def results(self):
        """Finished units' outcomes (an unreadable result counts as not finished: the part is redone)."""
        files = self._files("results", self.results_dir, lambda name: name.endswith(".json"))
        return {name[:-5]: result for name, result in files.items()}

    def claim_next(self, worker):
        """Claim the largest unclaimed unit (unknown sizes first: they are the big ones). None if none is free.

        Largest-first keeps the workers' shares even: what is left at the end is small.
        """
        units = self.units()
        claimed = set(os.listdir(self.claims_dir))

        def order(uid):
            estimate = units[uid].get("estimate")
            return (estimate is not None, -(estimate or 0), units[uid]["depth"], units[uid]["path"], uid)

        for uid in sorted((uid for uid in units if uid not in claimed), key=order):
            if create_exclusive(os.path.join(self.claims_dir, uid), worker):
                # as it is now: a split by an earlier, killed attempt rewrote it (replayed as recorded)
                spec = read_json(os.path.join(self.units_dir, uid + ".json"), corrupt_ok=True)
                return uid, spec or units[uid]
        return None

    def split(self, uid, spec, children):
        """Commit a split (one atomic write of the unit with its children), then create the children."""
        if not spec.get("split"):
            spec = dict(spec, split=True, children=children)
            write_json_atomic(os.path.join(self.units_dir, uid + ".json"), spec)  # durable: names the children
            self._seen["units"][uid + ".json"] = spec
        for child in spec["children"]:
            self.add(child)
        return spec

    def record(self, uid, result):
        write_json_atomic(os.path.join(self.results_dir, uid + ".json"), result, durable=False)

    def reset(self, keep_finished):
        """Make unfinished units (and failed ones) claimable again; with keep_finished=False, start over."""
        self._seen = {"units": {}, "claims": {}, "results": {}}
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
