"""Restores: copy a snapshot, or chosen paths of it, back into a target directory; safely and in parallel.

    restore-prepare   (every worker calls it with the run id; the first sets the run up, the others join)
                      checks, then the backup-id's lock (the one backups take), then the snapshot is resolved
                      (names shift when a backup promotes, so only under the lock), then restores/<run-id>/
    restore-work      (N workers) claims parts exactly as a backup does (parts.py) and restores each one
    restore-finalize  (once) records the summary ("kind": "restore") in history/<run-id>.json, releases the lock
    restore-abort     failure path: records a failed summary and releases the lock
finalize and abort only read and write the state directory (they may run where the target is not mounted); the
worker that sees the last part finished sets the created parents' times and removes the run's temp dir.

Nothing is written under the backup root except through the state directory (Layout's state_dir): the EC2
workers mount the backup file system read-only and only the backup-id's state directory read-write.

Safe mode (the default) never deletes anything on the target and never replaces a target entry that is newer
(mtime, to the nanosecond) than the snapshot's copy, nor a target directory where the snapshot has a file
("skip_conflict"). Identical files are skipped; older or different ones are overwritten with the snapshot's
data and metadata. Mirror mode (--mirror) makes each chosen path exactly the snapshot's: extras inside the chosen
paths are deleted and newer files overwritten; nothing outside the chosen paths is touched. A dry run changes
nothing and reports the same plan a real run reports for what it did.

Parts are planned and claimed as in a backup (parts.process_part), except that a split directory publishes its
children only after its own level is restored: the plan then reports each subdirectory as the target had it.

How one part is restored (restore_part):
1. the part's directory on the target is checked component by component without following symlinks: a
   component above the chosen path that is not a directory fails the part (the engine never writes through or
   replaces anything outside the chosen paths); inside them, a non-directory where the snapshot has a directory
   is an entry like any other (newer: skipped; else replaced), so rsync is never handed a path through a symlink;
2. a dry run (`rsync -n -i`, with --delete in mirror mode) lists every entry that differs; the engine sorts each
   into create / overwrite / metadata / delete / skip_newer / skip_conflict by comparing the two entries itself
   (rsync's --update compares whole seconds, so it cannot be the rule);
3. unless this is a dry run: mirror-mode deletions and type replacements are done by the engine (unlink, never
   following a symlink), in safe mode every file about to be written is checked once more (one written on the
   target since the scan is newer now: kept), and one rsync transfers exactly the listed names (run_listed;
   the part's own directory gets its attributes from the engine last), writing its
   temporary files to <target>/.efs-backup-restore.tmp/<run-id>/ and renaming them into place, so a killed run
   leaves no half-written file under a real name and the next restore clears what a killed one left there.
"""

import dataclasses
import os
import stat
import time

from efs_backup_contract import times
from efs_backup_engine import preflight, safefs, summary as summaries
from efs_backup_engine.errors import EngineError, Refused
from efs_backup_engine.fsutil import create_exclusive, fs_now, makedirs, read_json, remove_tree, write_json_atomic
from efs_backup_engine.itemize import parse, parse_stats
from efs_backup_engine.layout import SNAPSHOT_RE, Layout, snapshot_time
from efs_backup_engine.lock import RunLock
from efs_backup_engine.parts import (COUNT_CAP, PartStore, count_entries, part_budget, process_part, work_parts,
                                    worst)
from efs_backup_engine.rsync import RSYNC_BASE, classify, fd_path, recursion, run_listed, run_rsync
from efs_backup_engine.safefs import ancestors
from efs_backup_engine.state import RestoreRun, join_run, new_run_id, run_file
from efs_backup_engine.summary import mark_aborted, note_crashed_workers

TEMP_NAME = ".efs-backup-restore.tmp"
SAMPLE_LIMIT = 20
# create/overwrite/delete/skip_newer are the contract; metadata (same content, attributes restored) and
# skip_conflict (safe mode: a directory on the target where the snapshot has a non-directory) complete it.
CATEGORIES = ("create", "overwrite", "delete", "skip_newer", "skip_conflict", "metadata")
TOTALS = ("files_scanned", "files_transferred", "bytes_transferred")
# What a joining worker must have asked for too. The target is compared by its path inside its file system: each
# EC2 worker mounts the target at its own mount point.
OPTIONS = ("target_in_mount", "paths", "mode", "dry_run")


def parse_time(text):
    """An operator's ISO 8601 time with Z or an offset -> epoch seconds (efs_backup_contract.times: the CLI parses
    it the same way). Raises ValueError for anything else, naive times included (they are ambiguous here)."""
    return times.parse_time(text)


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


