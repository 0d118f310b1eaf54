#!/usr/bin/env python3
"""efs-backup benchmark: this engine vs the old rotate-then-sync scripts vs a plain rsync mirror.

One command, one run, side by side on the same deterministic source sequence:

    python3 bench/run_bench.py                 # 100,000 files, 1% changed per round, retain 3
    python3 bench/run_bench.py --files 2000    # smoke size, well under 30 s

Contenders, each with its own backup destination, all fed the same source after every round:
  (a) engine  assets/scripts/efs-backup-engine backup --source SRC --backup-root ROOT --id bench
              --interval daily --retain R --workers 1 --json
  (b) old     bench/old_rotate_sync.sh (rm -rf oldest, mv rotate, cp -al .0 .1, rsync --delete, touch)
  (c) mirror  rsync -a --delete --numeric-ids SRC/ MIRROR/  (the floor: no history)

Round 0 is the initial full copy; then ``--warmup`` incremental rounds bring every contender to
steady state (the old algorithm expires its oldest snapshot from incremental round ``retain`` on);
then ``--rounds`` measured rounds alternate: odd ones run under strace (namespace-write counts, see
syscount.py), even ones without strace (wall time).  After the last round every snapshot daily.k of
(a) and (b) is compared with the source listing of round (last - k), metadata and content.
Balance: a skewed tree (one top-level directory with ``--skew`` of the files) backed up by the
engine with 4 workers, and the old ``line number mod 4`` split of its top-level listing.

Python 3.9+, stdlib only.  Writes bench/results/latest.md and latest.json.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import syscount  # noqa: E402
import treegen  # noqa: E402

MARKER = ".efs-backup-bench-workdir"
FOREIGN = []        # per timed run: (CPU s used by everything else, wall s x cores) -- is the machine busy?
try:
    NCPU = len(os.sched_getaffinity(0))
except AttributeError:
    NCPU = os.cpu_count() or 1
BACKUP_ID = "bench"
INTERVAL = "daily"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine info

def _first_line(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except OSError:
        return "not found"


def fs_type(path):
    """(fstype, mount point, device) of the file system holding ``path``, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("?", "?", "?")
    best_len = -1
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, typ = line.split()[:3]
                mnt = mnt.encode().decode("unicode_escape")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best_len:
                    best, best_len = (typ, mnt, dev), len(mnt)
    except OSError:
        pass
    return best


def machine_info(workdir):
    typ, mnt, dev = fs_type(workdir)
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return {
        "nproc": ncpu,
        "memory": mem,
        "kernel": platform.release(),
        "rsync": _first_line(["rsync", "--version"]),
        "strace": _first_line([syscount.STRACE, "-V"]),
        "python": platform.python_version(),
        "workdir": workdir,
        "fs_type": typ,
        "fs_mount": mnt,
        "fs_device": dev,
        "user": "root" if treegen.IS_ROOT else "uid %d" % os.geteuid(),
        "commit": repo_commit(),
    }


def export_engine(rev, work):
    """git archive REV assets/scripts into WORK/engine-src; returns (engine path, description)."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev + "^{commit}"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.strip()
    dest = os.path.join(work, "engine-src")
    os.makedirs(dest)
    archive = subprocess.Popen(["git", "-C", REPO, "archive", sha, "assets/scripts"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", dest], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise SystemExit("git archive %s assets/scripts failed" % sha)
    return (os.path.join(dest, "assets", "scripts", "efs-backup-engine"),
            "%s (engine exported from this commit with --engine-rev %s)" % (sha, rev))


def repo_commit():
    """HEAD of the repository, and whether the engine's files differ from it (work in progress)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "assets/scripts"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.strip()
    except OSError:
        return "?"
    if not head:
        return "?"
    return head + (" (assets/scripts has uncommitted changes)" if dirty else "")


