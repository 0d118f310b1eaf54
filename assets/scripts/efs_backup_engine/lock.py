"""The per-backup-id run lock, kept on the backup file system so two machines can never both run.

Acquire: `mkdir lock/` (atomic on local disks and NFS). The holder writes lock/owner.json (run id, kind —
backup or restore —, interval, host, start time). Backups and restores of one backup-id share this one lock: a
restore never reads a snapshot while a backup renames it, and a backup never starts under a running restore. Every process working for the run (the coordinator and each worker) keeps its own heartbeat
file lock/hb.<host>.<pid>.<process-start> fresh while it works.

A lock is stale only when no heartbeat file shows a live process:
  * a heartbeat written by a process on *this* host is alive exactly while that process exists (same pid and
    same process start time, so a reused pid does not count);
  * a heartbeat from another host is alive while it is younger than `stale_after` seconds, measured with the
    file system's own clock (fs_now), so clock skew between machines cannot make a live lock look stale.
A lock that has no heartbeat at all is judged by the age of the lock directory itself.

Heartbeats are refreshed every min(HEARTBEAT_EVERY, stale_after / BEATS_PER_STALE) seconds. The process that takes
the lock beats from that moment on (a thread started by acquire()), so a long prepare (a first run counting
millions of entries) keeps its lock and shows the workers joining it that it is alive: a joiner waits while the
preparer's heartbeat advances and gives up once it is older than JOIN_STALL_BEATS beat periods (see run.join_run).

Breaking a stale lock renames lock/ to lock-broken/<token>, where token is unique to that acquisition: when two
runs race to break the same stale lock, only one rename can succeed (the tombstone exists afterwards), so the
winner's fresh lock is never broken by the loser. Tombstones are small; they are pruned after a week.
"""

import os
import socket
import threading
import time
import uuid

from efs_backup_engine.errors import Busy, LockLost
from efs_backup_engine.fsutil import fs_now, makedirs, read_json, remove_tree, write_json_atomic

DEFAULT_STALE_AFTER = 600
HEARTBEAT_EVERY = 30
BEATS_PER_STALE = 10
JOIN_STALL_BEATS = 6
TOMBSTONE_KEEP = 7 * 24 * 3600


