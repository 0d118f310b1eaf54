"""The three steps of a backup run, shared by the local runner and the EC2 workers.

    prepare   (once)        checks, takes the lock, completes any interrupted promotion, sets up or resumes
                            the work tree (recycling the spare) and the part plan
    work      (N workers)   claims parts until none is left, syncing each into the work tree
    finalize  (once)        checks every part succeeded, writes the manifest, promotes and rotates (journal),
                            records the run summary, releases the lock, then deletes expired trees lazily

A failed or interrupted run promotes nothing and leaves the work tree and the finished parts in place: the
next run of the same interval resumes, redoing only the parts that failed or never finished.

Restores (restore.py) run the same way: both plan, claim and process parts through parts.py, join a prepared run
through join_run and build their summaries with summary.outcome.
"""

import os
import time
import uuid

from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import EFS_HARD_LINK_LIMIT, MAX_LINKED_TREES
from efs_backup_engine import preflight, promotion, summary as summaries
from efs_backup_engine.errors import EngineError, Refused
from efs_backup_engine.fsutil import makedirs, read_json, write_json_atomic
from efs_backup_engine.layout import Layout, snapshot_name, snapshot_time
from efs_backup_engine.lock import RunLock, heartbeat_alive
from efs_backup_engine.parts import (COUNT_CAP, POLL_SECONDS, PartStore, count_entries, part_budget, process_part,
                                    work_parts)
from efs_backup_engine.summary import mark_aborted, note_crashed_workers
from efs_backup_engine.sync import sync_part

DEFAULT_RESUME_MAX_AGE = 24 * 3600
ROOT_PART = {"path": "", "depth": 0, "estimate": None}


def new_run_id():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def link_dests(layout, interval):
    """Newest snapshot of this interval, then the newest of any interval (so intervals share files)."""
    newest_per_interval = {}
    for iv, _index, name in layout.snapshots():  # sorted by interval, then index
        newest_per_interval.setdefault(iv, name)
    dests = []
    if interval in newest_per_interval:
        dests.append(newest_per_interval[interval])
    if newest_per_interval:
        overall = max(newest_per_interval.values(), key=lambda name: snapshot_time(layout, name))
        if overall not in dests:
            dests.append(overall)
    return [layout.snapshot(name) for name in dests]


def _part_budget(layout, source, dests, workers, override):
    """A backup's tree size comes from the newest snapshot's manifest, or on a first run from counting the
    source (listings only, up to parts.COUNT_CAP entries)."""
    def count_files():
        for dest in dests:
            manifest = read_json(layout.manifest(os.path.basename(dest)))
            if manifest:
                return manifest["totals"]["files_scanned"]
        return count_entries(source, COUNT_CAP)

    return part_budget(workers, override, count_files)


def _check_tree_budget(layout, interval, retain):
    """Every kept tree (snapshots, spares, work trees) adds a hard link to each unchanged file; EFS stops at
    EFS_HARD_LINK_LIMIT links per file, so at most MAX_LINKED_TREES trees are kept."""
    others = [name for iv, _i, name in layout.snapshots() if iv != interval]
    spares = [path for path in layout.spares() if os.path.basename(path) != interval]
    unfinished = [iv for iv in INTERVALS if iv != interval and os.path.isdir(layout.work_tree(iv))]
    trees = len(others) + len(spares) + len(unfinished) + retain + 1
    if trees > MAX_LINKED_TREES:
        raise Refused("keeping %d snapshots of %s plus the other intervals' %d trees would give unchanged files %d "
                      "hard links (EFS allows %d; the engine keeps at most %d trees per backup-id). Lower the "
                      "retention." % (retain, interval, trees - retain - 1, trees, EFS_HARD_LINK_LIMIT,
                                      MAX_LINKED_TREES))


