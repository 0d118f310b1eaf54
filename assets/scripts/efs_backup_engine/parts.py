"""Parts: the dynamic, balanced partitioning of a tree that workers claim atomically, and the claim loop every
worker runs. Backups (run.py) and restores (restore.py) share all of it; each brings only what it does to one part.

A part is either a directory (`{"path": P}`) or a batch of sibling subdirectories (`{"path": P, "names": [...]}`),
paths relative to the tree's root. A run starts with one part per chosen path (a backup: the root directory). A
worker that claims a directory counts the entries below it from listings (no per-file stat) up to a budget. Within
the budget, the directory is processed recursively in one rsync. Over it, the part is *split*: its own entries are
processed alone ("level" mode), and its subdirectories become new parts: each one over the budget on its own (to be
split again when claimed), the others grouped into batches of up to the budget, so a tree of many small directories
costs a few rsync runs, not one per directory. Idle workers claim new parts at once, largest first, so a worker
that finishes early takes more work and one huge directory is shared by every worker.

State, in the run's directory (a backup's runs/<interval>/, a restore's restores/<run-id>/). The names on disk
are the engine's first word for a part, "unit": kept (units/, a result's "uid", a run's "unit_files", a summary
worker's "units") so that a run started by an older engine resumes under this one, and readers keep working.
    units/<id>.json     the part; a split rewrites it atomically with the list of its children (the commit point),
                        then creates the children (idempotent: replaying a split after a kill creates the same ones)
    claims/<id>         published with link() by the one worker that wins the part
    results/<id>.json   the part's outcome, written atomically when it ends
A part is finished when it has a result. Resuming a run clears the claims of unfinished or failed parts.
"""

import hashlib
import os
import time

from efs_backup_engine.fsutil import create_exclusive, makedirs, read_json, write_json_atomic
from efs_backup_engine.lock import Heartbeat, heartbeat_name
from efs_backup_engine.parallel import map_in_parallel

# Entries per part: about workers x PARTS_PER_WORKER parts, within these bounds.
MIN_PART_FILES = 200
MAX_PART_FILES = 50000
PARTS_PER_WORKER = 16
UNLIMITED = 2 ** 62
# The most entries a run counts (listings only) to size its parts when nothing recorded says how big the tree is.
COUNT_CAP = 2000000
POLL_SECONDS = 0.5
# A worker with nothing to claim looks again after FIRST_POLL_SECONDS, doubling up to POLL_SECONDS while nothing
# changes: new parts (a split) are seen within a few tens of milliseconds, a long wait costs two looks a second.
FIRST_POLL_SECONDS = 0.05
STATUSES = ("ok", "warning", "failed")  # a part's status, from best to worst


def worst(a, b):
    """The worse of two part statuses."""
    return a if STATUSES.index(a) >= STATUSES.index(b) else b