# -- choosing the snapshot ---------------------------------------------------------------------------------
def resolve_snapshot(layout, selector=None, at=None):
    """(name, manifest) of the snapshot to restore: INTERVAL.N, latest, id:SNAPSHOT_ID or the newest finished at
    or before `at` (epoch seconds, compared to the second). Refuses snapshots without a complete manifest."""
    names = [name for _interval, _index, name in layout.snapshots()]
    if not names:
        raise Refused("backup-id %r has no snapshot under %s: nothing to restore" % (layout.backup_id, layout.id_dir))
    if at is not None or selector == "latest":
        timed = sorted((snapshot_time(layout, name), name) for name in names)
        if at is not None:
            timed = [(finished, name) for finished, name in timed if int(finished) <= at]
            if not timed:
                raise Refused("--at %s is earlier than every snapshot of %r (the oldest finished %s)"
                              % (_iso(at), layout.backup_id,
                                 _iso(min(snapshot_time(layout, name) for name in names))))
        name = timed[-1][1]
    elif selector.startswith("id:"):
        wanted = selector[3:]
        matches = [name for name in names
                   if (read_json(layout.manifest(name), corrupt_ok=True) or {}).get("snapshot_id") == wanted]
        if not matches:
            raise Refused("no snapshot of %r has snapshot id %s (expired, or of another backup-id?); `list --json` "
                          "shows each snapshot's id" % (layout.backup_id, wanted))
        name = matches[0]
    elif not SNAPSHOT_RE.match(selector):
        raise Refused("--snapshot %r: expected INTERVAL.N (e.g. daily.3), latest or id:SNAPSHOT_ID" % selector)
    elif selector not in names:
        raise Refused("no snapshot %s of %r under %s (`list` shows them)" % (selector, layout.backup_id, layout.id_dir))
    else:
        name = selector
    manifest = read_json(layout.manifest(name), corrupt_ok=True)
    if not manifest or manifest.get("complete") is not True:
        why = ("it has no manifest (adopted from the old solution's layout, or its manifest is lost)" if not manifest
               else "its manifest does not mark it complete")
        raise Refused("snapshot %s is not restored by the engine: %s, so nothing proves it is a complete copy. If you "
                      "really must, copy from it by hand without deleting anything, e.g. `rsync -a --numeric-ids "
                      "--update %s/ TARGET/`, and check the result" % (name, why, layout.snapshot(name)))
    return name, manifest


# -- checks ------------------------------------------------------------------------------------------------
def normalize_paths(paths):
    """--path values as clean relative paths ("" = the whole snapshot); nested duplicates dropped."""
    clean = []
    for path in paths or ():
        if path.startswith("/"):
            raise Refused("--path %r is absolute: give it relative to the snapshot's root" % path)
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise Refused("--path %r contains '..': give a path inside the snapshot" % path)
        clean.append("/".join(parts))
    if not clean or "" in clean:
        return [""]
    kept = []
    for path in sorted(set(clean)):
        if not any(path.startswith(other + "/") for other in kept):
            kept.append(path)
    return kept


def _check_path(snapshot, rel, name):
    """The path exists in the snapshot, reached through real directories only (never a symlink in it)."""
    parts = rel.split("/")
    current = snapshot
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            raise Refused("nothing to restore: %s is not in %s" % (rel, name))
        if index < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise Refused("nothing to restore: %s is not in %s (%s is not a directory there)"
                          % (rel, name, "/".join(parts[:index + 1])))
    return st


def _nearest_existing(path):
    while not os.path.lexists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def check_target(layout, target, require_mountpoint, dry_run=False):
    """A dry run may plan for a target whose parents do not exist yet (nothing is written; rsync's dry run plans
    against nothing): the nearest existing ancestor must be a directory. A real run creates the target only."""
    parent = os.path.dirname(target.rstrip("/")) or "/"
    if os.path.lexists(target) and not os.path.isdir(target):
        raise Refused("target %s exists and is not a directory" % target)
    if dry_run:
        parent = _nearest_existing(parent)
        if not os.path.isdir(parent) or os.path.islink(parent):
            raise Refused("the target's nearest existing ancestor %s is not a directory" % parent)
    elif not os.path.isdir(parent):
        raise Refused("the target's parent directory %s does not exist (restore creates the target, not its "
                      "parents: is the file system mounted?)" % parent)
    if preflight.overlaps(target, layout.root):
        raise Refused("target %s and backup root %s overlap: restore into a directory outside the backup file "
                      "system" % (target, layout.root))
    if preflight.inside(layout.state, target):
        raise Refused("the state directory %s is inside the target %s" % (layout.state, target))
    if require_mountpoint:
        if not preflight.is_mountpoint(layout.root):
            raise Refused("backup root %s is not a mount point: the backup file system is not mounted there"
                          % layout.root)
        if os.stat(target if os.path.isdir(target) else parent).st_dev == os.stat(layout.root).st_dev:
            raise Refused("target %s is on the backup file system (same device as %s): mount the file system "
                          "to restore into and give a directory on it" % (target, layout.root))


def check_state_dir(layout):
    """An explicit --state-dir must be this backup-id's state directory (another view of it, e.g. a read-write
    mount): otherwise backups and this restore would not share the lock."""
    if not os.path.isdir(layout.state):
        raise Refused("state directory %s does not exist" % layout.state)
    if layout.state == layout.default_state or not os.path.isdir(layout.default_state):
        return
    mine, default = os.stat(layout.state), os.stat(layout.default_state)
    if (mine.st_dev, mine.st_ino) == (default.st_dev, default.st_ino):
        return

    def manifests(state):
        try:
            return sorted(os.listdir(os.path.join(state, "manifests")))
        except FileNotFoundError:
            return []

    if manifests(layout.state) != manifests(layout.default_state):
        raise Refused("--state-dir %s is not the state directory of %s (their manifests differ): backups and this "
                      "restore must share %s/lock" % (layout.state, layout.id_dir, layout.default_state))


