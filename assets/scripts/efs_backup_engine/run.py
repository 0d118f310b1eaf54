"""The three steps of a backup run, shared by the local runner and the EC2 workers.

    prepare   (once)        checks, takes the lock, completes any interrupted promotion, sets up or resumes
                            the work tree (recycling the spare) and the part plan
    work      (N workers)   claims parts until none is left, syncing each into the work tree
    finalize  (once)        checks every part succeeded, writes the manifest, promotes and rotates (journal),
                            records the run summary, releases the lock, then deletes expired trees lazily

A failed or interrupted run promotes nothing and leaves the work tree and the finished parts in place: the
next run of the same interval resumes, redoing only the parts that failed or never finished.

Restores (restore.py) run the same way: both plan, claim and process parts through parts.py, keep their typed run
state in state.py (and join a prepared run through state.join_run) and build their summaries with summary.outcome.
"""

import dataclasses
import os
import time

from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import EFS_HARD_LINK_LIMIT, MAX_LINKED_TREES
from efs_backup_engine import preflight, promotion, summary as summaries
from efs_backup_engine.errors import EngineError, Refused
from efs_backup_engine.fsutil import makedirs, read_json, write_json_atomic
from efs_backup_engine.layout import Layout, snapshot_name, snapshot_time
from efs_backup_engine.lock import RunLock
from efs_backup_engine.parts import COUNT_CAP, PartStore, count_entries, part_budget, process_part, work_parts
from efs_backup_engine.state import BackupRun, join_run, new_run_id, run_file
from efs_backup_engine.summary import mark_aborted, note_crashed_workers
from efs_backup_engine.sync import sync_part

ROOT_PART = {"path": "", "depth": 0, "estimate": None}


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


def prepare(request):
    """Set up (or join, given the same explicit run_id) the run a BackupRequest asks for; returns its BackupRun.
    request.step: prepare runs as a step of its own and exits; its heartbeat goes with it, and the lock lives on
    its age (--stale-after) until the workers beat."""
    preflight.check_names(request.backup_id, request.interval, request.retain)
    layout = Layout(request.backup_root, request.backup_id)
    preflight.check_backup_root(layout)
    run_id = request.run_id or new_run_id()
    source = os.path.abspath(request.source)
    dests = link_dests(layout, request.interval) if os.path.isdir(layout.id_dir) else []
    # Refuse before the lock is even taken: a wrong source must not touch anything.
    _check_source(layout, request, source, dests)
    preflight.ensure_state_dirs(layout)
    lock = RunLock(layout, **({"stale_after": request.stale_after} if request.stale_after else {}))
    if not lock.acquire(run_id, request.interval, join=request.run_id is not None):
        return join_run(run_file(layout.run_dir(request.interval)), run_id, lock, BackupRun)
    try:
        recovered = promotion.recover(layout)
        dests = link_dests(layout, request.interval)
        _check_source(layout, request, source, dests)
        _check_tree_budget(layout, request.interval, request.retain)
        run = dataclasses.replace(_setup_run(layout, request, source, run_id, dests), recovered_promotion=recovered)
        run.save(run_file(layout.run_dir(request.interval)))
        if request.step:
            lock.end_beat()
        else:
            lock.stop_beating()  # the caller beats from here on (cli backup: Heartbeat around the workers)
        return run
    except BaseException:
        lock.release(run_id)
        raise


def _check_source(layout, request, source, dests):
    preflight.check_source(source, layout, dests[0] if dests else None, request.require_mountpoint,
                           request.allow_empty_source)


def _setup_run(layout, request, source, run_id, dests):
    """The run's record: the interrupted run of this interval resumed (its work tree and finished parts kept
    while it is younger than request.resume_max_age and of the same source), or a new one on a fresh work tree."""
    run_dir = layout.run_dir(request.interval)
    now = time.time()
    previous = BackupRun.load(run_file(run_dir))
    fresh = BackupRun(run_id=run_id, backup_id=layout.backup_id, interval=request.interval, retain=request.retain,
                      source=source, workers=request.workers, link_dests=dests, started=now, attempt_started=now,
                      part_files=_part_budget(layout, source, dests, request.workers, request.part_files),
                      streams_per_worker=request.streams_per_worker)
    if previous is not None and os.path.isdir(layout.work_tree(request.interval)):
        return _resume(run_dir, previous, fresh, request.resume_max_age)
    tree_base = _new_work_tree(layout, request.interval)
    store = PartStore(run_dir)
    store.create()
    store.reset(keep_finished=False)
    store.add(ROOT_PART)
    return dataclasses.replace(fresh, tree_base=tree_base)


def _resume(run_dir, previous, fresh, resume_max_age):
    """The next attempt of an interrupted run: its finished parts are kept (failed ones redone) if it started
    less than resume_max_age ago from the same source; otherwise the work tree is reused but every part redone."""
    keep = fresh.started - previous.started < resume_max_age and previous.source == fresh.source
    store = PartStore(run_dir)
    store.create()
    kept = store.reset(keep_finished=keep)
    if not store.parts():
        store.add(ROOT_PART)
    return dataclasses.replace(
        previous, run_id=fresh.run_id, backup_id=fresh.backup_id, interval=fresh.interval, retain=fresh.retain,
        source=fresh.source, workers=fresh.workers, streams_per_worker=fresh.streams_per_worker,
        link_dests=fresh.link_dests, part_files=fresh.part_files,
        attempt_started=fresh.attempt_started, attempt=previous.attempt + 1,
        started=previous.started if keep else fresh.started, resumed_from=previous.run_id, resumed_parts=kept,
        tree_base="resumed")