def prepare(source, backup_root, backup_id, interval, retain, workers=1, run_id=None,
            require_mountpoint=False, allow_empty_source=False, stale_after=None, unit_files=None,
            resume_max_age=DEFAULT_RESUME_MAX_AGE, step=False):
    """Set up (or join, given the same explicit run_id) a run. step=True: prepare runs as a step of its own and
    exits; its heartbeat goes with it, and the lock lives on its age (--stale-after) until the workers beat."""
    preflight.check_names(backup_id, interval, retain)
    layout = Layout(backup_root, backup_id)
    preflight.check_backup_root(layout)
    explicit_run_id = run_id is not None
    run_id = run_id or new_run_id()
    source = os.path.abspath(source)
    dests = link_dests(layout, interval) if os.path.isdir(layout.id_dir) else []
    # Refuse before the lock is even taken: a wrong source must not touch anything.
    preflight.check_source(source, layout, dests[0] if dests else None, require_mountpoint, allow_empty_source)
    preflight.ensure_state_dirs(layout)
    lock = RunLock(layout, **({"stale_after": stale_after} if stale_after else {}))
    if not lock.acquire(run_id, interval, join=explicit_run_id):
        return join_run(os.path.join(layout.run_dir(interval), "run.json"), run_id, lock)
    try:
        recovered = promotion.recover(layout)
        dests = link_dests(layout, interval)
        preflight.check_source(source, layout, dests[0] if dests else None, require_mountpoint, allow_empty_source)
        _check_tree_budget(layout, interval, retain)
        run = _setup_run(layout, interval, retain, source, workers, run_id, dests, unit_files, resume_max_age)
        run["recovered_promotion"] = recovered
        write_json_atomic(os.path.join(layout.run_dir(interval), "run.json"), run)
        if step:
            lock.end_beat()
        else:
            lock.stop_beating()  # the caller beats from here on (cli backup: Heartbeat around the workers)
        return run
    except BaseException:
        lock.release(run_id)
        raise


def join_run(run_file, run_id, lock):
    """Another worker of the same run took the lock first: wait for its run.json, then work on that run.

    There is no fixed deadline: a first run's prepare counts the source (up to parts.COUNT_CAP entries, one
    listing at a time: minutes on a large EFS), so the joiner waits exactly as long as the preparer's heartbeat
    (its lock heartbeat file, beaten every lock.every seconds since it took the lock) stays alive, and fails once
    it is older than lock.join_stall_after (another host) or the preparing process is gone (this host), or the
    lock no longer belongs to the run (the preparer failed and released it).
    """
    preparer = (lock.owner() or {}).get("heartbeat", "")
    waited = time.time()
    while True:
        run = read_json(run_file)
        if run is not None and run["run_id"] == run_id:
            return dict(run, joined=True)
        lock.check(run_id)
        ages = lock.heartbeats() or {}
        if not (preparer in ages and heartbeat_alive(preparer, ages[preparer], lock.join_stall_after)):
            run = read_json(run_file)  # it may have finished (and ended its beat) since the first read
            if run is not None and run["run_id"] == run_id:
                return dict(run, joined=True)
            beat = "%.0f s old" % ages[preparer] if preparer in ages else "gone"
            raise EngineError("run %s: the worker preparing it stopped beating (heartbeat %s %s; limit %.0f s) "
                              "after this worker waited %.0f s for it; the run fails and the next one resumes"
                              % (run_id, preparer or "?", beat, lock.join_stall_after, time.time() - waited))
        time.sleep(POLL_SECONDS)