# -- prepare -----------------------------------------------------------------------------------------------
def _root_part(snapshot, rel):
    """The part that restores one chosen path: the whole tree, a directory (split like a backup's when it is
    big), or one non-directory (as a one-name batch of its parent directory)."""
    if rel and not stat.S_ISDIR(os.lstat(os.path.join(snapshot, rel)).st_mode):
        return {"path": os.path.dirname(rel), "names": [os.path.basename(rel)], "depth": 0, "estimate": None}
    return {"path": rel, "depth": 0, "estimate": None}


def _missing_parents(target, rels):
    """Directories above the chosen paths that the target lacks (created by the parts with the snapshot's owner
    and mode; the worker that sees the last part done sets their times once everything below them is written)."""
    missing = set()
    for rel in rels:
        for ancestor in ancestors(os.fsencode(rel)):
            if not os.path.lexists(os.path.join(os.fsencode(target), ancestor)):
                missing.add(os.fsdecode(ancestor))
    return sorted(missing)


def _clear_dead_temp(layout, target, run_id):
    """Remove what killed restores of this backup-id left in the target's temp dir (we hold the lock: they are
    dead). Other backup-ids' restores into the same target keep theirs."""
    troot = safefs.open_root(target)
    try:
        try:
            temp_fd = safefs.open_dir(troot, os.fsencode(TEMP_NAME))
        except (FileNotFoundError, safefs.NotADirectory):
            return
        try:
            with os.scandir(temp_fd) as entries:
                names = [entry.name for entry in entries]
            for name in names:
                if name != run_id and (os.path.isdir(layout.restore_dir(name))
                                       or os.path.exists(os.path.join(layout.history, name + ".json"))):
                    safefs.remove_at(temp_fd, os.fsencode(name))
        finally:
            os.close(temp_fd)
    finally:
        os.close(troot)


def prepare(request):
    """Set up (or join, given the same explicit run_id) the restore run a RestoreRequest asks for; returns its
    RestoreRun. Every refusal happens before anything is written to the target; those that need the snapshot
    happen under the lock, which is then released."""
    preflight.check_names(request.backup_id)
    if (request.snapshot is None) == (request.at is None):
        raise Refused("give exactly one of --snapshot and --at")
    layout = Layout(request.backup_root, request.backup_id, request.state_dir)
    preflight.check_backup_root(layout)
    target = os.path.abspath(request.target)
    rels = normalize_paths(request.paths)
    check_target(layout, target, request.require_mountpoint, request.dry_run)
    if not os.path.isdir(layout.state):
        resolve_snapshot(layout, request.snapshot, request.at)  # refuses with the precise reason (no snapshot...)
        raise Refused("%s has no engine state directory: nothing there can be restored by the engine" % layout.id_dir)
    check_state_dir(layout)
    run_id = request.run_id or new_run_id()
    if os.path.exists(os.path.join(layout.history, run_id + ".json")):
        raise Refused("run %s has already finished (see %s)" % (run_id, os.path.join(layout.history, run_id + ".json")))
    _ensure_state_dirs(layout)
    wanted = {"target": target, "paths": rels, "mode": "mirror" if request.mirror else "safe",
              "dry_run": bool(request.dry_run), "target_in_mount": preflight.mount_relative(target)}
    lock = RunLock(layout, **({"stale_after": request.stale_after} if request.stale_after else {}))
    if not lock.acquire(run_id, None, join=request.run_id is not None, kind="restore"):
        return _join(layout, run_id, lock, wanted)
    try:
        run = _set_up(layout, request, run_id, wanted)
        if request.step:
            lock.end_beat()
        return run
    except BaseException:
        lock.release(run_id)
        raise


def _ensure_state_dirs(layout):
    try:
        preflight.ensure_state_dirs(layout, [layout.history, layout.broken_locks, layout.trash,
                                             os.path.join(layout.state, "restores")])
        fs_now(layout.state)  # the lock needs a writable state directory: probe it before anything else
    except OSError as exc:
        raise Refused("cannot write to the state directory %s (%s): with the backup root mounted read-only, mount "
                      "the backup-id's state directory read-write and pass it as --state-dir" % (layout.state, exc))


def _join(layout, run_id, lock, wanted):
    """Join the run another worker prepared: it must have been asked for the same OPTIONS."""
    run = join_run(run_file(layout.restore_dir(run_id)), run_id, lock, RestoreRun)
    differs = [key for key in OPTIONS if getattr(run, key) != wanted[key]]
    if differs:
        raise Refused("restore run %s was prepared with other options (%s): %s" % (
            run_id, ", ".join(differs), ", ".join("%s=%r" % (key, getattr(run, key)) for key in differs)))
    return run