def _process_start(pid):
    """Start time (clock ticks since boot) of a live process, None if it does not exist or is a zombie."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # killed, waiting to be reaped: not alive
        return None
    return fields[19]


def heartbeat_name(pid=None):
    pid = pid or os.getpid()
    return "hb.%s.%d.%s" % (socket.gethostname(), pid, _process_start(pid))


def _parse_heartbeat(name):
    parts = name.split(".")
    # hb.<host>.<pid>.<start>; host names may contain dots.
    return ".".join(parts[1:-2]), parts[-2], parts[-1]


def heartbeat_alive(name, age, stale_after):
    host, pid, start = _parse_heartbeat(name)
    if host == socket.gethostname() and pid.isdigit():
        return _process_start(int(pid)) == start
    return age <= stale_after


def beat_every(stale_after):
    """Seconds between heartbeats: at least BEATS_PER_STALE beats within the stale limit."""
    return min(HEARTBEAT_EVERY, stale_after / BEATS_PER_STALE)


def describe_owner(owner):
    """What holds a lock, for messages: "a restore" or "interval daily" (owners written before kinds: backups)."""
    owner = owner or {}
    if owner.get("kind") == "restore":
        return "a restore"
    return "interval %s" % owner.get("interval", "?")


class RunLock:
    def __init__(self, layout, stale_after=DEFAULT_STALE_AFTER):
        self.layout = layout
        self.path = layout.lock_dir
        self.stale_after = stale_after
        self.every = beat_every(stale_after)
        # A joiner gives up on a preparer whose heartbeat is this old (another host; same host: the process).
        self.join_stall_after = min(stale_after, JOIN_STALL_BEATS * self.every)
        self._beater = None

    # -- inspection -------------------------------------------------------------------------------------
    def owner(self):
        return read_json(os.path.join(self.path, "owner.json"))

    def holder_state(self):
        """(exists, alive, owner, reason) for operators and for acquire()."""
        try:
            lock_stat = os.stat(self.path)
        except FileNotFoundError:
            return False, False, None, "no lock"
        owner = self.owner()
        now = fs_now(self.layout.state)
        ages = self.heartbeats(now)
        if ages is None:
            return False, False, None, "no lock"
        beats = sorted(ages.items())
        for name, age in beats:
            if heartbeat_alive(name, age, self.stale_after):
                return True, True, owner, "heartbeat %s is %.0fs old" % (name, max(age, 0))
        if not beats:
            # Between steps (e.g. after the workers, before finalize) only the owner's record is left: the
            # process that took the lock counts while it lives; otherwise the lock's age decides.
            age = now - lock_stat.st_mtime
            taker = (owner or {}).get("heartbeat", "")
            if taker and heartbeat_alive(taker, age, self.stale_after):
                return True, True, owner, "taken %.0fs ago by %s, which is alive" % (max(age, 0), taker)
            if age <= self.stale_after:
                return True, True, owner, "between steps: no heartbeat for %.0fs" % max(age, 0)
            return True, False, owner, "no live heartbeat for %.0fs" % max(age, 0)
        return True, False, owner, "every heartbeat is dead (%s)" % ", ".join(n for n, _ in beats)

    def heartbeats(self, now=None):
        """{heartbeat file name: age in seconds by the file system's clock}; None if there is no lock."""
        now = fs_now(self.layout.state) if now is None else now
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return None
        ages = {}
        for name in names:
            if name.startswith("hb."):
                try:
                    ages[name] = now - os.stat(os.path.join(self.path, name)).st_mtime
                except FileNotFoundError:
                    continue
        return ages

    def beating(self, name, ages):
        """Whether the process behind heartbeat `name` is alive, given heartbeats() ages."""
        return name in (ages or {}) and heartbeat_alive(name, ages[name], self.stale_after)

    # -- acquire / release ------------------------------------------------------------------------------
    def acquire(self, run_id, interval, join=False, kind="backup"):
        """Take the lock for run_id, breaking it only if it is stale. Raises Busy otherwise.

        kind ("backup" or "restore") is recorded in owner.json so whoever is refused learns what holds the lock.

        With join=True, a lock already held by the same run_id is shared (several workers of one orchestrated
        run each call prepare with the run's id): returns False then, True when this call took the lock.

        The lock directory is assembled under a private name (owner.json and this process's heartbeat inside)
        and renamed into place: renaming onto an existing, non-empty lock fails, so exactly one run wins, and a
        lock is never seen without its owner and heartbeat, even if its creator is killed at once.
        """
        for _ in range(2):
            staged = self._stage(run_id, interval, kind)
            try:
                os.rename(staged, self.path)
                self._beater = Heartbeat(self, run_id).start()
                return True
            except OSError:
                remove_tree(staged)
                if not os.path.isdir(self.path):
                    raise
            exists, alive, owner, reason = self.holder_state()
            if join and exists and (owner or {}).get("run_id") == run_id:
                return False
            if exists and alive:
                raise Busy("backup-id %r is locked by run %s (%s, host %s): %s"
                           % (self.layout.backup_id, (owner or {}).get("run_id", "?"), describe_owner(owner),
                              (owner or {}).get("host", "?"), reason))
            if exists:
                self._break(owner, reason)
        raise Busy("could not take the lock of backup-id %r: another run took it first" % self.layout.backup_id)

    def _stage(self, run_id, interval, kind):
        staged = os.path.join(self.layout.state, "lock.acquiring-%s" % uuid.uuid4().hex)
        os.mkdir(staged)
        write_json_atomic(os.path.join(staged, "owner.json"), {
            "run_id": run_id, "kind": kind, "interval": interval, "host": socket.gethostname(), "pid": os.getpid(),
            "heartbeat": heartbeat_name(), "token": uuid.uuid4().hex, "acquired": time.time()})
        open(os.path.join(staged, heartbeat_name()), "w").close()
        return staged

    def _break(self, owner, reason):
        makedirs(self.layout.broken_locks)
        token = (owner or {}).get("token") or "inode-%d" % os.stat(self.path).st_ino
        tombstone = os.path.join(self.layout.broken_locks, token)
        try:
            os.rename(self.path, tombstone)
        except OSError:
            return  # someone else broke it first (the tombstone exists) or the lock is gone
        with open(os.path.join(tombstone, "broken.txt"), "w", encoding="utf-8") as handle:
            handle.write("broken by host %s pid %d at %s: %s\n"
                         % (socket.gethostname(), os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            reason))
        self._prune_tombstones()

    def _prune_tombstones(self):
        now = fs_now(self.layout.state)
        for name in os.listdir(self.layout.broken_locks):
            path = os.path.join(self.layout.broken_locks, name)
            try:
                if now - os.stat(path).st_mtime > TOMBSTONE_KEEP:
                    remove_tree(path)
            except FileNotFoundError:
                pass

    def check(self, run_id):
        owner = self.owner()
        if not owner or owner.get("run_id") != run_id:
            raise LockLost("the lock of backup-id %r no longer belongs to run %s"
                           % (self.layout.backup_id, run_id))

    def beat(self, run_id=None):
        """Refresh this process's heartbeat; with run_id, only while that run still owns the lock."""
        if run_id is not None:
            owner = self.owner()
            if not owner or owner.get("run_id") != run_id:
                return False
        path = os.path.join(self.path, heartbeat_name())
        try:
            with open(path, "a"):
                pass
            os.utime(path)
        except FileNotFoundError:
            return False  # lock released under us; check() reports it
        return True

    def stop_beating(self):
        """Stop the heartbeat thread that acquire() started (the heartbeat file stays)."""
        if self._beater is not None:
            self._beater.stop()
            self._beater = None

    def end_beat(self):
        self.stop_beating()
        try:
            os.unlink(os.path.join(self.path, heartbeat_name()))
        except FileNotFoundError:
            pass

    def release(self, run_id):
        """Release the lock if run_id holds it (rename away first, so no half-removed lock is ever seen)."""
        owner = self.owner()
        if not owner or owner.get("run_id") != run_id:
            return
        self.stop_beating()
        makedirs(self.layout.trash)
        released = os.path.join(self.layout.trash, "lock-" + owner.get("token", uuid.uuid4().hex))
        os.rename(self.path, released)
        remove_tree(released)

    def force_unlock(self):
        """Operator escape hatch (`unlock --force`): break the lock whatever its state."""
        exists, _alive, owner, reason = self.holder_state()
        if exists:
            self._break(owner, "forced by operator; state was: " + reason)
        return owner


class _Ticker:
    """A daemon thread running self._run until stop(); the lifecycle the heartbeat and the progress probe share."""

    def __init__(self, name):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self):
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self, join=True):
        self._stop.set()
        if join and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


