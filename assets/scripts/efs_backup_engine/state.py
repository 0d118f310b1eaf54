"""The run state, typed: what prepare records in a run's run.json and every worker and finalize read back, and the
requests that prepare takes.

A backup's run.json (runs/<interval>/run.json), BackupRun:
    run_id               str     this attempt's run id (a resumed run gets a new one)
    backup_id            str
    interval             str     one of efs_backup_contract.intervals.INTERVALS
    retain               int     snapshots of the interval kept after promotion
    source               str     the source directory (absolute)
    workers              int     workers the run was prepared for: engine streams in all (instances x streams)
    streams_per_worker   int     streams each worker instance runs (written only when not 1; older records lack it)
    link_dests           [str]   snapshots unchanged files are hard-linked against, newest of the interval first
    unit_files           int     entries per part (field part_files; "unit" is the on-disk name's legacy word)
    started              float   when the run began (epoch seconds; kept across resumes of the same work)
    attempt_started      float   when this attempt began (the summary's duration counts from it)
    attempt              int     1, then +1 for each resume
    tree_base            str     new | recycled spare | orphaned work tree | resumed
    recovered_promotion  str?    the run id of an interrupted promotion this prepare completed, or null
    resumed_from         str     (resumed runs only) the previous attempt's run id
    resumed_parts        int     (resumed runs only) finished parts kept from earlier attempts

A restore's run.json (restores/<run-id>/run.json), RestoreRun:
    kind                 str     "restore"
    run_id, backup_id, workers, streams_per_worker, started, attempt_started, unit_files   as for a backup
    snapshot             str     the snapshot's name when prepared (INTERVAL.N)
    snapshot_id          str?    its manifest's snapshot id (workers refuse a snapshot whose id changed)
    snapshot_finished    float?  and when it finished, as a number and as ISO 8601
    snapshot_finished_iso str?
    snapshot_path        str     the snapshot's path on the preparing host (each worker uses its own)
    selector             str     what was asked for: INTERVAL.N, latest, id:ID or at:ISO-TIME
    target               str     the target directory on the preparing host (each worker may give its own)
    target_in_mount      str?    the target's path inside its file system (joiners must ask for the same)
    paths                [str]   the chosen paths, relative, "" for the whole snapshot
    mode                 str     safe | mirror
    dry_run              bool
    parents              [str]   directories above the chosen paths the target lacked (their times are set last)
    scratch              str     an empty directory in the state directory (a dry run's stand-in for the target)
    temp                 str     the target's temp directory for this run (<target>/.efs-backup-restore.tmp/<run-id>)

Both: "joined": true appears only in what prepare returns to a worker that joined a run another one prepared (it is
never saved). Keys this engine does not know (written by another version) are kept in `extra` and saved back as
they were, so a run prepared by an older or newer engine resumes with its record intact. run.json is written
with sorted keys, so the same record is the same bytes whatever engine wrote it.
"""

import dataclasses
import os
import time
import uuid
from typing import Any, ClassVar, Dict, List, Optional, Sequence

from efs_backup_engine.errors import EngineError
from efs_backup_engine.fsutil import read_json, write_json_atomic
from efs_backup_engine.lock import heartbeat_alive
from efs_backup_engine.parts import POLL_SECONDS

DEFAULT_RESUME_MAX_AGE = 24 * 3600
# Field names whose JSON key is the engine's older word for the same thing (kept on disk: see parts.py).
LEGACY_KEYS = {"part_files": "unit_files"}


def new_run_id():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Record:
    """A dataclass saved as one JSON object: a field's key is its name (or its LEGACY_KEYS name); the fields
    named in OMITTED are written only when they differ from their default; `extra` holds unknown keys."""

    OMITTED: ClassVar[Sequence[str]] = ("joined",)

    @classmethod
    def from_json(cls, data, where="run.json"):
        known = {LEGACY_KEYS.get(f.name, f.name): f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        values = {known[key]: value for key, value in data.items() if key in known}
        missing = [key for key, name in known.items() if name not in values and _required(cls, name)]
        if missing:
            raise EngineError("%s lacks %s: not a run record this engine can read" % (where, ", ".join(missing)))
        return cls(**values, extra={key: value for key, value in data.items() if key not in known})

    def to_json(self):
        data = dict(self.extra)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in self.OMITTED and value == f.default):
                continue
            data[LEGACY_KEYS.get(f.name, f.name)] = value
        return data

    def save(self, path):
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path):
        """The record saved at path, or None if there is none."""
        data = read_json(path)
        return None if data is None else cls.from_json(data, path)