def _set_up(layout, request, run_id, wanted):
    """Under the lock: resolve the snapshot, check the chosen paths in it, plan the first parts, make the run's
    temp dir on the target (a real run), then save run.json."""
    if os.path.exists(layout.journal):
        raise Refused("a backup of %r was interrupted while promoting a snapshot (%s exists): snapshot names are "
                      "half rotated, so a restore could read the wrong tree. The next backup run of %r completes "
                      "the promotion first; restore after it." % (request.backup_id, layout.journal, request.backup_id))
    name, manifest = resolve_snapshot(layout, request.snapshot, request.at)
    snapshot_path = layout.snapshot(name)
    rels = wanted["paths"]
    for rel in rels:
        if rel:
            _check_path(snapshot_path, rel, name)
    specs = [_root_part(snapshot_path, rel) for rel in rels]

    def count_files():
        if rels == [""]:
            return manifest["totals"]["files_scanned"]
        return sum(count_entries(os.path.join(snapshot_path, rel), COUNT_CAP) for rel in rels)

    run_dir = layout.restore_dir(run_id)
    now = time.time()
    run = RestoreRun(run_id=run_id, backup_id=request.backup_id, snapshot=name,
                     snapshot_id=manifest.get("snapshot_id"), snapshot_finished=manifest.get("finished"),
                     snapshot_finished_iso=manifest.get("finished_iso"), snapshot_path=snapshot_path,
                     selector=request.snapshot or "at:%s" % _iso(request.at), workers=request.workers, started=now,
                     attempt_started=now, part_files=part_budget(request.workers, request.part_files, count_files),
                     streams_per_worker=request.streams_per_worker,
                     parents=_missing_parents(wanted["target"], [rel for rel in rels if rel]),
                     scratch=os.path.join(run_dir, "empty"),
                     temp=os.path.join(wanted["target"], TEMP_NAME, run_id), **wanted)
    store = PartStore(run_dir)
    store.create()
    makedirs(run.scratch)
    for spec in specs:
        store.add(spec)
    if not run.dry_run:
        _make_target_temp(layout, run.target, run_id)
    run.save(run_file(run_dir))
    return run


def _make_target_temp(layout, target, run_id):
    """The target (made if missing) and this run's temp dir in it, with what killed restores left cleared; the
    target's times are kept (the temp dir is no change to it)."""
    if not os.path.isdir(target):
        os.mkdir(target)
    before = os.stat(target)
    _clear_dead_temp(layout, target, run_id)
    troot = safefs.open_root(target)
    try:
        os.close(safefs.open_dir(troot, os.path.join(os.fsencode(TEMP_NAME), os.fsencode(run_id)),
                                 create=True))  # mode 0700; a symlink there is refused, not followed
        os.utime(troot, ns=(before.st_atime_ns, before.st_mtime_ns))
    finally:
        os.close(troot)


def load_run(layout, run_id=None):
    """The prepared restore run: run_id's, or (without one) the one holding the lock."""
    if run_id is None:
        owner = RunLock(layout).owner() or {}
        if owner.get("kind") != "restore":
            raise Refused("no restore run holds the lock of backup-id %r (run restore-prepare first)"
                          % layout.backup_id)
        run_id = owner["run_id"]
    run = RestoreRun.load(run_file(layout.restore_dir(run_id)))
    if run is None:
        raise Refused("no prepared restore run %s for backup-id %r under %s" % (run_id, layout.backup_id, layout.state))
    return run


# -- work --------------------------------------------------------------------------------------------------
def work(backup_root, backup_id, worker_id, run_id=None, state_dir=None, require_mountpoint=False, progress=None,
         target=None):
    """Claim and restore parts until none is left. Returns this worker's own results. Paths are this worker's own:
    the snapshot under its --backup-root, the target given here (each EC2 worker mounts the file systems itself)
    or else the one given to prepare."""
    layout = Layout(backup_root, backup_id, state_dir)
    preflight.check_backup_root(layout)
    run = load_run(layout, run_id)
    run = dataclasses.replace(run, snapshot_path=layout.snapshot(run.snapshot),
                              target=os.path.abspath(target) if target else run.target)
    if require_mountpoint:
        check_target(layout, run.target, True, run.dry_run)
    lock = RunLock(layout)
    lock.check(run.run_id)
    manifest = read_json(layout.manifest(run.snapshot), corrupt_ok=True) or {}
    if manifest.get("snapshot_id") != run.snapshot_id:
        raise EngineError("%s is no longer snapshot %s (names shifted under this run?): stopping"
                          % (run.snapshot, run.snapshot_id))
    store = PartStore(layout.restore_dir(run.run_id))
    stamp = {"worker": worker_id, "run_id": run.run_id, "attempt": 1}  # a restore is not resumed: one attempt

    def process(part_id, spec):
        # Only a chosen path's own part (depth 0) counts its root entry; a split's parts are counted by their parent's.
        def sync(rel, names, recursive):
            return restore_part(run, rel, names, recursive, count_root=spec["depth"] == 0)
        return process_part(store, part_id, spec, run.snapshot_path, run.part_files, sync, stamp,
                            split_first=False)

    mine = work_parts(store, lock, run.run_id, worker_id, process, progress)
    # Every part has a result: one worker (the machines that mount the target) tidies the target up. finalize
    # and abort may run where the target is not mounted, so they never touch it.
    parts, results = store.parts(), store.results()
    if not run.dry_run and all(part_id in results for part_id in parts) and \
            create_exclusive(os.path.join(layout.restore_dir(run.run_id), "target-finished"), {"worker": worker_id}):
        _finish_target(run)
    return mine