def _setup_run(layout, interval, retain, source, workers, run_id, dests, unit_files, resume_max_age):
    run_dir = layout.run_dir(interval)
    tree = layout.work_tree(interval)
    store = PartStore(run_dir)
    now = time.time()
    previous = read_json(os.path.join(run_dir, "run.json"))
    base = {"run_id": run_id, "backup_id": layout.backup_id, "interval": interval, "retain": retain,
            "source": source, "workers": workers, "link_dests": dests, "attempt_started": now,
            "unit_files": _part_budget(layout, source, dests, workers, unit_files)}
    if previous is not None and os.path.isdir(tree):
        keep = (now - previous["started"] < resume_max_age and previous["source"] == source)
        store.create()
        kept = store.reset(keep_finished=keep)
        if not store.parts():
            store.add(ROOT_PART)
        return dict(previous, **base, attempt=previous.get("attempt", 1) + 1,
                    started=previous["started"] if keep else now, resumed_from=previous["run_id"],
                    resumed_parts=kept, tree_base="resumed")
    makedirs(run_dir)
    if os.path.isdir(tree):
        tree_base = "orphaned work tree"  # killed between recycling the spare and writing run.json
    elif os.path.isdir(layout.spare(interval)):
        os.rename(layout.spare(interval), tree)
        tree_base = "recycled spare"
    else:
        os.mkdir(tree)
        tree_base = "new"
    store.create()
    store.reset(keep_finished=False)
    store.add(ROOT_PART)
    return dict(base, attempt=1, started=now, tree_base=tree_base)


def load_run(layout, interval):
    run = read_json(os.path.join(layout.run_dir(interval), "run.json"))
    if run is None:
        raise Refused("no prepared %s run for backup-id %r under %s (run prepare first)"
                      % (interval, layout.backup_id, layout.root))
    return run


def work(backup_root, backup_id, interval, worker_id, source=None, require_mountpoint=False,
         stale_after=None, progress=None):
    """Claim and sync parts until none is left. Returns this worker's own results."""
    layout = Layout(backup_root, backup_id)
    preflight.check_backup_root(layout)
    run = load_run(layout, interval)
    source = os.path.abspath(source or run["source"])
    if require_mountpoint and not preflight.is_mountpoint(source):
        raise Refused("source %s is not a mount point: the production file system is not mounted there" % source)
    lock = RunLock(layout, **({"stale_after": stale_after} if stale_after else {}))
    lock.check(run["run_id"])
    store = PartStore(layout.run_dir(interval))
    tree = layout.work_tree(interval)
    stamp = {"worker": worker_id, "run_id": run["run_id"], "attempt": run.get("attempt", 1)}

    def sync(rel, names, recursive):
        return sync_part(source, tree, rel, names, recursive, run["link_dests"])

    def process(part_id, spec):
        return process_part(store, part_id, spec, source, run["unit_files"], sync, stamp)

    return work_parts(store, lock, run["run_id"], worker_id, process, progress)


def finalize(backup_root, backup_id, interval, run_id=None, verify=None, worker_exits=None):
    """Promote if every part succeeded; otherwise record the failure and keep the work for the next run.

    worker_exits: {worker id: exit code} when the caller knows them. A worker that died (code other than 0, 2
    or 1) is reported; its unfinished parts already fail the run, and if others finished them it is a warning.
    """
    layout = Layout(backup_root, backup_id)
    run = load_run(layout, interval)
    run_id = run_id or run["run_id"]
    if run["run_id"] != run_id:
        raise EngineError("the prepared %s run is %s, not %s" % (interval, run["run_id"], run_id))
    lock = RunLock(layout)
    lock.check(run_id)
    store = PartStore(layout.run_dir(interval))
    parts, results = store.parts(), store.results()
    result = note_crashed_workers(summaries.build(run, parts, results), worker_exits)
    if result["status"] == "failed":
        write_json_atomic(os.path.join(layout.history, run_id + ".json"), result)
        lock.release(run_id)
        return result
    if verify and verify != "none":
        from efs_backup_engine.verify import compare

        report = compare(run["source"], layout.work_tree(interval), checksum=verify,
                         hardlinks="tree" if len(parts) == 1 else "directory")
        result["verify"] = report
        if report["mismatches"]:
            result["status"] = "warning"
            result["warnings"] += 1
            result["warning_parts"].append({"path": ".", "messages": ["verify: %d mismatches, first: %s" % (
                report["mismatch_count"], report["mismatches"][0])]})
    result["snapshot"] = snapshot_name(interval, 0)
    run_rel = os.path.relpath(layout.run_dir(interval), layout.id_dir)
    manifest = summaries.manifest(result, parts, results)
    result["snapshot_id"] = manifest["snapshot_id"]
    write_json_atomic(os.path.join(layout.run_dir(interval), "manifest.json"), manifest)
    write_json_atomic(os.path.join(layout.run_dir(interval), "summary.json"), result)
    steps = promotion.plan(layout, interval, run["retain"], run_rel)
    steps.append(("rename", os.path.join(run_rel, "summary.json"),
                  os.path.relpath(os.path.join(layout.history, run_id + ".json"), layout.id_dir)))
    steps.append(("rename", run_rel, os.path.relpath(os.path.join(layout.trash, "run-" + run_id), layout.id_dir)))
    promotion.execute(layout, run_id, steps)
    lock.release(run_id)
    _empty_trash_after_promotion(layout, run_id, result)
    return result


