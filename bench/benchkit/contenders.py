"""The backup methods run_bench compares, each with its own destination, and how to read the engine's output:

  (a) Engine  assets/scripts/efs-backup-engine backup ... --json (after one ``init``)
  (b) Old     bench/old_rotate_sync.sh (rm -rf oldest, mv rotate, cp -al .0 .1, rsync --delete, touch)
  (c) Mirror  rsync -a --delete --numeric-ids SRC/ MIRROR/  (the floor: no history)
"""

import json
import os
import subprocess
import sys

from benchkit import BENCH_DIR

BACKUP_ID = "bench"
INTERVAL = "daily"


class Contender(object):
    key = "?"
    label = "?"
    history = True

    def __init__(self, work, src, retain):
        self.work = work
        self.src = src
        self.retain = retain
        self.runs = []          # per round dicts

    def setup(self):
        pass

    def cmd(self):
        raise NotImplementedError

    def ok(self, rc):
        return rc == 0

    def snapshot_dir(self, k):
        raise NotImplementedError

    def extra_info(self, proc):
        return {}


class Engine(Contender):
    key = "a"
    label = "(a) efs-backup engine"

    def __init__(self, work, src, retain, engine, workers=1, root_name="engine"):
        Contender.__init__(self, work, src, retain)
        self.engine = engine
        self.workers = workers
        self.root = os.path.join(work, root_name)

    def base(self):
        return engine_argv(self.engine)

    def setup(self):
        os.makedirs(self.root, exist_ok=True)
        r = subprocess.run(self.base() + ["init", "--backup-root", self.root],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode != 0:
            raise SystemExit("engine init failed (rc %d): %s%s" % (r.returncode, r.stdout, r.stderr))

    def cmd(self):
        return self.base() + ["backup", "--source", self.src, "--backup-root", self.root,
                              "--id", BACKUP_ID, "--interval", INTERVAL,
                              "--retain", str(self.retain), "--workers", str(self.workers),
                              "--json"]

    def ok(self, rc):
        return rc in (0, 2)

    def snapshot_dir(self, k):
        return os.path.join(self.root, BACKUP_ID, "%s.%d" % (INTERVAL, k))

    def extra_info(self, proc):
        summ = parse_engine_summary(proc.stdout)
        info = {"summary": summ}
        if summ:
            info["engine"] = engine_figures(summ)
        crash = stderr_problem(proc.stderr)
        if crash:
            info["stderr_problem"] = crash
        return info


class Old(Contender):
    key = "b"
    label = "(b) old rotate+sync"

    def __init__(self, work, src, retain):
        Contender.__init__(self, work, src, retain)
        self.dest = os.path.join(work, "old", BACKUP_ID)

    def cmd(self):
        return ["bash", os.path.join(BENCH_DIR, "old_rotate_sync.sh"), "--source", self.src,
                "--dest", self.dest, "--interval", INTERVAL, "--retain", str(self.retain)]

    def snapshot_dir(self, k):
        return os.path.join(self.dest, "%s.%d" % (INTERVAL, k))


class Mirror(Contender):
    key = "c"
    label = "(c) rsync mirror (floor)"
    history = False

    def __init__(self, work, src, retain):
        Contender.__init__(self, work, src, retain)
        self.dest = os.path.join(work, "mirror")

    def cmd(self):
        return ["rsync", "-a", "--delete", "--numeric-ids", self.src + "/", self.dest + "/"]

    def snapshot_dir(self, k):
        return self.dest if k == 0 else None


def engine_argv(engine):
    """How to call the engine: with the interpreter running the bench (as latency_bench.py does), not through its
    `#!/usr/bin/env python3` line. On the workers that line finds /usr/bin/python3 at once; on a machine with a
    Python version manager it runs the manager's shim first (pyenv: about 50 ms of shell a run), time that is no
    part of the engine and that rsync, the floor, does not pay."""
    return [sys.executable, engine]


def engine_figures(summ):
    """What the report shows of one engine run's --json summary."""
    ws = summ.get("workers") or []
    return {
        "status": summ.get("status"),
        "duration_seconds": summ.get("duration_seconds"),
        "parts": summ.get("parts"),
        "unit_seconds": sum(float(w.get("seconds") or 0) for w in ws),
        "totals": summ.get("totals"),
    }


def stderr_problem(stderr):
    """The last line of a Python traceback in the engine's stderr (e.g. a crashed worker), else None."""
    if "Traceback (most recent call last)" not in (stderr or ""):
        return None
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback"):
            for ln in lines[i + 1:]:
                if not ln.startswith(" "):
                    return ln.strip()[:300]
    return "traceback"


def parse_engine_summary(stdout):
    """The engine's --json summary: the last stdout line that parses as a JSON object."""
    for line in reversed((stdout or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None