def new_plan():
    plan = {category: {"files": 0, "dirs": 0, "bytes": 0} for category in CATEGORIES}
    plan["samples"] = {category: [] for category in CATEGORIES}
    return plan


def _count(plan, category, shown, is_dir, size):
    plan[category]["dirs" if is_dir else "files"] += 1
    plan[category]["bytes"] += 0 if is_dir else size
    if len(plan["samples"][category]) < SAMPLE_LIMIT:
        plan["samples"][category].append(shown.decode("utf-8", "backslashreplace"))


def _scope(run, entry):
    """The chosen path (bytes, b"" for the whole snapshot) that holds entry (bytes, relative to the root)."""
    best = b""
    for path in run.paths:
        path_b = os.fsencode(path)
        if path_b and (entry == path_b or entry.startswith(path_b + b"/")) and len(path_b) > len(best):
            best = path_b
    return best


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _newer(target_st, snapshot_st):
    return target_st.st_mtime_ns > snapshot_st.st_mtime_ns


def restore_part(run, rel, names, recursive, count_root=True):
    """Restore one part: the directory rel (recursively, or only its own entries), or the named entries of rel.
    count_root: whether the part's root entries (rel itself, or the names) are counted in its plan.

    Everything on the target goes through the target root's fd (safefs): paths below it are resolved without
    following symlinks, and rsync is handed the part's directories as /proc/self/fd paths."""
    try:
        troot = safefs.open_root(run.target)
    except FileNotFoundError:
        if not run.dry_run:
            raise
        troot = None  # a dry run plans for a target that does not exist yet: everything is to be created
    try:
        return _restore_part(run, rel, names, recursive, count_root, troot)
    finally:
        if troot is not None:
            os.close(troot)


def _restore_part(run, rel, names, recursive, count_root, troot):
    return _PartRestore(run, rel, names, recursive, count_root, troot).run()


# What a scanned entry becomes when it is kept as the target has it (nothing below it is restored either).
SKIPS = ("skip_newer", "skip_conflict")