def _new_work_tree(layout, interval):
    """Make the interval's work tree (the spare recycled if there is one); how it was made."""
    makedirs(layout.run_dir(interval))
    tree = layout.work_tree(interval)
    if os.path.isdir(tree):
        return "orphaned work tree"  # killed between recycling the spare and writing run.json
    if os.path.isdir(layout.spare(interval)):
        os.rename(layout.spare(interval), tree)
        return "recycled spare"
    os.mkdir(tree)
    return "new"


def load_run(layout, interval):
    run = BackupRun.load(run_file(layout.run_dir(interval)))
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
    source = os.path.abspath(source or run.source)
    if require_mountpoint and not preflight.is_mountpoint(source):
        raise Refused("source %s is not a mount point: the production file system is not mounted there" % source)
    lock = RunLock(layout, **({"stale_after": stale_after} if stale_after else {}))
    lock.check(run.run_id)
    store = PartStore(layout.run_dir(interval))
    tree = layout.work_tree(interval)
    stamp = {"worker": worker_id, "run_id": run.run_id, "attempt": run.attempt}

    def sync(rel, names, recursive):
        return sync_part(source, tree, rel, names, recursive, run.link_dests)

    def process(part_id, spec):
        return process_part(store, part_id, spec, source, run.part_files, sync, stamp)

    return work_parts(store, lock, run.run_id, worker_id, process, progress)


def finalize(backup_root, backup_id, interval, run_id=None, verify=None, worker_exits=None):
    """Promote if every part succeeded; otherwise record the failure and keep the work for the next run.

    worker_exits: {worker id: exit code} when the caller knows them. A worker that died (code other than 0, 2
    or 1) is reported; its unfinished parts already fail the run, and if others finished them it is a warning.
    """
    layout = Layout(backup_root, backup_id)
    run = load_run(layout, interval)
    run_id = run_id or run.run_id
    if run.run_id != run_id:
        raise EngineError("the prepared %s run is %s, not %s" % (interval, run.run_id, run_id))
    lock = RunLock(layout)
    lock.check(run_id)
    store = PartStore(layout.run_dir(interval))
    parts, results = store.parts(), store.results()
    result = note_crashed_workers(summaries.build(run.to_json(), parts, results), worker_exits)
    if result["status"] == "failed":
        write_json_atomic(os.path.join(layout.history, run_id + ".json"), result)
        lock.release(run_id)
        return result
    if verify and verify != "none":
        _verify(result, run.source, layout.work_tree(interval), verify, one_part=len(parts) == 1)
    _promote(layout, interval, run, result, parts, results)
    lock.release(run_id)
    _empty_trash_after_promotion(layout, run_id, result)
    return result


def _verify(result, source, tree, checksum, one_part):
    """Compare the work tree with the source before promotion; mismatches make the run a warning."""
    from efs_backup_engine.verify import compare

    report = compare(source, tree, checksum=checksum, hardlinks="tree" if one_part else "directory")
    result["verify"] = report
    if report["mismatches"]:
        result["status"] = "warning"
        result["warnings"] += 1
        result["warning_parts"].append({"path": ".", "messages": ["verify: %d mismatches, first: %s" % (
            report["mismatch_count"], report["mismatches"][0])]})


def _promote(layout, interval, run, result, parts, results):
    """Write the manifest and the summary into the run's directory, then promote the work tree to
    <interval>.0 and rotate, in one journal with the summary's move to history/ and the run directory's to the
    trash (promotion.py: a killed promotion is completed by the next run)."""
    run_id = run.run_id
    result["snapshot"] = snapshot_name(interval, 0)
    run_rel = os.path.relpath(layout.run_dir(interval), layout.id_dir)
    manifest = summaries.manifest(result, parts, results)
    result["snapshot_id"] = manifest["snapshot_id"]
    write_json_atomic(os.path.join(layout.run_dir(interval), "manifest.json"), manifest)
    write_json_atomic(os.path.join(layout.run_dir(interval), "summary.json"), result)
    steps = promotion.plan(layout, interval, run.retain, run_rel)
    steps.append(("rename", os.path.join(run_rel, "summary.json"),
                  os.path.relpath(os.path.join(layout.history, run_id + ".json"), layout.id_dir)))
    steps.append(("rename", run_rel, os.path.relpath(os.path.join(layout.trash, "run-" + run_id), layout.id_dir)))
    promotion.execute(layout, run_id, steps)


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
    run = BackupRun.load(run_file(layout.run_dir(interval)))
    result = None
    if run is not None and run.run_id == run_id:
        store = PartStore(layout.run_dir(interval))
        result = mark_aborted(summaries.build(run.to_json(), store.parts(), store.results()), reason)
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
        run = BackupRun.load(run_file(layout.run_dir(interval)))
        if run:
            in_flight.append({"interval": interval, "run_id": run.run_id, "attempt": run.attempt})
    return {"backup_id": backup_id, "snapshots": rows,
            "lock": {"held": exists, "alive": alive, "owner": owner, "detail": reason},
            "interrupted_promotion": os.path.exists(layout.journal), "unfinished_runs": in_flight}