def _required(cls, name):
    f = cls.__dataclass_fields__[name]
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@dataclasses.dataclass
class BackupRun(Record):
    run_id: str
    backup_id: str
    interval: str
    retain: int
    source: str
    workers: int
    link_dests: List[str]
    part_files: int
    started: float
    attempt_started: float
    attempt: int = 1
    tree_base: str = "new"
    recovered_promotion: Optional[str] = None
    resumed_from: Optional[str] = None
    resumed_parts: Optional[int] = None
    streams_per_worker: int = 1
    joined: bool = False
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    OMITTED: ClassVar[Sequence[str]] = ("resumed_from", "resumed_parts", "streams_per_worker", "joined")


@dataclasses.dataclass
class RestoreRun(Record):
    run_id: str
    backup_id: str
    snapshot: str
    snapshot_path: str
    selector: str
    target: str
    paths: List[str]
    mode: str
    dry_run: bool
    workers: int
    part_files: int
    started: float
    attempt_started: float
    parents: List[str]
    scratch: str
    temp: str
    kind: str = "restore"
    snapshot_id: Optional[str] = None
    snapshot_finished: Optional[float] = None
    snapshot_finished_iso: Optional[str] = None
    target_in_mount: Optional[str] = None
    streams_per_worker: int = 1
    joined: bool = False
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    OMITTED: ClassVar[Sequence[str]] = ("streams_per_worker", "joined")

    @property
    def mirror(self):
        return self.mode == "mirror"


@dataclasses.dataclass(frozen=True)
class BackupRequest:
    """What `prepare` (and `backup`) is asked for. run_id: join (or set up) this run instead of a new one;
    stale_after: the lock's staleness limit (seconds; default the lock's); part_files: entries per part (default:
    parts.part_budget); step: prepare runs as a step of its own (see run.prepare)."""

    source: str
    backup_root: str
    backup_id: str
    interval: str
    retain: int
    workers: int = 1
    run_id: Optional[str] = None
    require_mountpoint: bool = False
    allow_empty_source: bool = False
    stale_after: Optional[float] = None
    part_files: Optional[int] = None
    resume_max_age: float = DEFAULT_RESUME_MAX_AGE
    step: bool = False
    streams_per_worker: int = 1


@dataclasses.dataclass(frozen=True)
class RestoreRequest:
    """What `restore-prepare` (and `restore`) is asked for: exactly one of snapshot (INTERVAL.N, latest or
    id:SNAPSHOT_ID) and at (epoch seconds); paths relative to the snapshot's root (none: all of it)."""

    backup_root: str
    backup_id: str
    target: str
    snapshot: Optional[str] = None
    at: Optional[float] = None
    paths: Sequence[str] = ()
    mirror: bool = False
    dry_run: bool = False
    workers: int = 1
    run_id: Optional[str] = None
    state_dir: Optional[str] = None
    require_mountpoint: bool = False
    stale_after: Optional[float] = None
    part_files: Optional[int] = None
    step: bool = False
    streams_per_worker: int = 1


def join_run(run_file, run_id, lock, kind):
    """Another worker of the same run took the lock first: wait for its run.json, then work on that run (a
    `kind` record, BackupRun or RestoreRun, marked joined).

    There is no fixed deadline: a first run's prepare counts the source (up to parts.COUNT_CAP entries, one
    listing at a time: minutes on a large EFS), so the joiner waits exactly as long as the preparer's heartbeat
    (its lock heartbeat file, beaten every lock.every seconds since it took the lock) stays alive, and fails once
    it is older than lock.join_stall_after (another host) or the preparing process is gone (this host), or the
    lock no longer belongs to the run (the preparer failed and released it).
    """
    preparer = (lock.owner() or {}).get("heartbeat", "")
    waited = time.time()
    while True:
        run = _prepared(run_file, run_id, kind)
        if run is not None:
            return run
        lock.check(run_id)
        ages = lock.heartbeats() or {}
        if not (preparer in ages and heartbeat_alive(preparer, ages[preparer], lock.join_stall_after)):
            run = _prepared(run_file, run_id, kind)  # it may have finished (and ended its beat) since the first read
            if run is not None:
                return run
            beat = "%.0f s old" % ages[preparer] if preparer in ages else "gone"
            raise EngineError("run %s: the worker preparing it stopped beating (heartbeat %s %s; limit %.0f s) "
                              "after this worker waited %.0f s for it; the run fails and the next one resumes"
                              % (run_id, preparer or "?", beat, lock.join_stall_after, time.time() - waited))
        time.sleep(POLL_SECONDS)


def _prepared(run_file, run_id, kind):
    """run_file's record if it is run_id's (marked joined), else None."""
    data = read_json(run_file)
    if data is None or data["run_id"] != run_id:
        return None
    return dataclasses.replace(kind.from_json(data, run_file), joined=True)


def run_file(run_dir):
    return os.path.join(run_dir, "run.json")