class _PartRestore:
    """One part's restore, in the steps the module's docstring describes: check_path (1), open_dirs and scan then
    sort each listed entry into the plan (2), then (unless a dry run) apply it: remove, recheck, transfer and set
    the part directory's own attributes (3). Every directory fd handed to rsync is closed when the part is done."""

    def __init__(self, run, rel, names, recursive, count_root, troot):
        self.started = time.time()
        self.run_state, self.rel, self.names, self.recursive = run, rel, names, recursive
        self.count_root, self.troot = count_root, troot
        self.held = []  # directory fds handed to rsync, closed when the part is done
        self.mirror, self.dry_run = run.mirror, run.dry_run
        self.plan = new_plan()
        self.result = {"status": "ok", "messages": [], "files_scanned": 0, "dirs": 0, "bytes_total": 0, "special": 0,
                       "files_transferred": 0, "bytes_transferred": 0, "rsync_exit": 0, "plan": self.plan}
        self.snap_b, self.target_b = os.fsencode(run.snapshot_path), os.fsencode(run.target)
        self.rel_b = os.fsencode(rel)
        self.components = self.rel_b.split(b"/") if self.rel_b else []
        self.src = os.path.join(self.snap_b, self.rel_b) if self.rel_b else self.snap_b
        self.name_roots = set() if names is None or count_root else {os.fsencode(name) for name in names}
        self.missing = self.root_counted = False
        self.src_fd = self.dst_fd = None
        # the plan of step 2, carried out by step 3
        self.skipped, self.replaced, self.wanted, self.removals, self.recheck = set(), set(), set(), [], {}

    def run(self):
        try:
            stop = self.check_path()
            if stop is not None:
                return self.done(*stop)
            self.open_dirs()
            listing = self.scan()
            if listing is None:
                return self.done("failed")
            self.sort(listing)
            if self.dry_run:
                return self.done()
            self.remove()
            self.recheck_written()
            if self.wanted:
                self.transfer()
            if self.names is None and self.result["status"] != "failed":
                self.set_own_attributes()
            return self.done()
        finally:
            self.close()

    def done(self, status="ok", message=None):
        self.close()
        if message:
            self.result["messages"].append(message)
        self.result["status"] = worst(self.result["status"], status)
        self.result["seconds"] = time.time() - self.started
        return self.result

    def close(self):
        for fd in self.held:
            os.close(fd)
        del self.held[:]

    def target_lstat(self, path):
        return safefs.lstat_rel(self.troot, path) if self.troot is not None else None

    def in_part(self, path):
        return os.path.join(self.rel_b, path) if self.rel_b else path

    def shown(self, path):
        return os.path.join(self.rel_b, path) if self.rel_b and path != b"." else (self.rel_b or path)

    # -- 1. the part's directory on the target ----------------------------------------------------------------
    def check_path(self):
        """The part's directory on the target, component by component, never following a symlink. A batch's
        names are entries of its directory: rsync lists them and step 2 sorts them like any other entry. Returns
        (status, message) when the part ends here, else None (self.missing: the part's directory is to be made)."""
        components, names = self.components, self.names
        first = os.path.join(self.rel_b, os.fsencode(names[0])) if names else self.rel_b
        scope = _scope(self.run_state, first)
        scope_len = len(scope.split(b"/")) if scope else 0
        for index in range(len(components)):
            here = b"/".join(components[:index + 1])
            st = self.target_lstat(here)
            if st is None:
                self.missing = True
                break
            if stat.S_ISDIR(st.st_mode):
                continue
            shown = os.path.join(self.target_b, here).decode("utf-8", "backslashreplace")
            if index + 1 < scope_len:
                return "failed", ("%s on the target is not a directory (a %s): the restore never writes through or "
                                  "replaces anything outside the chosen paths; move it away and restore again"
                                  % (shown, "symlink" if stat.S_ISLNK(st.st_mode) else "file"))
            is_root = names is None and index == len(components) - 1
            if not self.mirror and _newer(st, os.lstat(os.path.join(self.snap_b, here))):
                if is_root and self.count_root:
                    _count(self.plan, "skip_newer", here, True, 0)
                return "ok", "%s is newer on the target than the snapshot's directory: kept, not restored" % shown
            if is_root and self.count_root:
                _count(self.plan, "overwrite", here, True, 0)
                self.root_counted = True
            if not self.dry_run:
                safefs.remove_rel(self.troot, here)  # a non-directory (lstat said so): unlinked, never followed
            self.missing = True
            break
        if not self.dry_run:
            _make_dirs(self.snap_b, self.troot, components if names is not None else components[:-1])
            self.missing = names is None and self.target_lstat(self.rel_b) is None
        return None

    # -- 2. scan and plan -----------------------------------------------------------------------------------
    def open_dirs(self):
        """The snapshot's part directory and (if it exists) the target's, as fds: never through a symlink."""
        snap_root = safefs.open_root(self.snap_b)
        try:
            self.src_fd = safefs.open_dir(snap_root, self.rel_b)
        finally:
            os.close(snap_root)
        self.held.append(self.src_fd)
        self.missing = self.missing or self.troot is None
        if not self.missing:
            self.dst_fd = safefs.open_dir(self.troot, self.rel_b)  # every component checked above
            self.held.append(self.dst_fd)

    def scan(self):
        """rsync's dry run lists every entry that differs (with --delete in mirror mode); None if it failed."""
        src_path = fd_path(self.src_fd)
        sources = [src_path] if self.names is None else [os.path.join(src_path, name) for name in self.names]
        own_temp = ["--exclude=/" + TEMP_NAME] if not self.rel and self.names is None else []
        # --force: list a directory that a non-directory would replace (step 2 decides; this pass changes nothing)
        code, out, err = run_rsync(RSYNC_BASE + recursion(self.recursive)
                                   + ["-n", "-i", "--force", "--out-format=%i %n%L"]
                                   + (["--delete"] if self.mirror else []) + own_temp + sources
                                   + [self.run_state.scratch + "/" if self.missing else fd_path(self.dst_fd)],
                                   pass_fds=tuple(self.held))
        status, messages = classify(code, err)
        self.result["messages"] += messages
        self.result["rsync_exit"] = code
        if status == "failed":
            return None
        self.result["status"] = status
        scan = parse_stats(out)
        self.result.update(files_scanned=scan.get("files", 0), dirs=scan.get("dirs", 0),
                           bytes_total=scan.get("total_size", 0), special=scan.get("special", 0))
        return out

    def sort(self, out):
        """Sort every entry the scan listed into the plan: counted by category, and what step 3 removes, rechecks
        and transfers."""
        for item in parse(out, os.fsdecode(self.src)):
            path = item.path
            if path == b".":
                if self.count_root and not self.root_counted:
                    _count(self.plan, "create" if self.missing else "metadata", self.shown(path), True, 0)
                continue
            above = ancestors(path)
            if any(ancestor in self.skipped for ancestor in above):
                continue  # below an entry the restore keeps: nothing of it is restored
            fresh = self.missing or any(ancestor in self.replaced for ancestor in above)
            if item.deleting:  # mirror mode; in safe mode only --force's listing of a directory it would replace
                if self.mirror:
                    self.sort_deletion(path, fresh)
                continue
            self.sort_entry(item, above, fresh)

    def sort_deletion(self, path, fresh):
        gone = None if fresh else self.target_lstat(self.in_part(path))
        if gone is not None:
            _count(self.plan, "delete", self.shown(path), stat.S_ISDIR(gone.st_mode), gone.st_size)
            self.removals.append(path)

    def sort_entry(self, item, above, fresh):
        path = item.path
        counted = path not in self.name_roots
        snap_st = os.lstat(os.path.join(self.src, path))
        is_dir = stat.S_ISDIR(snap_st.st_mode)
        size = snap_st.st_size if stat.S_ISREG(snap_st.st_mode) else 0
        have = None if fresh else self.target_lstat(self.in_part(path))
        category = _category(have, snap_st, item.code, self.mirror)
        same_type = have is None or stat.S_IFMT(have.st_mode) == stat.S_IFMT(snap_st.st_mode)
        if not self.mirror and not is_dir and not fresh and category != "skip_newer" and same_type:
            self.recheck[path] = (snap_st.st_mtime_ns, size, category, counted)  # written meanwhile? see step 3
        if counted:
            _count(self.plan, category, self.shown(path), is_dir, size)
        if category in SKIPS:
            self.skipped.add(path)
            return
        if have is not None and (stat.S_ISDIR(have.st_mode) != is_dir or not same_type):
            self.removals.append(path)  # a different type: removed by the engine, never written through
            if is_dir:
                self.replaced.add(path)
        self.wanted.add(path)
        self.wanted.update(above)
        if item.leader is not None and item.leader not in self.skipped:
            self.wanted.add(item.leader)
            self.wanted.update(ancestors(item.leader))

    # -- 3. apply ---------------------------------------------------------------------------------------------
    def remove(self):
        """Mirror-mode deletions and type replacements: by the engine, parents resolved without following
        symlinks."""
        for path in self.removals:
            safefs.remove_rel(self.troot, self.in_part(path))

    def recheck_written(self):
        """Safe mode: a file written on the target since the scan (newer now, or a directory) is kept."""
        for path, (mtime_ns, size, category, counted) in sorted(self.recheck.items()):
            have = self.target_lstat(self.in_part(path))
            if have is not None and (stat.S_ISDIR(have.st_mode) or have.st_mtime_ns > mtime_ns):
                self.wanted.discard(path)
                shown = self.shown(path)
                if counted:
                    _uncount(self.plan, category, shown, size)
                    _count(self.plan, "skip_newer", shown, False, size)
                self.result["messages"].append("%s was written on the target during the restore: kept"
                                               % shown.decode("utf-8", "backslashreplace"))

    def transfer(self):
        """One rsync copies exactly the wanted names, through the run's temp dir on the target."""
        if self.dst_fd is None:
            # the part's own directory is new: made like its parents
            _make_dirs(self.snap_b, self.troot, self.components)
            self.dst_fd = safefs.open_dir(self.troot, self.rel_b)
            self.held.append(self.dst_fd)
        run = self.run_state
        temp_fd = safefs.open_dir(self.troot, os.fsencode(os.path.relpath(run.temp, run.target)))
        self.held.append(temp_fd)
        code, out, err = run_listed(RSYNC_BASE + ["--temp-dir=" + fd_path(temp_fd)], sorted(self.wanted),
                                    self.src_fd, self.dst_fd, pass_fds=tuple(self.held))
        applied = parse_stats(out)
        self.result.update(files_transferred=applied.get("transferred", 0),
                           bytes_transferred=applied.get("transferred_size", 0))
        status, messages = classify(code, err)
        self.result["messages"] += messages
        if code:
            self.result["rsync_exit"] = code
        self.result["status"] = worst(self.result["status"], status)

    def set_own_attributes(self):
        """The part's own directory, last (its entries are written). Not through rsync: "." in --files-from would
        send the directory's entries too, skipped ones included."""
        _make_dirs(self.snap_b, self.troot, self.components)
        part_fd = safefs.open_dir(self.troot, self.rel_b) if self.rel_b else os.dup(self.troot)
        try:
            safefs.set_dir_attributes(part_fd, os.lstat(self.src))
        finally:
            os.close(part_fd)


