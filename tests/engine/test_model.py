"""Model-based test of the backup engine (Hypothesis stateful testing).

The model is deliberately simple: **the expected content of a snapshot is the source as it was recorded when the
run that made it started.** Hypothesis drives random sequences of source changes interleaved with real backup
runs of the real command line (`efs-backup-engine backup`, real rsync, real files):

- changes: create, edit (same size, mtime set back), append, chmod, chown, utime, rename, delete; every type change
  (any of file, directory, symlink relative/absolute/in-tree/out-of-tree/dangling, FIFO, character device when
  root, hard-link member, replaces any other); hard-link split and merge; unreadable directories; names from a
  nasty corpus (spaces, newline, ' => ', ' -> ', invalid UTF-8, leading '-', a literal backslash-hash escape);
- runs: interval daily or hourly, 1-4 workers, --unit-files 1-3 or none (so parts split), retention 1-4 (raised
  and lowered), SIGKILL of the whole run at a random instant followed by a rerun, and runs of root without
  CAP_DAC_READ_SEARCH/CAP_DAC_OVERRIDE (NFS root squashing) with unreadable directories in the source.

After every run it checks:
- each `<interval>.<n>` is, in order, the snapshot of the runs the model expects (read from its manifest's
  run_id: new runs first, then the previous ones, cut at the run's retention), and equals the source state recorded
  for its run: type, permission bits, numeric owner and group, size, mtime to the nanosecond, content hash,
  symlink target (treeops.listing, which shares no code with the engine);
- hard-link groups, within the scope the engine documents (README, "Limits, by design": hard links are kept within
  a part; parts are whole directories): names of one directory are always in one part, so for every directory
  the snapshot's partition of its files into inodes equals the source's; when the run was a single part (one
  worker, no --unit-files) every group of the tree must be equal;
- a canary directory outside every tree (absolute and relative symlinks of the source point into it) is
  unchanged to the inode, link count and ctime;
- the run succeeded (exit 0), and the lock is released; after an ordinary run the engine's own `verify --checksum
  full` finds no difference either.

Runs of root without the read-override capabilities ("capless"): the source's unreadable entries are found by a
probe run with the same capabilities (not by the engine). The run must then either fail and promote nothing (a
privileged rerun with --resume-max-age 0 must then succeed), or promote a snapshot that is exact for everything
readable (the contents of unreadable directories and unreadable files are not checked), reports a warning, not a
success, and names each directory the model made unreadable in its summary. Only the reading side is modelled:
the capless engine also lacks the override on the backup file system, where production runs keep root, so its
failures to write there are accepted as honest failures.

What the model never does, because no mtime-based tool can see it: an edit that keeps the size and restores the
exact nanosecond mtime a snapshot already holds. Every time the model sets is unique (UniqueTimes).

Profiles (registered in tests/engine/conftest.py; README, "Tests of the engine"): "ci" (the default; bounded, well
inside the CI budget, no shrinking), "shrink" (replays saved failures and shrinks them) and "soak" (thousands of
examples):
    .venv/bin/python -m pytest tests/engine/test_model.py -p no:randomly --hypothesis-profile soak
Failing examples are kept in .hypothesis/ (not in git) and replayed first on the next run. Every example starts
with 5 runs (so every later run recycles an expired snapshot) and ends with a run of its last changes.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from enginekit import ENGINE, WITHOUT_READ_OVERRIDE, Engine
from treeops import diff, fingerprint, listing

NAMES = [b"a", b"b", b"c d", b"new\nline", b"p => q", b"x -> y", b"\xff\xfe\x80", b"-dash", b"\\#123", b" sp "]
KINDS = ["file", "dir", "symlink-in-relative", "symlink-in-absolute", "symlink-out-absolute", "symlink-out-relative",
         "symlink-dangling", "fifo", "device", "hardlink"]
FILE_MODES = [0o600, 0o644, 0o755, 0o4755, 0o2750, 0o1777, 0o000, 0o444]
DIR_MODES = [0o755, 0o700, 0o555, 0o000, 0o1777, 0o2755, 0o311]
OWNERS = [0, 1000, 12345, 65534]
MAX_ENTRIES = 40
MAX_DEPTH = 3
KEEP = b"keep"  # never touched: the engine rightly refuses an empty source once a snapshot is not empty
INTERVALS = ["daily", "hourly"]
IS_ROOT = os.geteuid() == 0

# An unreadable-entries probe, run with the engine's capabilities: prints hex-encoded relative paths.
PROBE = r"""
import json, os, stat, sys
root = os.fsencode(sys.argv[1])
bad = []
def walk(rel):
    path = os.path.join(root, rel) if rel else root
    try:
        names = os.listdir(path)
        sts = [(n, os.lstat(os.path.join(path, n))) for n in names]
    except OSError:
        bad.append(rel.hex()); return
    for name, st in sts:
        sub = os.path.join(rel, name) if rel else name
        if stat.S_ISDIR(st.st_mode):
            walk(sub)
        elif stat.S_ISREG(st.st_mode):
            try:
                os.close(os.open(os.path.join(root, sub), os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                bad.append(sub.hex())
walk(b"")
print(json.dumps(bad))
"""


def inode_pairs(root, paths):
    """{(a, b)} for names a < b of one inode among the regular files `paths` (relative, bytes) below root."""
    by_inode = {}
    for path in paths:
        st = os.lstat(os.path.join(os.fsencode(root), path))
        if stat.S_ISREG(st.st_mode):
            by_inode.setdefault(st.st_ino, []).append(path)
    return {(a, b) for names in by_inode.values() for a in names for b in names if a < b}


def subtree(path):
    """listing() of what a directory holds (not the directory itself); {} if it is not a directory."""
    if not os.path.isdir(path) or os.path.islink(path):
        return {}
    return {rel: meta for rel, meta in listing(path).items() if rel != b"."}


def parent(path):
    return os.path.dirname(path)


def remove(path):
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class Recorded:
    """What one run's snapshot must hold: the source listing at the run's start and its hard-link pairs. For a
    capless run, `unreadable` (from the probe) are left unchecked: the contents of unreadable directories (the
    directory entry itself is checked) and unreadable files."""

    def __init__(self, source, single_part, unreadable=()):
        full = listing(source)
        self.unreadable = list(unreadable)
        self.unreadable_dirs = {u for u in self.unreadable if full.get(u, (None,))[0] == stat.S_IFDIR}
        # unreadable files as the source held them (this listing reads as root with every capability)
        self.unreadable_files = {u: full[u] for u in self.unreadable if u in full and u not in self.unreadable_dirs}
        self.listing = {p: m for p, m in full.items() if self.checked(p)}
        self.files = [p for p, m in self.listing.items() if m[0] == stat.S_IFREG]
        self.pairs = inode_pairs(source, self.files)
        self.single_part = single_part

    def checked(self, path):
        for bad in self.unreadable:
            if path.startswith(bad + b"/") or (path == bad and bad not in self.unreadable_dirs):
                return False
        return True

    def check(self, name, snapshot):
        actual = {p: m for p, m in listing(snapshot).items() if self.checked(p)}
        problems = diff(self.listing, actual)
        assert not problems, "%s differs from the source state of its run: %s" % (name, problems)
        got, want = inode_pairs(snapshot, self.files), self.pairs
        if not self.single_part:  # the documented scope: names of one directory are always in one part
            got = {(a, b) for a, b in got if parent(a) == parent(b)}
            want = {(a, b) for a, b in want if parent(a) == parent(b)}
        assert got == want, "%s hard-link pairs differ from the source's: missing %s, extra %s" % (
            name, sorted(want - got)[:5], sorted(got - want)[:5])


class UniqueTimes:
    """Nanosecond times in the past that the model never hands out twice (see the module docstring)."""

    def __init__(self):
        self.next = 1_500_000_000 * 10 ** 9

    def take(self, offset):
        self.next -= 1_000_003 + offset
        return self.next


class EngineModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.world = Path(tempfile.mkdtemp(prefix="efs-model-"))
        self.engine = Engine(self.world)
        self.src = os.fsencode(self.engine.source)
        self.canary = os.fsencode(str(self.world / "canary"))
        self.times = UniqueTimes()
        self.runs = {}  # run_id -> Recorded
        self.sequence = {interval: [] for interval in INTERVALS}  # interval -> run_ids, newest first
        self.unreadable = []  # directories the model made unreadable (relative, bytes)
        self.last_seconds = 0.5
        self.running = True  # a run (or the set-up) is under way: it did not finish if teardown sees this
        # Every engine run of the model overlaps its latency-bound calls through the thread pool, as on EFS
        # (engine parallel.py); the other engine tests run on local disks, where those calls stay inline.
        os.environ["EFS_BACKUP_OVERLAP_ALWAYS"] = "1"

    def teardown(self):
        """Every example ends with a run of the changes made since its last run (unless a step failed)."""
        try:
            if not self.running:
                self.backup("daily", workers=2, unit_files=1, retain=2)
        finally:
            os.environ.pop("EFS_BACKUP_OVERLAP_ALWAYS", None)
            event("runs per example: %d" % min(len(self.runs), 20))  # shown by --hypothesis-show-statistics
            shutil.rmtree(self.world, ignore_errors=True)
            if os.environ.get("EFS_SOAK_LOG"):  # a soak's running count of finished examples (README)
                with open(os.environ["EFS_SOAK_LOG"], "a") as log:
                    log.write("example runs=%d ok=%s\n" % (len(self.runs), not self.running))

    # -- the world ------------------------------------------------------------------------------------------
    @initialize()
    def build(self):
        os.makedirs(os.path.join(self.canary, b"sub"))
        for rel, data in ((b"victim", b"outside every tree\n"), (b"sub/deep", b"deeper outside\n")):
            with open(os.path.join(self.canary, rel), "wb") as handle:
                handle.write(data)
        self.canary_before = fingerprint(self.canary)
        # A first tree on the corpus's names, so later changes hit names the recycled trees hold.
        self._write(KEEP, b"always here\n")
        self._write(b"a", b"a file\n")
        os.mkdir(self._abs(b"b"))
        self._write(b"b/c d", b"file in a directory\n")
        os.link(self._abs(b"b/c d"), self._abs(b"b/p => q"))
        os.symlink(b"b", self._abs(b"x -> y"))
        os.symlink(os.path.join(self.canary, b"sub"), self._abs(b"-dash"))
        # Enough runs that each interval has a spare: from here on every run recycles an expired snapshot (the
        # tree as it was at a run before the changes that follow), the path where issue 10's defects live.
        for interval, retain in (("daily", 2), ("hourly", 1)):
            for _ in range(retain + 1):
                self.backup(interval, workers=1, unit_files=None, retain=retain)
        self.running = False

    def _abs(self, rel):
        return os.path.join(self.src, rel)

    def _write(self, rel, data):
        with open(self._abs(rel), "wb") as handle:
            handle.write(data)

    def entries(self, kind=None):
        """Sorted relative paths of the source (KEEP excluded), optionally of one stat type."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.src):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.src)
                if rel == KEEP:
                    continue
                if kind is None or stat.S_IFMT(os.lstat(path).st_mode) == kind:
                    out.append(rel)
        return sorted(out)

    def dirs(self):
        return [b""] + [d for d in self.entries(stat.S_IFDIR) if d.count(b"/") + 1 < MAX_DEPTH]

    @staticmethod
    def pick(items, index):
        return items[index % len(items)] if items else None

    def small(self):
        return len(self.entries()) < MAX_ENTRIES

    # -- source changes -------------------------------------------------------------------------------------
    @precondition(lambda self: self.small())
    @rule(where=st.integers(0, 50), name=st.sampled_from(NAMES), kind=st.sampled_from(KINDS),
          other=st.integers(0, 50), data=st.binary(max_size=64))
    def create(self, where, name, kind, other, data):
        """Create an entry of any kind under any directory; if the name exists, this replaces it."""
        self._make(os.path.join(self.pick(self.dirs(), where), name), kind, other, data)

    @rule(which=st.integers(0, 50), kind=st.sampled_from(KINDS), other=st.integers(0, 50),
          data=st.binary(max_size=64))
    def change_type(self, which, kind, other, data):
        """Replace an existing entry (file, directory, symlink, FIFO, device, hard-link member) by any kind."""
        rel = self.pick(self.entries(), which)
        if rel is not None:
            self._make(rel, kind, other, data)

    def _make(self, rel, kind, other, data):
        path = self._abs(rel)
        if os.path.lexists(path):
            remove(path)
        targets = [e for e in self.entries() if e != rel and not e.startswith(rel + b"/")]
        target = self.pick(targets, other)
        if kind == "file" or (kind == "hardlink" and not self.entries(stat.S_IFREG)) or \
                (kind == "device" and not IS_ROOT):
            self._write(rel, data)
        elif kind == "dir":
            os.mkdir(path)
            self._write(os.path.join(rel, b"inner"), data)
        elif kind == "symlink-in-relative":
            os.symlink(os.path.relpath(self._abs(target or KEEP), os.path.dirname(path)), path)
        elif kind == "symlink-in-absolute":
            os.symlink(self._abs(target or KEEP), path)
        elif kind == "symlink-out-absolute":
            os.symlink(os.path.join(self.canary, self.pick([b"", b"sub", b"victim", b"sub/deep"], other)), path)
        elif kind == "symlink-out-relative":
            # enough '..' to reach / from any depth of any tree (source, work tree, snapshot), then the canary
            os.symlink(b"../" * 20 + self.canary.lstrip(b"/") + self.pick([b"", b"/sub", b"/victim"], other), path)
        elif kind == "symlink-dangling":
            os.symlink(b"no such target " + os.path.basename(rel), path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        elif kind == "hardlink":
            os.link(self._abs(self.pick(self.entries(stat.S_IFREG), other)), path)

    @rule(which=st.integers(0, 50), seed=st.integers(0, 255), back=st.integers(0, 10 ** 6))
    def edit_same_size_mtime_set_back(self, which, seed, back):
        rel = self.pick(self.entries(stat.S_IFREG), which)
        if rel is None:
            return
        path = self._abs(rel)
        with open(path, "rb") as handle:
            data = handle.read()
        with open(path, "r+b") as handle:
            handle.write(bytes((byte + seed + 1) % 256 for byte in data))
        when = self.times.take(back)
        os.utime(path, ns=(when, when))

    @rule(which=st.integers(0, 50), data=st.binary(min_size=1, max_size=32))
    def append(self, which, data):
        rel = self.pick(self.entries(stat.S_IFREG), which)
        if rel is not None:
            with open(self._abs(rel), "ab") as handle:
                handle.write(data)

    @rule(which=st.integers(0, 50), mode=st.integers(0, 7))
    def chmod(self, which, mode):
        rel = self.pick([e for e in self.entries() if not os.path.islink(self._abs(e))], which)
        if rel is not None:
            is_dir = os.path.isdir(self._abs(rel))
            os.chmod(self._abs(rel), self.pick(DIR_MODES if is_dir else FILE_MODES, mode))

    @rule(which=st.integers(0, 50), uid=st.sampled_from(OWNERS), gid=st.sampled_from(OWNERS))
    def chown(self, which, uid, gid):
        rel = self.pick(self.entries(), which)
        if rel is not None and IS_ROOT:
            os.chown(self._abs(rel), uid, gid, follow_symlinks=False)

    @rule(which=st.integers(0, 50), back=st.integers(0, 10 ** 9))
    def utime(self, which, back):
        rel = self.pick(self.entries(), which)
        if rel is not None:
            when = self.times.take(back)
            os.utime(self._abs(rel), ns=(when, when), follow_symlinks=False)

    @rule(which=st.integers(0, 50), where=st.integers(0, 50), name=st.sampled_from(NAMES))
    def rename(self, which, where, name):
        rel = self.pick(self.entries(), which)
        if rel is None:
            return
        new = os.path.join(self.pick([d for d in self.dirs() if d != rel and not d.startswith(rel + b"/")], where),
                           name)
        if not os.path.lexists(self._abs(new)):
            os.rename(self._abs(rel), self._abs(new))

    @rule(which=st.integers(0, 50))
    def delete(self, which):
        rel = self.pick(self.entries(), which)
        if rel is not None:
            remove(self._abs(rel))

    @rule(which=st.integers(0, 50))
    def split_hard_link(self, which):
        """cp -p member member.t; mv member.t member: the name leaves its group."""
        members = [e for e in self.entries(stat.S_IFREG) if os.lstat(self._abs(e)).st_nlink > 1]
        rel = self.pick(members, which)
        if rel is not None:
            tmp = self._abs(rel) + b".split-tmp"
            shutil.copy2(self._abs(rel), tmp)
            st_ = os.lstat(self._abs(rel))
            os.chown(tmp, st_.st_uid, st_.st_gid)
            os.chmod(tmp, stat.S_IMODE(st_.st_mode))
            os.rename(tmp, self._abs(rel))

    @rule(first=st.integers(0, 50), second=st.integers(0, 50))
    def merge_hard_link(self, first, second):
        """ln -f a b: b joins a's group."""
        files = self.entries(stat.S_IFREG)
        a, b = self.pick(files, first), self.pick(files, second)
        if a is not None and a != b and os.lstat(self._abs(a)).st_ino != os.lstat(self._abs(b)).st_ino:
            os.unlink(self._abs(b))
            os.link(self._abs(a), self._abs(b))

    @precondition(lambda self: self.small())
    @rule(where=st.integers(0, 50), mode=st.sampled_from([0o000, 0o311, 0o644]))
    def unreadable_directory(self, where, mode):
        """A directory (with a file) that root without the read-override capabilities cannot list or search."""
        rel = os.path.join(self.pick(self.dirs(), where), b"locked%d" % len(self.unreadable))
        os.mkdir(self._abs(rel))
        self._write(os.path.join(rel, b"secret"), b"only root with CAP_DAC_READ_SEARCH reads this\n")
        os.chmod(self._abs(rel), mode)
        self.unreadable.append(rel)

    # -- runs -----------------------------------------------------------------------------------------------
    def _command(self, interval, workers, unit_files, retain, extra=()):
        command = ["backup", "--source", self.engine.source, "--backup-root", self.engine.root, "--id", "prod",
                   "--interval", interval, "--retain", retain, "--workers", workers, "--json", "--quiet"]
        if unit_files:
            command += ["--unit-files", unit_files]
        return command + list(extra)

    def _run(self, interval, workers, unit_files, retain, extra=()):
        started = time.time()
        proc = self.engine.cli(*self._command(interval, workers, unit_files, retain, extra))
        self.last_seconds = time.time() - started
        lines = proc.stdout.decode().strip().splitlines()
        summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
        return proc, summary

    def _expect_success(self, proc, summary):
        if proc.returncode == 0 and summary and summary["status"] == "success":
            return
        shown = {key: (summary or {}).get(key) for key in ("status", "failed_parts", "warning_parts")}
        raise AssertionError("the run must succeed: exit %d, %s; stderr: %s" % (
            proc.returncode, json.dumps(shown)[:3000], proc.stderr.decode("utf-8", "replace")[-1500:]))

    def _promoted(self, interval):
        """run_ids of the interval's snapshots, newest first, from their manifests."""
        names = [n for n in self.engine.snapshots() if n.startswith(interval + ".")]
        names.sort(key=lambda n: int(n.split(".")[1]))
        assert names == ["%s.%d" % (interval, i) for i in range(len(names))], names
        ids = []
        for name in names:
            with open(self.engine.state("manifests", name + ".json")) as handle:
                ids.append(json.load(handle)["run_id"])
        return ids

    def _settle(self, interval, retain, run_id, recorded, killed=False):
        """The interval's snapshots must be the new run's (and, after a kill, possibly the killed run's, which saw
        the same source), then the previous ones, cut at the retention; then everything is checked."""
        actual = self._promoted(interval)
        fresh = [r for r in actual if r not in self.runs]
        assert fresh[:1] == [run_id], "the new run's snapshot must be %s.0: %s" % (interval, actual)
        assert len(fresh) <= (2 if killed else 1), "unknown snapshots: %s" % fresh
        for new in fresh:
            self.runs[new] = recorded
        expected = (fresh + self.sequence[interval])[:retain]
        assert actual == expected, "%s snapshots are %s, expected %s" % (interval, actual, expected)
        self.sequence[interval] = actual
        self.check()
        self.running = False

    def check(self):
        for interval in INTERVALS:
            assert self._promoted(interval) == self.sequence[interval], (
                "the %s snapshots changed without a successful run: %s, expected %s"
                % (interval, self._promoted(interval), self.sequence[interval]))
            for index, run_id in enumerate(self.sequence[interval]):
                name = "%s.%d" % (interval, index)
                self.runs[run_id].check(name, self.engine.snapshot(name))
        assert not diff(self.canary_before, fingerprint(self.canary)), "the canary outside every tree changed"
        assert not os.path.exists(self.engine.state("lock")), "the lock is released after every run"

    @rule(interval=st.sampled_from(INTERVALS), workers=st.integers(1, 4), unit_files=st.sampled_from([None, 1, 2, 3]),
          retain=st.integers(1, 4))
    def backup(self, interval, workers, unit_files, retain):
        self.running = True
        recorded = Recorded(self.src, single_part=(workers == 1 and unit_files is None))
        proc, summary = self._run(interval, workers, unit_files, retain)
        self._expect_success(proc, summary)
        self._settle(interval, retain, summary["run_id"], recorded)
        # the engine's own verify agrees (no false alarm: the source has not changed since the run)
        verify = self.engine.cli("verify", "--source", self.engine.source, "--backup-root", self.engine.root, "--id",
                                 "prod", "--snapshot", "%s.0" % interval, "--checksum", "full", "--json")
        assert verify.returncode == 0, "verify: exit %d %s %s" % (verify.returncode, verify.stdout.decode()[-2000:],
                                                                 verify.stderr.decode()[-1000:])

    @rule(interval=st.sampled_from(INTERVALS), workers=st.integers(1, 4), unit_files=st.sampled_from([None, 1, 2]),
          retain=st.integers(1, 4), when=st.floats(0, 1.2))
    def backup_killed_then_rerun(self, interval, workers, unit_files, retain, when):
        """SIGKILL the whole run (all its processes) at a random instant; the rerun must complete. The source does
        not change in between, so every snapshot either run promotes equals the same recorded state."""
        self.running = True
        recorded = Recorded(self.src, single_part=(workers == 1 and unit_files is None))
        command = [sys.executable, ENGINE] + [str(a) for a in self._command(interval, workers, unit_files, retain)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(when * self.last_seconds)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not diff(self.canary_before, fingerprint(self.canary)), "the canary changed during a killed run"
        rerun, summary = self._run(interval, workers, unit_files, retain)
        self._expect_success(rerun, summary)
        self._settle(interval, retain, summary["run_id"], recorded, killed=True)

    @precondition(lambda self: IS_ROOT and self.unreadable)
    @rule(interval=st.sampled_from(INTERVALS), workers=st.integers(1, 2), unit_files=st.sampled_from([None, 1]),
          retain=st.integers(1, 4))
    def backup_without_read_override(self, interval, workers, unit_files, retain):
        self.running = True
        probe = subprocess.run(WITHOUT_READ_OVERRIDE + [sys.executable, "-c", PROBE, self.engine.source],
                               stdout=subprocess.PIPE, check=True)
        unreadable = [bytes.fromhex(h) for h in json.loads(probe.stdout)]
        single = workers == 1 and unit_files is None
        recorded = Recorded(self.src, single_part=single, unreadable=unreadable)
        # README ("Read errors never delete anything"): an unreadable directory's copy is the newest snapshot's
        # copy (empty if it has none); which newest is not pinned down here: any interval's newest is accepted.
        newest = [self.engine.snapshot("%s.0" % iv) for iv in INTERVALS if self.sequence[iv]]
        copies = {rel: [subtree(os.path.join(os.fsencode(snap), rel)) for snap in newest] or [{}]
                  for rel in recorded.unreadable_dirs}
        self.engine.wrapper = WITHOUT_READ_OVERRIDE
        try:
            proc, summary = self._run(interval, workers, unit_files, retain)
        finally:
            self.engine.wrapper = []
        assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr.decode()[-3000:])
        if proc.returncode == 1:
            # failed honestly: nothing promoted; a privileged rerun that redoes every part must succeed
            self.check()
            recorded = Recorded(self.src, single_part=single)
            rerun, summary = self._run(interval, workers, unit_files, retain, extra=("--resume-max-age", "0"))
            self._expect_success(rerun, summary)
            self._settle(interval, retain, summary["run_id"], recorded)
            return
        if recorded.unreadable_dirs:
            assert summary["status"] == "warning", "unreadable directories must not give a clean success: %s" % (
                json.dumps(summary)[:2000],)
        text = json.dumps(summary)
        for rel in recorded.unreadable_dirs:
            name = os.path.basename(rel)
            if name.startswith(b"locked"):  # names the model chose plain, so any quoting shows them verbatim
                assert name.decode() in text, "the summary must name the unreadable %r: %s" % (rel, text[:2000])
        self._settle(interval, retain, summary["run_id"], recorded)
        snapshot = os.fsencode(self.engine.snapshot("%s.0" % interval))
        for rel, candidates in copies.items():
            got = subtree(os.path.join(snapshot, rel))
            assert got in candidates, "unreadable %r must hold the newest snapshot's copy: got %s, expected one of %s" \
                % (rel, sorted(got)[:10], [sorted(c)[:10] for c in candidates])
        # An unreadable file is missing (rsync could not open it), or it is there exactly as in the source: its
        # metadata matched a copy the engine kept or linked without reading it (rsync's quick-check rule).
        held = listing(snapshot)
        for rel, meta in recorded.unreadable_files.items():
            assert rel not in held or held[rel] == meta, "unreadable file %r must be missing or exact: %s != %s" % (
                rel, held.get(rel), meta)


EngineModel.TestCase.settings = settings()  # the profile loaded by conftest.py or --hypothesis-profile
TestEngineModel = EngineModel.TestCase