def part_budget(workers, override, count_files):
    """Entries per part: about workers x 16 parts, so largest-first claiming ends with small parts and even
    shares. One worker gains nothing from parts (each costs two rsync starts), so it gets one. count_files()
    gives the tree's size; it is only called when parts are needed."""
    if override:
        return override
    if workers == 1:
        return UNLIMITED
    return max(MIN_PART_FILES, min(MAX_PART_FILES, count_files() // (workers * PARTS_PER_WORKER)))


def id_of(spec):
    """A part's id: the same spec always has the same id (replayed splits create the same parts)."""
    key = os.fsencode(spec["path"])
    if spec.get("names") is not None:
        key += b"\0" + b"\0".join(os.fsencode(name) for name in spec["names"])
    return hashlib.sha1(key).hexdigest()[:24]


def describe(spec):
    """A part's name in summaries: "." for the root, the directory, or a batch as "dir/{a,b,c}"."""
    rel, names = spec["path"], spec.get("names")
    if names is None:
        return rel or "."
    prefix = rel + "/" if rel else ""
    if len(names) == 1:
        return prefix + names[0]
    shown = ",".join(names[:5]) + (",...+%d" % (len(names) - 5) if len(names) > 5 else "")
    return prefix + "{" + shown + "}"


def plan_children(directory, rel, depth, budget):
    """The parts that replace a split directory's subdirectories: big ones alone, small ones batched."""
    children, batch, batch_size = [], [], 0

    def close_batch():
        if batch:
            children.append({"path": rel, "names": list(batch), "depth": depth + 1, "estimate": batch_size})

    names = sorted(subdirectories(directory))
    sizes = map_in_parallel(lambda name: count_entries(os.path.join(directory, name), budget) + 1, names)
    for name, size in zip(names, sizes):
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


class PartStore:
    """The run's parts on the backup file system. Unit, claim and result files never change once published (a
    split rewrites its part file, but only the worker holding the claim reads that), so each process reads a file
    at most once, and only when it needs what is inside: the claim loop reads the part files (their sizes order
    the claims) but knows results and claims by name alone; a claim's content (its worker's heartbeat) is read
    only when every unfinished part is claimed and the heartbeats are checked, and the results' contents only by
    finalize. A claim attempt or a wait costs at most three directory listings, whatever the number of parts and
    workers, plus one read per part file it has not seen yet; files not seen yet are read several at a time
    (parallel.py)."""

    def __init__(self, run_dir):
        self.parts_dir = os.path.join(run_dir, "units")  # the legacy name on disk
        self.claims_dir = os.path.join(run_dir, "claims")
        self.results_dir = os.path.join(run_dir, "results")
        self._seen = {"parts": {}, "claims": {}, "results": {}}
        self._claimed = set()  # claim names seen: a claim is never removed while the run's attempt goes on

    def create(self):
        for path in (self.parts_dir, self.claims_dir, self.results_dir):
            makedirs(path)

    def add(self, spec):
        part_id = id_of(spec)
        create_exclusive(os.path.join(self.parts_dir, part_id + ".json"), spec)
        return part_id

    def _files(self, kind, directory, keep, default=None):
        """{name: parsed content} of the directory's published files (names for which keep(name) holds), read
        once per process. An unreadable file (an unsynced one a machine crash left empty) is tried again next
        time; a file that disappeared (a reset) is dropped."""
        cache = self._seen[kind]
        names = {name for name in os.listdir(directory) if keep(name)}
        for name in list(cache):
            if name not in names:
                del cache[name]
        unseen = sorted(names - set(cache))
        contents = map_in_parallel(lambda name: read_json(os.path.join(directory, name), default, corrupt_ok=True),
                                   unseen)
        for name, content in zip(unseen, contents):
            if content is not None:
                cache[name] = content
        return cache

    def parts(self):
        """Every part: the files, plus the children named in split records (which are written durably, so a
        child whose own unsynced file was lost in a machine crash is still known and gets done)."""
        files = self._files("parts", self.parts_dir, lambda name: name.endswith(".json"))
        found = {name[:-5]: spec for name, spec in files.items()}
        for spec in list(found.values()):
            for child in spec.get("children") or ():
                found.setdefault(id_of(child), child)
        return found

    def claimed(self):
        """Ids of the claimed parts (names only)."""
        self._claimed = {name for name in os.listdir(self.claims_dir) if ".tmp-" not in name}
        return self._claimed

    def any_unclaimed(self, part_ids):
        """Whether one of these parts has no claim. The claims are listed again only when one of them is not known
        to be claimed: a claim is never removed while the run's attempt goes on (reset() runs before workers do)."""
        if all(part_id in self._claimed for part_id in part_ids):
            return False
        claimed = self.claimed()
        return any(part_id not in claimed for part_id in part_ids)

    def claim_of(self, part_id):
        """A claim's content ({} if unreadable: a crash left it empty), read once."""
        cache = self._seen["claims"]
        if part_id not in cache:
            cache[part_id] = read_json(os.path.join(self.claims_dir, part_id), {}, corrupt_ok=True) or {}
        return cache[part_id]

    def finished(self):
        """Ids of the parts that have a result (names only). A result is published whole (write, then rename), so
        a name seen here is a readable result, except after a machine crash: reset() removes an unreadable one
        before workers run again, and finalize, which reads them all, counts an unreadable one as unfinished."""
        return {name[:-5] for name in os.listdir(self.results_dir) if name.endswith(".json")}

    def results(self):
        """Finished parts' outcomes (an unreadable result counts as not finished: the part is redone)."""
        files = self._files("results", self.results_dir, lambda name: name.endswith(".json"))
        return {name[:-5]: result for name, result in files.items()}

    def claim_next(self, worker):
        """Claim the largest unclaimed part (unknown sizes first: they are the big ones): (id, spec), or None if
        none is free.

        Largest-first keeps the workers' shares even: what is left at the end is small.
        """
        parts = self.parts()
        claimed = self.claimed()

        def order(part_id):
            estimate = parts[part_id].get("estimate")
            return (estimate is not None, -(estimate or 0), parts[part_id]["depth"], parts[part_id]["path"], part_id)

        for part_id in sorted((part_id for part_id in parts if part_id not in claimed), key=order):
            if create_exclusive(os.path.join(self.claims_dir, part_id), worker):
                # as it is now: a split by an earlier, killed attempt rewrote it (replayed as recorded)
                spec = read_json(os.path.join(self.parts_dir, part_id + ".json"), corrupt_ok=True)
                return part_id, spec or parts[part_id]
        return None

    def split(self, part_id, spec, children):
        """Commit a split (one atomic write of the part with its children), then create the children."""
        if not spec.get("split"):
            spec = dict(spec, split=True, children=children)
            write_json_atomic(os.path.join(self.parts_dir, part_id + ".json"), spec)  # durable: names the children
            self._seen["parts"][part_id + ".json"] = spec
        map_in_parallel(self.add, spec["children"])
        return spec

    def record(self, part_id, result):
        write_json_atomic(os.path.join(self.results_dir, part_id + ".json"), result, durable=False)

    def reset(self, keep_finished):
        """Make unfinished parts (and failed ones) claimable again; with keep_finished=False, start over."""
        self._seen = {"parts": {}, "claims": {}, "results": {}}
        self._claimed = set()
        results = self.results()
        for part_id in self.finished() - set(results):  # unreadable (a machine crash): the part is redone
            os.unlink(os.path.join(self.results_dir, part_id + ".json"))
        for part_id in list(results):
            if not keep_finished or results[part_id].get("status") == "failed":
                os.unlink(os.path.join(self.results_dir, part_id + ".json"))
                results.pop(part_id)
        if not keep_finished:
            for name in os.listdir(self.parts_dir):
                os.unlink(os.path.join(self.parts_dir, name))
        for name in os.listdir(self.claims_dir):
            if name not in results:
                os.unlink(os.path.join(self.claims_dir, name))
        return len(results)


# -- the claim loop ----------------------------------------------------------------------------------------
def work_parts(store, lock, run_id, worker_id, process, progress=None):
    """The claim loop every worker runs (backups and restores): claim the largest free part, process(part_id,
    spec) it, repeat; wait while live workers may still split parts; stop when all are done or only dead workers'
    claims are left. Returns this worker's own results."""
    mine = []
    waiting = Waiting(lock)
    with Heartbeat(lock, run_id):
        while True:
            lock.check(run_id)
            claimed = store.claim_next({"worker": worker_id, "heartbeat": heartbeat_name()})
            if claimed:
                result = process(*claimed)
                mine.append(result)
                if progress:
                    progress(result)
                waiting.reset()
                continue
            state = remaining_work(store, lock, waiting)
            if state == "free":
                continue
            if state != "wait":
                return mine
            waiting.sleep()


class Waiting:
    """How a worker with nothing to claim waits: the pause between looks (FIRST_POLL_SECONDS, doubling up to
    POLL_SECONDS, back to the first after a change) and when the claimers' heartbeats are due to be checked (at
    once, then once per heartbeat period: a heartbeat file changes no faster, and checking costs a clock probe and
    a stat per worker)."""

    def __init__(self, lock):
        self.lock = lock
        self.pause = FIRST_POLL_SECONDS
        self.checked_at = None
        self.seen = None

    def reset(self):
        self.pause = FIRST_POLL_SECONDS

    def observe(self, state):
        """Note what the last look saw (a tuple that changes when parts are added or finished)."""
        if state != self.seen:
            self.seen = state
            self.reset()

    def heartbeats_due(self):
        now = time.monotonic()
        if self.checked_at is None or now - self.checked_at >= self.lock.every:
            self.checked_at = now
            return True
        return False

    def sleep(self):
        time.sleep(self.pause)
        self.pause = min(POLL_SECONDS, self.pause * 2)


def process_part(store, part_id, spec, root, budget, sync, stamp, split_first=True):
    """Process one claimed part: split it if its directory (below root, the tree the parts are planned from) is
    over budget, sync(rel, names, recursive) it and record the result, stamped with `stamp` (worker, run_id,
    attempt).

    split_first (backups): the children are published before the level is synced, so idle workers start on them
    at once. Restores publish them after: the level pass then sees (and reports) the target's subdirectories as
    they were before the run, and no child part can create one first.
    """
    rel, names = spec["path"], spec.get("names")
    children = _split_plan(spec, os.path.join(root, rel) if rel else root, budget)
    recursive = children is None
    if children is not None and split_first:
        spec = store.split(part_id, spec, children)
    try:
        result = sync(rel, names, recursive)
    except Exception as exc:  # noqa: BLE001 - any failure of one part is recorded, never a silent worker death
        result = {"status": "failed", "messages": ["%s: %s" % (type(exc).__name__, exc)], "seconds": 0.0}
    if children is not None and not split_first:
        spec = store.split(part_id, spec, children)
    result.update(stamp, uid=part_id, path=describe(spec), mode="tree" if recursive else "level")
    store.record(part_id, result)
    return result


def _split_plan(spec, directory, budget):
    """The children of a directory part that is over budget (replayed as recorded if an earlier, killed attempt
    split it), or None: the part is processed recursively. An unlimited budget (one worker) is never exceeded:
    nothing is counted (a listing of the whole tree, about 7% of a one-worker incremental run at 100,000 files)."""
    if spec.get("names") is not None:
        return None
    if spec.get("split") or (budget < UNLIMITED and count_entries(directory, budget) > budget
                             and subdirectories(directory)):
        return spec.get("children") or plan_children(directory, spec["path"], spec["depth"], budget)
    return None


def remaining_work(store, lock, waiting=None):
    """"done" (every part has a result), "free" (an unclaimed part exists), "wait" (a live worker still has a
    part: it may split it into new parts), or "orphaned" (the rest is claimed by dead workers; the run fails and
    the next one redoes those parts).

    Read order matters: results, then parts, then claims. A worker adds a part's children before it records the
    part's result, so whoever sees the result also sees the children. Claims are listed again only when an
    unfinished part is not known to be claimed (a claim is never removed during an attempt). With `waiting` (the
    claim loop), the heartbeats are checked only when due (Waiting): until then the rest counts as "wait".
    """
    finished = store.finished()
    parts = store.parts()
    unfinished = [part_id for part_id in parts if part_id not in finished]
    if not unfinished:
        return "done"
    if waiting is not None:
        waiting.observe((len(parts), len(unfinished)))
    if store.any_unclaimed(unfinished):
        return "free"
    if waiting is not None and not waiting.heartbeats_due():
        return "wait"
    ages = lock.heartbeats()
    if any(lock.beating(store.claim_of(part_id).get("heartbeat", ""), ages) for part_id in unfinished):
        return "wait"
    return "orphaned"