class Heartbeat(_Ticker):
    """Background thread that keeps this process's heartbeat fresh while a run works (every lock.every seconds,
    while run_id owns the lock). As a context manager it also removes the heartbeat file at the end: when the
    last of this process's contexts on the lock ends. They share one file (heartbeat_name() is per process): the
    local runner's context holds its one in-process worker's (cli._work_here), and the worker's end must not
    leave the run without a heartbeat while it finalizes."""

    _open = {}  # lock directory -> this process's Heartbeat contexts on it
    _open_guard = threading.Lock()

    def __init__(self, lock, run_id, every=None):
        self.lock = lock
        self.run_id = run_id
        self.every = lock.every if every is None else every
        super().__init__("lock-heartbeat")

    def _run(self):
        while not self._stop.wait(self.every):
            if not self.lock.beat(self.run_id):
                return

    def __enter__(self):
        key = os.path.abspath(self.lock.path)
        with Heartbeat._open_guard:
            Heartbeat._open[key] = Heartbeat._open.get(key, 0) + 1
        self.lock.beat(self.run_id)
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        key = os.path.abspath(self.lock.path)
        with Heartbeat._open_guard:
            left = Heartbeat._open.pop(key) - 1
            if left:
                Heartbeat._open[key] = left
        if not left:
            self.lock.end_beat()
        return False


PROGRESS_FILE_ENV = "EFS_BACKUP_PROGRESS_FILE"
PROGRESS_SECONDS_ENV = "EFS_BACKUP_PROGRESS_SECONDS"
PROGRESS_EVERY = 15


class ProgressProbe(_Ticker):
    """Proof of progress for an orchestrator (worker.sh withholds its Step Functions heartbeat without it).

    A daemon thread that, every `every` seconds, makes a round trip to each file system the command works on and
    then touches `path` (a local file). The round trip opens the directory: opening makes the NFS client revalidate
    it with the server (close-to-open consistency, nfs(5)), so a `hard` mount whose server stopped answering blocks
    it, and `path` stops advancing; so it does when the whole process is stopped. An error answer (a directory that
    is gone) is still an answer. Started by cli.main for every command when PROGRESS_FILE_ENV is set."""

    def __init__(self, path, directories, every=PROGRESS_EVERY):
        self.path = path
        self.directories = [d for d in directories if d]
        self.every = every
        super().__init__("progress-probe")

    def probe(self):
        for directory in self.directories:
            try:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue  # the file system answered, with an error
            try:
                os.fstat(fd)
            finally:
                os.close(fd)
        with open(self.path, "a"):
            pass
        os.utime(self.path)

    def _run(self):
        while True:
            try:
                self.probe()
            except OSError:
                pass  # the progress file itself could not be touched: the orchestrator sees no progress
            if self._stop.wait(self.every):
                return

    def stop(self, join=False):
        """Does not wait: a probe blocked on a hung mount must not hold up the process's exit."""
        super().stop(join=join)

    @classmethod
    def from_environment(cls, directories, environ=None):
        """The probe worker.sh asks for (PROGRESS_FILE_ENV, optional PROGRESS_SECONDS_ENV), started; else None."""
        environ = os.environ if environ is None else environ
        path = environ.get(PROGRESS_FILE_ENV)
        if not path:
            return None
        every = float(environ.get(PROGRESS_SECONDS_ENV) or PROGRESS_EVERY)
        return cls(path, directories, every).start()