def _category(have, snap_st, code, mirror):
    """What restoring the snapshot's entry (snap_st) over the target's (have: None if it has none) is."""
    if have is None:
        return "create"
    if stat.S_ISDIR(have.st_mode) and stat.S_ISDIR(snap_st.st_mode):
        return "metadata"
    if stat.S_ISDIR(have.st_mode):
        return "overwrite" if mirror else "skip_conflict"
    if not mirror and _newer(have, snap_st):
        return "skip_newer"
    if stat.S_IFMT(have.st_mode) != stat.S_IFMT(snap_st.st_mode):
        return "overwrite"
    return "metadata" if code[0:1] == b"." else "overwrite"


def _uncount(plan, category, shown, size):
    plan[category]["files"] -= 1
    plan[category]["bytes"] -= size
    text = shown.decode("utf-8", "backslashreplace")
    if text in plan["samples"][category]:
        plan["samples"][category].remove(text)


def _make_dirs(snap_b, troot, components):
    """Create the missing directories of a part's path on the target with the snapshot's mode and owner (never
    through a symlink: a component that is not a real directory fails the part)."""
    for index in range(len(components)):
        here = b"/".join(components[:index + 1])
        if safefs.lstat_rel(troot, here) is not None:
            continue
        parent, name = safefs.split(here)
        parent_fd = safefs.open_dir(troot, parent)
        try:
            try:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            except FileExistsError:
                continue  # another worker made it
            like = os.lstat(os.path.join(snap_b, here))
            fd = safefs.open_child(parent_fd, name)
            try:
                os.fchown(fd, like.st_uid, like.st_gid)
                os.fchmod(fd, stat.S_IMODE(like.st_mode))
            finally:
                os.close(fd)
        finally:
            os.close(parent_fd)


# -- finalize / abort / summary ----------------------------------------------------------------------------
def merge_plans(plans):
    merged = new_plan()
    samples = {category: [] for category in CATEGORIES}
    for plan in plans:
        for category in CATEGORIES:
            for key in ("files", "dirs", "bytes"):
                merged[category][key] += plan[category][key]
            samples[category].extend(plan["samples"][category])
    merged["samples"] = {category: sorted(names)[:SAMPLE_LIMIT] for category, names in samples.items()}
    return merged