# ----------------------------------------------------------------------------- contenders

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
            ws = summ.get("workers") or []
            info["engine"] = {
                "status": summ.get("status"),
                "duration_seconds": summ.get("duration_seconds"),
                "parts": summ.get("parts"),
                "unit_seconds": sum(float(w.get("seconds") or 0) for w in ws),
                "totals": summ.get("totals"),
            }
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
        return ["bash", os.path.join(HERE, "old_rotate_sync.sh"), "--source", self.src,
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
    """How to call the engine: directly if executable, else through its #! interpreter."""
    if os.access(engine, os.X_OK):
        return [engine]
    with open(engine, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    if first.startswith("#!"):
        return shlex.split(first[2:]) + [engine]
    return [sys.executable, engine]


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


def run_plain(cmd):
    """Run without strace; returns (rc, wall seconds, cpu seconds of children, proc)."""
    os.sync()                                   # earlier writeback must not bill this run
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = _busy_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    wall = time.perf_counter() - t0
    b1 = _busy_cpu_seconds()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if b0 is not None and b1 is not None and wall > 0:
        # CPU that other processes on the machine used meanwhile, as a share of all cores
        FOREIGN.append((max(0.0, (b1 - b0) - cpu), wall * NCPU))
    return proc.returncode, wall, cpu, proc


def _busy_cpu_seconds():
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    v = [int(x) for x in parts[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]     # user nice system irq softirq steal
    return busy / float(os.sysconf("SC_CLK_TCK"))


def run_contender(c, rnd, phase, trace_dir):
    cmd = c.cmd()
    rec = {"round": rnd, "phase": phase}
    if phase == "strace":
        os.sync()
        t0 = time.perf_counter()
        rc, counts, proc = syscount.run_counted(
            cmd, trace_file=os.path.join(trace_dir, "%s-r%03d.txt" % (c.key, rnd)))
        rec["wall_strace"] = time.perf_counter() - t0
        rec["writes"] = counts
    else:
        rc, wall, cpu, proc = run_plain(cmd)
        rec["wall"] = wall
        rec["cpu"] = cpu
    rec["rc"] = rc
    rec.update(c.extra_info(proc))
    if not c.ok(rc):
        raise SystemExit("%s failed in round %d (rc %d)\ncmd: %s\nstdout: %s\nstderr: %s" % (
            c.label, rnd, rc, " ".join(map(shlex.quote, cmd)), proc.stdout[-3000:],
            proc.stderr[-3000:]))
    c.runs.append(rec)
    return rec


# ----------------------------------------------------------------------------- balance

def old_split(lst, workers):
    """The old scripts' split: top-level names in listing order, entry i to worker i mod N.

    Returns per worker [files, bytes] (files = non-directory entries below the name)."""
    tops = sorted({rel.split("/", 1)[0] for rel in lst if rel != "."},
                  key=lambda s: s.encode("utf-8", "surrogateescape"))
    index = {name: i % workers for i, name in enumerate(tops)}
    per = [[0, 0] for _ in range(workers)]
    for rel, e in lst.items():
        if rel == "." or e.type == "d":
            continue
        w = index[rel.split("/", 1)[0]]
        per[w][0] += 1
        per[w][1] += e.size
    return per


def max_over_ideal(values, n=None):
    """Largest share / ideal share; ``n`` workers (missing workers did no work)."""
    n = n or len(values)
    tot = sum(values)
    if not values or tot <= 0:
        return None
    return max(values) / (tot / float(n))


def balance(args, engine_path, work):
    """Skewed tree, 4 workers: the engine's per-worker figures and the old mod-N split."""
    src = os.path.join(work, "skew-src")
    log("balance: generating skewed tree (%d files, %.0f%% in big/)" % (args.skew_files, args.skew * 100))
    info = treegen.generate(src, args.skew_files, args.seed, skew=args.skew)
    lst = treegen.listing(src)
    per = old_split(lst, args.workers)
    out = {"tree": info, "workers": args.workers, "skew": args.skew,
           "old": {"files": [p[0] for p in per], "bytes": [p[1] for p in per],
                   "files_ratio": max_over_ideal([p[0] for p in per]),
                   "bytes_ratio": max_over_ideal([p[1] for p in per])}}
    big = [v for k, v in lst.items() if k.startswith("big/") and v.type != "d"]
    nall, ball = treegen.tree_totals(lst)
    out["big_share_files"] = len(big) / float(nall)
    out["big_share_bytes"] = sum(e.size for e in big) / float(ball)
    if engine_path is None:
        return out
    eng = Engine(work, src, args.retain, engine_path, workers=args.workers, root_name="skew-root")
    eng.setup()
    runs = []
    for rnd in (0, 1):
        if rnd:
            treegen.mutate(src, args.change, args.seed, 1)
        rc, wall, cpu, proc = run_plain(eng.cmd())
        if not eng.ok(rc):
            raise SystemExit("engine (4 workers, skewed tree) failed rc %d: %s%s" % (
                rc, proc.stdout[-3000:], proc.stderr[-3000:]))
        summ = parse_engine_summary(proc.stdout) or {}
        ws = summ.get("workers") or []
        log("balance: engine %s run, %d workers: %.2fs, status %s, %d workers reported" % (
            "full" if rnd == 0 else "incremental", args.workers, wall, summ.get("status"), len(ws)))

        def col(name):
            return [float(w.get(name) or 0) for w in ws]
        run = {"run": "full" if rnd == 0 else "incremental", "wall": wall, "status": summ.get("status"),
               "workers": ws, "parts": summ.get("parts"), "stderr_problem": stderr_problem(proc.stderr)}
        for name in ("files_scanned", "files_transferred", "bytes_transferred", "seconds", "units"):
            vals = col(name)
            run[name] = vals
            run[name + "_ratio"] = max_over_ideal(vals, args.workers)
        run["workers_reporting"] = len(ws)
        runs.append(run)
    if args.verify_balance:
        snap = treegen.listing(eng.snapshot_dir(0))
        out["engine_snapshot_ok"] = treegen.compare(treegen.listing(src), snap)["ok"]
    out["engine"] = runs
    return out


# ----------------------------------------------------------------------------- report

def fmt_int(x):
    return "-" if x is None else "{:,}".format(int(round(x)))


def fmt_f(x, nd=2):
    return "-" if x is None else ("%." + str(nd) + "f") % x


def yes(b):
    return "n/a" if b is None else ("**yes**" if b else "**NO**")


def summarize_runs(c):
    st = [r for r in c.runs if r["phase"] == "strace"]
    tm = [r for r in c.runs if r["phase"] == "time"]
    out = {"strace_rounds": [r["round"] for r in st], "time_rounds": [r["round"] for r in tm]}
    if st:
        out["writes_mean"] = statistics.mean(r["writes"]["total"] for r in st)
        out["ns_mean"] = statistics.mean(r["writes"]["ns"] for r in st)
        out["attr_mean"] = statistics.mean(r["writes"]["attr"] for r in st)
        out["writes_min"] = min(r["writes"]["total"] for r in st)
        out["writes_max"] = max(r["writes"]["total"] for r in st)
        calls = {}
        for r in st:
            for k, v in r["writes"]["calls"].items():
                calls[k] = calls.get(k, 0) + v
        out["calls_mean"] = {k: v / float(len(st)) for k, v in sorted(calls.items())}
        out["failed_mean"] = statistics.mean(r["writes"]["failed"] for r in st)
    if tm:
        out["wall_median"] = statistics.median(r["wall"] for r in tm)
        out["wall_min"] = min(r["wall"] for r in tm)
        out["wall_max"] = max(r["wall"] for r in tm)
        out["cpu_median"] = statistics.median(r["cpu"] for r in tm)
    return out


def render(res):
    L = []
    a = res["args"]
    m = res["machine"]
    L.append("# efs-backup benchmark results")
    L.append("")
    L.append("Command: `%s`  " % res["command"])
    L.append("Date: %s, total runtime %.0f s" % (res["date"], res["runtime"]))
    L.append("")
    L.append("| machine | |")
    L.append("|---|---|")
    L.append("| nproc / memory | %s / %s |" % (m["nproc"], m["memory"]))
    L.append("| kernel | %s |" % m["kernel"])
    L.append("| rsync | %s |" % m["rsync"])
    L.append("| strace / python | %s / %s |" % (m["strace"], m["python"]))
    L.append("| bench dir | `%s` on %s (%s, mounted at %s)%s |" % (
        m["workdir"], m["fs_type"], m["fs_device"], m["fs_mount"],
        " -- **tmpfs: RAM, not a disk**" if m["fs_type"] == "tmpfs" else ""))
    L.append("| user | %s |" % m["user"])
    fc = res.get("foreign_cpu") or {}
    if fc.get("share") is not None:
        L.append("| CPU used outside the measured command during timed runs (other processes and kernel "
                 "threads such as writeback) | %.0f%% of all cores%s |" % (
                     fc["share"] * 100, " -- **busy machine: wall times are noisy**"
                     if fc["share"] > 0.15 else ""))
    L.append("| repo commit | %s%s |" % (m.get("commit", "?"), (", engine_version %s" % res["engine_version"])
                                         if res.get("engine_version") else ""))
    t = res["tree"]
    L.append("")
    L.append("Source tree (seed %d): %s files, %s symlinks, %s directories, %.0f MiB; "
             "%s top-level directories.  Each round changes %.2f%% of the files "
             "(mean %s changes/round: edits, appends, creates, deletes, renames, chmods, chowns).  "
             "Retain %d; warm-up %d incremental rounds, then %d measured rounds "
             "(strace rounds %s, timed rounds %s)." % (
                 a["seed"], fmt_int(t["files"]), fmt_int(t["symlinks"]), fmt_int(t["dirs"]),
                 t["bytes"] / 1048576.0, t["top_level"], a["change"] * 100,
                 fmt_int(res["changes_mean"]), a["retain"], a["warmup"], a["rounds"],
                 res["strace_rounds"], res["time_rounds"]))
    L.append("")
    L.append("## Incremental run in steady state (per run)")
    L.append("")
    L.append("| contender | namespace writes (mean) | ns / attr | min..max | per changed file "
             "| per file in tree | wall s (median) | wall s min..max | CPU s (median) |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for key in ("a", "b", "c"):
        s = res["contenders"].get(key)
        if s is None:
            continue
        w = s.get("writes_mean")
        L.append("| %s | %s | %s / %s | %s..%s | %s | %s | %s | %s..%s | %s |" % (
            s["label"], fmt_int(w), fmt_int(s.get("ns_mean")), fmt_int(s.get("attr_mean")),
            fmt_int(s.get("writes_min")), fmt_int(s.get("writes_max")),
            fmt_f(w / res["changes_mean"] if w is not None and res["changes_mean"] else None),
            fmt_f(w / res["tree_files_mean"] if w is not None else None, 3),
            fmt_f(s.get("wall_median")), fmt_f(s.get("wall_min")), fmt_f(s.get("wall_max")),
            fmt_f(s.get("cpu_median"))))
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| check | value | target | met |")
    L.append("|---|--:|---|---|")
    for row in res["targets"]:
        L.append("| %s | %s | %s | %s |" % (row["check"], row["value"], row["target"], yes(row["met"])))
    L.append("")
    L.append("## Correctness: every snapshot vs the source listing of its round")
    L.append("")
    L.append("Compared per path: presence, type, mode, uid, gid, size, mtime (ns), symlink target, "
             "sha256 of content (the snapshot root's own mtime is ignored).")
    L.append("")
    L.append("| contender | snapshot | source round | equal | mismatches (count by kind) | examples |")
    L.append("|---|---|--:|---|---|---|")
    for v in res["verify"]:
        L.append("| %s | %s | %d | %s | %s | %s |" % (
            v["label"], v["snapshot"], v["round"], yes(v["ok"]),
            ", ".join("%s %d" % kv for kv in sorted(v["counts"].items())) or "-",
            "<br>".join("`%s`" % e.replace("|", "\\|") for e in v["examples"][:3]) or "-"))
    b = res.get("balance")
    if b:
        L.append("")
        L.append("## Balance: skewed tree, %d workers" % b["workers"])
        L.append("")
        bt = b["tree"]
        L.append("Tree: %s files, %.0f MiB; `big/` holds %.0f%% of the files and %.0f%% of the bytes.  "
                 "Ratio = largest worker's share / ideal share (1.00 is perfect)." % (
                     fmt_int(bt["files"]), bt["bytes"] / 1048576.0, b["big_share_files"] * 100,
                     b["big_share_bytes"] * 100))
        L.append("")
        L.append("| split | run | files ratio | bytes ratio | per-worker files | per-worker MiB | "
                 "per-worker seconds | units |")
        L.append("|---|---|--:|--:|---|---|---|---|")
        o = b["old"]
        L.append("| old: top-level `ls` line mod %d | (computed) | %s | %s | %s | %s | - | - |" % (
            b["workers"], fmt_f(o["files_ratio"]), fmt_f(o["bytes_ratio"]),
            " / ".join(fmt_int(x) for x in o["files"]),
            " / ".join("%.0f" % (x / 1048576.0) for x in o["bytes"])))
        for r in b.get("engine", []):
            fkey = "files_transferred" if r["run"] == "full" else "files_scanned"
            L.append("| engine, `--workers %d` | %s (%s; %s parts) | %s | %s | %s | %s | %s | %s |" % (
                b["workers"], r["run"], fkey, fmt_int(r.get("parts")), fmt_f(r.get(fkey + "_ratio")),
                fmt_f(r.get("bytes_transferred_ratio")) if r["run"] == "full" else "-",
                " / ".join(fmt_int(x) for x in r.get(fkey, [])),
                " / ".join("%.1f" % (x / 1048576.0) for x in r.get("bytes_transferred", [])),
                " / ".join("%.1f" % x for x in r.get("seconds", [])),
                " / ".join(fmt_int(x) for x in r.get("units", []))))
        if "engine" not in b:
            L.append("| engine | not run | - | - | - | - | - | - |")
    L.append("")
    L.append("## Namespace-write system calls (mean per strace'd incremental run)")
    L.append("")
    keys = [k for k in ("a", "b", "c") if k in res["contenders"]]
    names = sorted({n for k in keys for n in res["contenders"][k].get("calls_mean", {})})
    L.append("| syscall | " + " | ".join(res["contenders"][k]["label"] for k in keys) + " |")
    L.append("|---|" + "--:|" * len(keys))
    for n in names:
        L.append("| %s | %s |" % (n, " | ".join(
            fmt_int(res["contenders"][k].get("calls_mean", {}).get(n)) for k in keys)))
    L.append("| failed calls (included above) | %s |" % " | ".join(
        fmt_int(res["contenders"][k].get("failed_mean")) for k in keys))
    L.append("")
    eng = [(rr["round"], rr["phase"], rr["runs"]["a"]) for rr in res["rounds"] if "a" in rr["runs"]]
    if eng:
        L.append("## Engine runs in detail (from its --json summary)")
        L.append("")
        L.append("Wall = measured around the command; engine s = its own `duration_seconds`; unit s = sum of "
                 "its parts' rsync seconds.")
        L.append("")
        L.append("| round | phase | wall s | engine s | unit s | parts | files scanned | transferred | deleted |")
        L.append("|--:|---|--:|--:|--:|--:|--:|--:|--:|")
        for rnd, phase, r in eng:
            e = r.get("engine") or {}
            t = e.get("totals") or {}
            wall = fmt_f(r["wall"]) if "wall" in r else "(%s)" % fmt_f(r.get("wall_strace"))
            L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                rnd, phase, wall, fmt_f(e.get("duration_seconds")), fmt_f(e.get("unit_seconds")),
                fmt_int(e.get("parts")), fmt_int(t.get("files_scanned")), fmt_int(t.get("files_transferred")),
                fmt_int(t.get("deleted"))))
        L.append("")
    L.append("## Per round")
    L.append("")
    L.append("| round | phase | changes | files in tree | " + " | ".join(
        "%s writes | %s s" % (k, k) for k in keys) + " |")
    L.append("|--:|---|--:|--:|" + "--:|--:|" * len(keys))
    for rr in res["rounds"]:
        cells = []
        for k in keys:
            r = rr["runs"].get(k, {})
            cells.append(fmt_int(r.get("writes", {}).get("total")) if "writes" in r else "-")
            if "wall" in r:
                cells.append(fmt_f(r["wall"]))
            elif "wall_strace" in r:
                cells.append("(%s)" % fmt_f(r["wall_strace"]))
            else:
                cells.append("-")
        L.append("| %d | %s | %s | %s | %s |" % (rr["round"], rr["phase"], fmt_int(rr["changes"]),
                                                fmt_int(rr["files"]), " | ".join(cells)))
    L.append("")
    L.append("Wall times in parentheses were measured under strace and are not used for ratios.  "
             "\"namespace writes\" = %s." % res["writes_definition"])
    if res.get("notes"):
        L.append("")
        for n in res["notes"]:
            L.append("- " + n)
    return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- main

def remove_tree(path):
    """rm -rf (much faster than shutil.rmtree on trees of hundreds of thousands of files)."""
    if subprocess.run(["rm", "-rf", "--", path]).returncode != 0 or os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def prepare_workdir(path, force):
    if os.path.exists(path):
        if not os.path.exists(os.path.join(path, MARKER)) and os.listdir(path) and not force:
            raise SystemExit("refusing to wipe %s: not a bench workdir (no %s); use --force or another "
                             "--workdir" % (path, MARKER))
        remove_tree(path)
    os.makedirs(path)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("scratch directory of the efs-backup benchmark (bench/); deleted and recreated by every run\n")


def parse_args(argv):
    p = argparse.ArgumentParser(description="efs-backup benchmark (see bench/README.md)")
    p.add_argument("--files", type=int, default=100_000, help="files in the source tree (default 100000)")
    p.add_argument("--change", type=float, default=0.01, help="fraction of files changed per round (0.01)")
    p.add_argument("--retain", type=int, default=3, help="snapshots kept by (a) and (b) (3)")
    p.add_argument("--warmup", type=int, default=None,
                   help="incremental rounds before measuring (default retain: the old algorithm expires from "
                        "incremental round `retain` on, the engine recycles its expired tree from `retain`+1)")
    p.add_argument("--rounds", type=int, default=4,
                   help="measured incremental rounds, alternating strace/timed (default 4, min 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default="/var/tmp/efs-backup-bench",
                   help="scratch directory, wiped at start (default /var/tmp/efs-backup-bench)")
    p.add_argument("--force", action="store_true", help="wipe --workdir even without the bench marker")
    p.add_argument("--keep", action="store_true", help="keep the workdir (trees, snapshots) afterwards")
    p.add_argument("--engine", default=os.path.join(REPO, "assets", "scripts", "efs-backup-engine"))
    p.add_argument("--engine-rev", default=None,
                   help="benchmark the engine as committed at this git revision (e.g. HEAD): its "
                        "assets/scripts are exported into the workdir, so edits in progress do not leak in")
    p.add_argument("--skip-engine", action="store_true", help="run only (b) and (c)")
    p.add_argument("--skew-files", type=int, default=None,
                   help="files in the skewed balance tree (default files/2)")
    p.add_argument("--skew", type=float, default=0.8, help="share of files in the big directory (0.8)")
    p.add_argument("--workers", type=int, default=4, help="workers for the balance test (4)")
    p.add_argument("--no-balance", action="store_true")
    p.add_argument("--verify-balance", action="store_true",
                   help="also check the 4-worker snapshot against the skewed source")
    p.add_argument("--results", default=os.path.join(HERE, "results"),
                   help="where latest.md / latest.json go (default bench/results)")
    a = p.parse_args(argv)
    if a.warmup is None:
        a.warmup = a.retain
    if a.rounds < 2:
        p.error("--rounds must be >= 2 (one strace round and one timed round at least)")
    if a.skew_files is None:
        a.skew_files = max(1000, a.files // 2)
    if a.retain < 1 or a.files < 100:
        p.error("--retain >= 1 and --files >= 100")
    return a


def main(argv=None):
    t_start = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = "python3 bench/run_bench.py" + ("" if not argv else " " + " ".join(map(shlex.quote, argv)))
    work = os.path.abspath(args.workdir)
    prepare_workdir(work, args.force)
    machine = machine_info(work)
    notes = []
    if machine["fs_type"] == "tmpfs":
        notes.append("The bench dir is on tmpfs (RAM): metadata operations are far cheaper than on disk "
                     "or EFS; prefer --workdir on a real disk.")

    syscount.known_syscalls()       # probe strace once, outside any measurement
    engine_path = None
    if args.engine_rev and not args.skip_engine:
        args.engine, machine["commit"] = export_engine(args.engine_rev, work)
    if not args.skip_engine:
        if not os.path.exists(args.engine):
            raise SystemExit("engine not found at %s (use --skip-engine to run (b) and (c) only)" % args.engine)
        engine_path = args.engine
    src = os.path.join(work, "src")
    traces = os.path.join(work, "traces")
    listings = os.path.join(work, "listings")
    os.makedirs(traces)
    os.makedirs(listings)

    contenders = []
    if engine_path:
        contenders.append(Engine(work, src, args.retain, engine_path))
    contenders += [Old(work, src, args.retain), Mirror(work, src, args.retain)]
    for c in contenders:
        c.setup()

    log("generating %d files (seed %d) in %s" % (args.files, args.seed, src))
    tree = treegen.generate(src, args.files, args.seed)
    log("tree: %s" % json.dumps(tree))
    lists = {}
    rounds = []
    total_rounds = args.warmup + args.rounds
    for rnd in range(0, total_rounds + 1):
        if rnd == 0:
            changes = {"changes": 0}
            phase = "full"
        else:
            changes = treegen.mutate(src, args.change, args.seed, rnd)
            if rnd <= args.warmup:
                phase = "warmup"
            else:
                phase = "strace" if (rnd - args.warmup) % 2 == 1 else "time"
        lst = treegen.listing(src)
        treegen.write_listing(lst, os.path.join(listings, "round-%03d.jsonl" % rnd))
        lists[rnd] = lst
        for old in [k for k in lists if k < rnd - args.retain]:
            del lists[old]
        nfiles = treegen.tree_totals(lst)[0]
        rec = {"round": rnd, "phase": phase, "changes": changes["changes"], "mutations": changes,
               "files": nfiles, "runs": {}}
        # rotate the order so no contender always runs first (page cache, writeback)
        order = contenders[rnd % len(contenders):] + contenders[:rnd % len(contenders)]
        for c in order:
            run_phase = phase if phase in ("strace", "time") else "time"
            r = run_contender(c, rnd, run_phase, traces)
            r["phase"] = phase
            rec["runs"][c.key] = {k: v for k, v in r.items() if k != "summary"}
            if c.key == "a" and r.get("summary"):
                rec["engine_status"] = r["summary"].get("status")
            if r.get("stderr_problem"):
                notes.append("round %d: %s printed a Python traceback on stderr: `%s`" % (
                    rnd, c.label, r["stderr_problem"]))
        log("round %d (%s): %d changes, %s" % (rnd, phase, changes["changes"], ", ".join(
            "%s %s" % (k, ("%d writes" % v["writes"]["total"]) if "writes" in v else "%.2fs" % v["wall"])
            for k, v in sorted(rec["runs"].items()))))
        rounds.append(rec)
    last = total_rounds

    # correctness
    log("verifying snapshots")
    verify = []
    skip = (".efs-backup",)
    for c in contenders:
        for k in range(args.retain if c.history else 1):
            d = c.snapshot_dir(k)
            rnd = last - k
            if rnd not in lists:
                continue
            if d is None or not os.path.isdir(d):
                verify.append({"key": c.key, "label": c.label, "snapshot": "%s.%d" % (INTERVAL, k),
                               "round": rnd, "ok": False, "counts": {"snapshot missing": 1},
                               "examples": []})
                continue
            r = treegen.compare(lists[rnd], treegen.listing(d, skip_top=skip))
            name = "%s.%d" % (INTERVAL, k) if c.history else "mirror"
            verify.append({"key": c.key, "label": c.label, "snapshot": name, "round": rnd,
                           "ok": r["ok"], "counts": r["counts"], "examples": r["examples"]})
        if c.history:
            parent = os.path.dirname(c.snapshot_dir(0))
            extra = sorted(n for n in os.listdir(parent) if n.startswith(INTERVAL + ".")
                           and n not in ["%s.%d" % (INTERVAL, k) for k in range(args.retain)])
            if extra:
                notes.append("%s keeps extra snapshot directories: %s" % (c.label, ", ".join(extra)))

    bal = None
    if not args.no_balance:
        bal = balance(args, engine_path, work)
        for r in bal.get("engine", []):
            if r.get("stderr_problem"):
                notes.append("balance, %s run: the engine printed a Python traceback on stderr (a worker "
                             "crashed?): `%s`" % (r["run"], r["stderr_problem"]))
            if len(r["workers"]) < args.workers:
                notes.append("balance, %s run: only %d of %d workers appear in the engine's summary "
                             "(the others did no unit)" % (r["run"], len(r["workers"]), args.workers))

    # summaries and targets
    measured = [r for r in rounds if r["phase"] in ("strace", "time")]
    res = {
        "command": command,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "args": vars(args),
        "machine": machine,
        "tree": tree,
        "changes_mean": statistics.mean(r["changes"] for r in measured if r["phase"] == "strace"),
        "tree_files_mean": statistics.mean(r["files"] for r in measured if r["phase"] == "strace"),
        "strace_rounds": [r["round"] for r in measured if r["phase"] == "strace"],
        "time_rounds": [r["round"] for r in measured if r["phase"] == "time"],
        "contenders": {},
        "verify": verify,
        "balance": bal,
        "rounds": rounds,
        "foreign_cpu": {"share": (sum(f for f, _ in FOREIGN) / sum(c for _, c in FOREIGN))
                        if FOREIGN and sum(c for _, c in FOREIGN) > 0 else None},
        "writes_definition": syscount_definition(),
        "engine_version": next((c.runs[-1].get("summary") or {}).get("engine_version")
                               for c in contenders if c.key == "a") if engine_path else None,
        "notes": notes,
    }
    for c in contenders:
        s = summarize_runs(c)
        s["label"] = c.label
        res["contenders"][c.key] = s
    res["targets"] = targets(res, args)
    res["runtime"] = time.perf_counter() - t_start
    md = render(res)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.results, "latest.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True, default=str)
    sys.stdout.write(md)
    if not args.keep:
        log("removing %s" % work)
        remove_tree(work)
    return 0


def syscount_definition():
    return ("every call (successful or failed) of mkdir(at), link(at), unlink(at), rename(at/at2), "
            "rmdir, symlink(at), mknod(at), creat, open/openat/openat2 with O_CREAT, chmod/fchmod/"
            "fchmodat, chown/fchown/lchown/fchownat, utime(s)/utimensat/futimesat and the xattr "
            "set/remove calls, by every process of the run (`strace -f`)")


def round_ratios(res, x, y):
    """wall(x) / wall(y) in each timed round (same source state, run back to back)."""
    out = []
    for rr in res["rounds"]:
        if rr["phase"] != "time":
            continue
        rx, ry = rr["runs"].get(x, {}), rr["runs"].get(y, {})
        if rx.get("wall") and ry.get("wall"):
            out.append(rx["wall"] / ry["wall"])
    return out


def targets(res, args):
    C = res["contenders"]
    rows = []
    a, b, c = C.get("a"), C.get("b"), C.get("c")

    def ratio(x, y):
        return None if x is None or y in (None, 0) else x / float(y)
    if a and b:
        r = ratio(b.get("writes_mean"), a.get("writes_mean"))
        rows.append({"check": "(b) writes / (a) writes", "value": "%.1fx" % r if r else "-",
                     "target": ">= 10x (at retain 3)", "met": None if r is None else r >= 10})
    if a and c:
        r = ratio(a.get("writes_mean"), args.retain * c.get("writes_mean", 0))
        rows.append({"check": "(a) writes / (retain x (c) writes)", "value": fmt_f(r),
                     "target": "<= 1", "met": None if r is None else r <= 1})
        per = round_ratios(res, "a", "c")
        r = statistics.median(per) if per else None
        rows.append({"check": "(a) wall / (c) wall (median of per-round ratios: %s; ratio of medians %s)" % (
            ", ".join(fmt_f(x) for x in per), fmt_f(ratio(a.get("wall_median"), c.get("wall_median")))),
            "value": fmt_f(r), "target": "<= 2", "met": None if r is None else r <= 2})
    if b and c:
        r = ratio(b.get("writes_mean"), c.get("writes_mean"))
        rows.append({"check": "(b) writes / (c) writes (context)", "value": "%.1fx" % r if r else "-",
                     "target": "-", "met": None})
        per = round_ratios(res, "b", "c")
        r = statistics.median(per) if per else None
        rows.append({"check": "(b) wall / (c) wall (context, median of per-round ratios)", "value": fmt_f(r),
                     "target": "-", "met": None})
    for key, lab in (("a", "(a)"), ("b", "(b)")):
        vs = [v for v in res["verify"] if v["key"] == key]
        if vs:
            good = sum(1 for v in vs if v["ok"])
            rows.append({"check": "%s snapshots equal the source at their time" % lab,
                         "value": "%d / %d" % (good, len(vs)), "target": "all",
                         "met": good == len(vs)})
    vs = [v for v in res["verify"] if v["key"] == "c"]
    if vs:
        rows.append({"check": "(c) mirror equals the last source state", "value": "%s" % vs[0]["ok"],
                     "target": "sanity", "met": vs[0]["ok"]})
    bal = res.get("balance")
    if bal:
        o = bal["old"]
        worst = max(x for x in (o["files_ratio"], o["bytes_ratio"]) if x is not None)
        rows.append({"check": "balance, old mod-%d split (max of files/bytes ratio)" % bal["workers"],
                     "value": fmt_f(worst), "target": "<= 1.15", "met": worst <= 1.15})
        for r in bal.get("engine", []):
            if r["run"] == "full":
                vals = [x for x in (r.get("files_transferred_ratio"), r.get("bytes_transferred_ratio"))
                        if x is not None]
                what = "full run (max of files/bytes transferred ratio)"
            else:
                vals = [x for x in (r.get("files_scanned_ratio"),) if x is not None]
                what = "incremental run (files scanned ratio)"
            worst = max(vals) if vals else None
            rows.append({"check": "balance, engine %d workers, %s" % (bal["workers"], what),
                         "value": fmt_f(worst), "target": "<= 1.15",
                         "met": None if worst is None else worst <= 1.15})
    return rows


if __name__ == "__main__":
    sys.exit(main())