def _empty_trash_after_promotion(layout, run_id, result):
    """Deleting expired trees is lazy and best-effort: the snapshot is promoted, so an error here (EIO on NFS, a
    directory the engine may not open) is a warning on the run, recorded in its history; the next run retries."""
    try:
        promotion.empty_trash(layout)
    except OSError as exc:
        result["warnings"] += 1
        result["warning_parts"].append({"path": "(expiry)", "messages": [
            "expired trees could not be deleted yet (the next run retries): %s: %s" % (type(exc).__name__, exc)]})
        if result["status"] == "success":
            result["status"] = "warning"
        write_json_atomic(os.path.join(layout.history, run_id + ".json"), result)


def abort(backup_root, backup_id, interval, run_id, reason=None):
    """Failure path for orchestrators (timeout, lost worker, launch error): record the run as failed with its
    failed and unfinished parts and the reason, release the lock, keep the work tree and the finished parts so
    the next run resumes. Returns the failure summary (None if run_id was never prepared here)."""
    layout = Layout(backup_root, backup_id)
    lock = RunLock(layout)
    run = read_json(os.path.join(layout.run_dir(interval), "run.json"))
    result = None
    if run is not None and run["run_id"] == run_id:
        store = PartStore(layout.run_dir(interval))
        result = mark_aborted(summaries.build(run, store.parts(), store.results()), reason)
        owner = lock.owner()
        if owner and owner.get("run_id") == run_id:
            write_json_atomic(os.path.join(layout.history, run_id + ".json"), result)
    lock.release(run_id)
    return result


def list_snapshots(backup_root, backup_id):
    layout = Layout(backup_root, backup_id)
    preflight.check_backup_root(layout)
    rows = []
    for interval, index, name in layout.snapshots():
        manifest = read_json(layout.manifest(name))
        row = {"name": name, "interval": interval, "index": index, "path": layout.snapshot(name)}
        if manifest:
            row.update(status=manifest["status"], complete=bool(manifest.get("complete")),
                       started=manifest.get("started_iso"), finished=manifest.get("finished_iso"),
                       files=manifest["totals"]["files_scanned"], bytes=manifest["totals"]["bytes_total"],
                       warnings=manifest.get("warnings", 0), snapshot_id=manifest.get("snapshot_id"),
                       run_id=manifest.get("run_id"))
        else:
            row.update(status="adopted", complete=False,
                       finished=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(os.stat(layout.snapshot(name)).st_mtime)))
        rows.append(row)
    lock = RunLock(layout)
    exists, alive, owner, reason = lock.holder_state() if os.path.isdir(layout.state) else (False, False, None, "")
    in_flight = []
    for interval in INTERVALS:
        run = read_json(os.path.join(layout.run_dir(interval), "run.json"))
        if run:
            in_flight.append({"interval": interval, "run_id": run["run_id"], "attempt": run.get("attempt", 1)})
    return {"backup_id": backup_id, "snapshots": rows,
            "lock": {"held": exists, "alive": alive, "owner": owner, "detail": reason},
            "interrupted_promotion": os.path.exists(layout.journal), "unfinished_runs": in_flight}