def summarize(run, parts, results, finished=None):
    """The restore summary (the contract other code reads; see the README): what every run says of its parts
    (summary.outcome: status, timing, part accounting, workers), a restore's own keys, and the plan merged from the
    parts' results. A restore reports only TOTALS of the counters, and no unreadable paths (a snapshot is read
    whole or the part fails)."""
    summary = summaries.outcome(parts, results, run.started, run.attempt_started, finished)
    del summary["unreadable"], summary["unreadable_count"]
    summary.update(summaries.fleet(run.workers, run.streams_per_worker))
    summary.update(kind="restore", run_id=run.run_id, backup_id=run.backup_id, snapshot=run.snapshot,
                   snapshot_id=run.snapshot_id, snapshot_finished_iso=run.snapshot_finished_iso,
                   selector=run.selector, target=run.target, target_in_mount=run.target_in_mount,
                   paths=[path or "." for path in run.paths], mode=run.mode, dry_run=run.dry_run,
                   plan=merge_plans(result.get("plan") or new_plan() for result in results.values()),
                   totals={key: summary["totals"][key] for key in TOTALS})
    return summary


def _finish_target(run):
    """After the last part: the attributes of the parent directories the run created (now that everything below
    them is written), then the run's temp dir goes (the target's own times are kept as the parts left them)."""
    snap_b = os.fsencode(run.snapshot_path)
    troot = safefs.open_root(run.target)
    try:
        for parent in sorted(run.parents, key=lambda path: -path.count("/")):
            try:
                fd = safefs.open_dir(troot, os.fsencode(parent))
            except (FileNotFoundError, safefs.NotADirectory):
                continue
            try:
                safefs.set_dir_attributes(fd, os.lstat(os.path.join(snap_b, os.fsencode(parent))))
            finally:
                os.close(fd)
        before = os.fstat(troot)
        safefs.remove_rel(troot, os.fsencode(os.path.relpath(run.temp, run.target)))
        try:
            os.rmdir(TEMP_NAME, dir_fd=troot)
        except OSError:
            pass  # gone already, or another backup-id's restore into this target is using it
        os.utime(troot, ns=(before.st_atime_ns, before.st_mtime_ns))
    finally:
        os.close(troot)


def _record(layout, run, result):
    write_json_atomic(os.path.join(layout.history, run.run_id + ".json"), result)
    remove_tree(layout.restore_dir(run.run_id))


def finalize(backup_root, backup_id, run_id, state_dir=None, worker_exits=None):
    """Summarize, record the summary in history/<run-id>.json, release the lock. Returns the summary."""
    layout = Layout(backup_root, backup_id, state_dir)
    run = load_run(layout, run_id)
    lock = RunLock(layout)
    lock.check(run_id)
    store = PartStore(layout.restore_dir(run_id))
    result = note_crashed_workers(summarize(run, store.parts(), store.results()), worker_exits)
    _record(layout, run, result)
    lock.release(run_id)
    return result


def abort(backup_root, backup_id, run_id, reason=None, state_dir=None):
    """Failure path for orchestrators: record the run as failed (reason, failed and unfinished parts), release
    the lock. Returns the failure summary (None if run_id was never prepared here)."""
    layout = Layout(backup_root, backup_id, state_dir)
    lock = RunLock(layout)
    run = RestoreRun.load(run_file(layout.restore_dir(run_id)))
    result = None
    if run is not None:
        store = PartStore(layout.restore_dir(run_id))
        result = mark_aborted(summarize(run, store.parts(), store.results()), reason)
        owner = lock.owner()
        if owner and owner.get("run_id") == run_id:
            _record(layout, run, result)
    lock.release(run_id)
    return result


def _amount(entry):
    text = "%d files" % entry["files"]
    if entry["dirs"]:
        text += ", %d dirs" % entry["dirs"]
    return text + " (%s)" % summaries.human_bytes(entry["bytes"])


def human(summary):
    plan, totals = summary["plan"], summary["totals"]
    lines = ["restore %s %s (snapshot id %s, finished %s) -> %s: %s%s (run %s)" % (
        summary["backup_id"], summary["snapshot"], summary["snapshot_id"], summary["snapshot_finished_iso"],
        summary["target"], summary["status"].upper(), ", DRY RUN: nothing was changed" if summary["dry_run"] else "",
        summary["run_id"]),
        "  mode:        %s; paths: %s" % (summary["mode"], ", ".join(summary["paths"]))]
    verb = "would" if summary["dry_run"] else ""
    labels = (("create", "create"), ("overwrite", "overwrite"), ("delete", "delete"),
              ("skip_newer", "keep (newer on the target)"), ("skip_conflict", "keep (a directory on the target)"),
              ("metadata", "restore attributes of"))
    for category, label in labels:
        if plan[category]["files"] or plan[category]["dirs"]:
            lines.append("  %-36s %s" % (((verb + " ") if verb else "") + label + ":", _amount(plan[category])))
            for name in plan["samples"][category][:5]:
                lines.append("      %s" % name)
    lines.append("  transferred: %d of %d files scanned (%s) in %d parts, %.1f s" % (
        totals["files_transferred"], totals["files_scanned"], summaries.human_bytes(totals["bytes_transferred"]),
        summary.get("parts", 0), summary.get("duration_seconds", 0.0)))
    lines += summaries.part_lines(summary)
    return "\n".join(lines)
