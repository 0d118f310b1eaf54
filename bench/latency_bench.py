#!/usr/bin/env python3
"""Latency-bound benchmark: the engine with K workers vs rsync with one stream and rsync split over K streams.

Every contender runs under the latency model (bench/latency_shim.c, see bench/README.md "Latency model"):
each metadata call under the source or the backup paths is counted and delayed by ``--latency-ms``.

    python3 bench/latency_bench.py --files 20000 --latency-ms 1 --rounds 3    # the issue-12 measurement
    python3 bench/latency_bench.py --files 1000 --rounds 1 --workers 1,4 --streams 4   # smoke size

Contenders, each with its own destination, all fed the same source after every round, in rotating order:
  rsync x1      rsync -a --delete --numeric-ids SRC/ DST/
  rsync split K K parallel streams by top-level directory: the top-level names are dealt to the streams
                largest first (by entry count, to the least loaded stream); stream i runs
                rsync -a --delete --numeric-ids -R SRC/./top1 SRC/./top2 ... DST/ ; stream 0 first runs
                rsync -d --delete --numeric-ids -lptgoD SRC/ DST/ (top-level files and deletions)
  engine K      efs-backup-engine backup --source SRC --backup-root ROOT --id bench --interval daily
                --retain R --workers K --json
Round 0 (full copy) and --warmup incremental rounds run without the model (steady state, as in run_bench.py);
then --rounds measured rounds under it.  Wall time is the median over measured rounds, metadata calls the mean;
ratios are medians of per-round ratios.  Writes bench/results/latency.md and latency.json.
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import threading
import time

import latency
import treegen
from benchkit import DEFAULT_ENGINE, DEFAULT_RESULTS
from benchkit.contenders import Engine as EngineContender, parse_engine_summary, stderr_problem
from benchkit.engine_source import export_engine
from benchkit.machine import machine_info
from benchkit.progress import log
from benchkit.results import command_line, fmt_int, write_results
from benchkit.workdir import prepare_workdir, remove_tree


# ----------------------------------------------------------------------------- contenders

class Rsync(object):
    """rsync -a --delete into DST, in one stream or split over K streams by top-level directory."""

    def __init__(self, src, dst, streams=1):
        self.src, self.dst, self.streams = src, dst, streams
        self.key = "rsync-x%d" % streams
        self.label = "rsync, 1 stream" if streams == 1 else "rsync split over %d streams" % streams
        self.runs = []
        self.plan = None

    def setup(self):
        os.makedirs(self.dst, exist_ok=True)

    def prepare(self):
        """Before the timed run (not timed, not under the model): deal the top-level directories."""
        self.plan = self.stream_commands()

    def stream_commands(self):
        """Per stream, the rsync commands it runs one after the other."""
        base = ["rsync", "-a", "--delete", "--numeric-ids"]
        if self.streams == 1:
            return [[base + [self.src + "/", self.dst + "/"]]]
        groups = deal(top_level_sizes(self.src), self.streams)
        streams = [[base + ["-R"] + [os.path.join(self.src, ".", t) for t in g] + [self.dst + "/"]]
                   if g else [] for g in groups]
        top = ["rsync", "-d", "--delete", "--numeric-ids", "-lptgoD", self.src + "/", self.dst + "/"]
        streams[0].insert(0, top)
        return streams

    def snapshot_dir(self, k):
        return self.dst if k == 0 else None

    def run(self, env):
        """Run the streams in parallel; returns (ok, detail, extra info)."""
        errors = []

        def one(cmds):
            for cmd in cmds:
                p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   universal_newlines=True)
                if p.returncode != 0:
                    errors.append("%s: rc %d %s" % (" ".join(cmd[:6]), p.returncode, p.stderr[-2000:]))
                    return
        threads = [threading.Thread(target=one, args=(cmds,)) for cmds in self.plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return not errors, "\n".join(errors), {}


class Engine(EngineContender):
    """The engine with K local workers (run_bench's contender, called through this Python interpreter)."""

    def __init__(self, work, src, retain, engine, workers):
        EngineContender.__init__(self, work, src, retain, engine, workers=workers,
                                  root_name=os.path.join("dst", "engine-x%d" % workers))
        self.key = "engine-x%d" % workers
        self.label = "engine, %d worker%s" % (workers, "" if workers == 1 else "s")
        self.streams = workers

    def prepare(self):
        pass

    def base(self):
        return [sys.executable, self.engine]       # not through `env python3` wrappers (pyenv shims)

    def run(self, env):
        p = subprocess.run(self.cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
        summ = parse_engine_summary(p.stdout) or {}
        info = {"status": summ.get("status"), "parts": summ.get("parts"),
                "stderr_problem": stderr_problem(p.stderr)}
        return self.ok(p.returncode), "rc %d\n%s" % (p.returncode, p.stderr[-3000:]), info


def top_level_sizes(src):
    """{top-level name: entries below it (1 for a file)} of the source tree."""
    sizes = {}
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if os.path.isdir(path) and not os.path.islink(path):
            sizes[name] = 1 + sum(len(d) + len(f) for _, d, f in os.walk(path))
    return sizes


def deal(sizes, k):
    """Top-level directory names dealt to k streams: largest first, each to the least loaded stream."""
    groups = [[] for _ in range(k)]
    load = [0] * k
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        i = load.index(min(load))
        groups[i].append(name)
        load[i] += sizes[name]
    return [sorted(g) for g in groups]


# ----------------------------------------------------------------------------- rounds

def run_one(c, rnd, model, count_root):
    """One contender, one round; under the model when ``model`` = (shim, prefixes, latency_us)."""
    env = dict(os.environ)
    count_dir = None
    if model:
        count_dir = os.path.join(count_root, "%s-r%03d" % (c.key, rnd))
        os.makedirs(count_dir)
        env = latency.shim_env(model[0], model[1], model[2], count_dir)
    c.prepare()
    os.sync()
    t0, r0 = time.perf_counter(), os.times()
    ok, detail, info = c.run(env)
    wall, r1 = time.perf_counter() - t0, os.times()
    if not ok:
        raise SystemExit("%s failed in round %d: %s" % (c.label, rnd, detail))
    rec = dict(info, round=rnd, wall=wall,
               cpu=(r1.children_user - r0.children_user) + (r1.children_system - r0.children_system))
    if count_dir:
        rec["ops"] = latency.read_counts(count_dir)
    return rec


def run_rounds(args, contenders, src, model, work):
    """All rounds; returns (per-round records, source listings of the last `retain` rounds)."""
    rounds, lists = [], {}
    last = args.warmup + args.rounds
    for rnd in range(last + 1):
        changes = treegen.mutate(src, args.change, args.seed, rnd)["changes"] if rnd else 0
        measured = rnd > args.warmup
        if rnd > last - args.retain:
            lists[rnd] = treegen.listing(src)
        order = contenders[rnd % len(contenders):] + contenders[:rnd % len(contenders)]
        rec = {"round": rnd, "measured": measured, "changes": changes, "order": [c.key for c in order],
               "runs": {}}
        for c in order:
            r = run_one(c, rnd, model if measured else None, os.path.join(work, "counts"))
            rec["runs"][c.key] = r
            if measured:
                c.runs.append(r)
        log("round %d (%s): %s" % (rnd, "measured" if measured else "unmeasured", ", ".join(
            "%s %.2fs%s" % (k, v["wall"], " %d ops" % v["ops"]["total"] if "ops" in v else "")
            for k, v in rec["runs"].items())))
        rounds.append(rec)
    return rounds, lists


def verify(contenders, lists, retain):
    """Each engine snapshot daily.k vs the source of round last-k; each rsync destination vs the last round."""
    last = max(lists)
    out = []
    for c in contenders:
        for k in range(retain if isinstance(c, Engine) else 1):
            snap = c.snapshot_dir(k)
            if snap is None or (last - k) not in lists:
                continue
            if not os.path.isdir(snap):
                out.append({"key": c.key, "snapshot": "daily.%d" % k, "ok": False, "counts": {"missing": 1}})
                continue
            res = treegen.compare(lists[last - k], treegen.listing(snap))
            out.append({"key": c.key, "snapshot": "daily.%d" % k if isinstance(c, Engine) else "mirror",
                        "round": last - k, "ok": res["ok"], "counts": res["counts"],
                        "examples": res.get("examples", [])[:3]})
    return out


# ----------------------------------------------------------------------------- summary

def summarize(c, base, split_of):
    """Medians/means of a contender's measured rounds and its ratios to one-stream rsync and the K-split."""
    walls = [r["wall"] for r in c.runs]
    ops = [r["ops"]["total"] for r in c.runs]
    kinds = {k: statistics.mean(r["ops"]["kinds"][k] for r in c.runs) for k in latency.KINDS}
    out = {"label": c.label, "streams": c.streams, "wall_median": statistics.median(walls),
           "wall_min": min(walls), "wall_max": max(walls), "cpu_median": statistics.median(r["cpu"] for r in c.runs),
           "ops_mean": statistics.mean(ops), "kinds_mean": kinds,
           "by_exe": _mean_dict([r["ops"]["by_exe"] for r in c.runs]),
           "unresolved_mean": statistics.mean(r["ops"]["unresolved"] for r in c.runs),
           "parts": [r.get("parts") for r in c.runs], "status": [r.get("status") for r in c.runs],
           "stderr_problem": [r.get("stderr_problem") for r in c.runs if r.get("stderr_problem")]}
    out["wall_x_rsync"] = _median_ratio(c, base, "wall")
    out["ops_x_rsync"] = out["ops_mean"] / float(statistics.mean(r["ops"]["total"] for r in base.runs))
    if split_of is not None and split_of is not c:
        out["wall_x_split"] = _median_ratio(c, split_of, "wall")
        out["split_key"] = split_of.key
    return out


def _median_ratio(c, ref, field):
    return statistics.median(a[field] / b[field] for a, b in zip(c.runs, ref.runs))


def _mean_dict(dicts):
    keys = sorted({k for d in dicts for k in d})
    return {k: statistics.mean(d.get(k, 0) for d in dicts) for k in keys}


# ----------------------------------------------------------------------------- report

def render(res):
    a = res["args"]
    L = ["# Latency-bound benchmark: engine vs rsync (one stream, split by top-level directory)", "",
         "Command: `%s`  " % res["command"],
         "Date: %s UTC, total runtime %.0f s" % (res["date"], res["runtime"]), ""]
    L += _machine_table(res)
    t = res["tree"]
    L += ["", "Source tree (seed %d): %s files, %s symlinks, %s directories (%d top-level), %.0f MiB.  Each round "
          "changes %.1f%% of the files; retain %d; %d unmeasured rounds (full copy + %d warm-up), then %d measured "
          "rounds at **%.3g ms** per metadata call on the source and the backup paths." % (
              a["seed"], fmt_int(t["files"]), fmt_int(t["symlinks"]), fmt_int(t["dirs"]), t["top_level"], t["bytes"] / 2.0 ** 20,
              a["change"] * 100, a["retain"], a["warmup"] + 1, a["warmup"], a["rounds"], a["latency_ms"]), ""]
    for table in (_main_table, _targets_table, _kinds_table, _verify_table, _rounds_table):
        L += table(res) + [""]
    L.pop()
    if res["notes"]:
        L += ["", "Notes:"] + ["* " + n for n in res["notes"]]
    return "\n".join(L) + "\n"


def _machine_table(res):
    m = res["machine"]
    return ["| machine | |", "|---|---|",
            "| nproc / memory | %s / %s |" % (m["nproc"], m["memory"]),
            "| load average (1 min) at start / end | %.2f / %.2f |" % (res["load"][0], res["load"][1]),
            "| kernel / rsync / python | %s / %s / %s |" % (m["kernel"], m["rsync"], m["python"]),
            "| bench dir | `%s` on %s |" % (m["workdir"], m["fs_type"]),
            "| user | %s |" % m["user"],
            "| repo commit | %s |" % m["commit"]]


def _main_table(res):
    L = ["| contender | wall s (median) | min..max | CPU s | metadata calls (mean) | wall x rsync 1 stream "
         "| calls x rsync 1 stream | wall x rsync split, same K |",
         "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for key in res["order"]:
        s = res["summary"][key]
        split = "-"
        if "wall_x_split" in s:
            split = "%.2f (vs %s)" % (s["wall_x_split"], res["summary"][s["split_key"]]["label"])
        L.append("| %s | %.2f | %.2f..%.2f | %.2f | %s | %.2f | %.2f | %s |" % (
            s["label"], s["wall_median"], s["wall_min"], s["wall_max"], s["cpu_median"], fmt_int(s["ops_mean"]),
            s["wall_x_rsync"], s["ops_x_rsync"], split))
    return L


def _targets_table(res):
    """Issue 12's targets: engine K wall <= 1.25 x the K-stream split, engine calls <= 1.25 x one-stream rsync."""
    L = ["| target (issue 12) | value | met |", "|---|--:|---|"]
    for key in res["order"]:
        s = res["summary"][key]
        if not key.startswith("engine"):
            continue
        if "wall_x_split" in s:
            L.append("| %s: wall <= 1.25 x %s | %.2f | %s |" % (
                s["label"], res["summary"][s["split_key"]]["label"], s["wall_x_split"],
                "**yes**" if s["wall_x_split"] <= 1.25 else "**NO**"))
        L.append("| %s: metadata calls <= 1.25 x rsync, 1 stream | %.2f | %s |" % (
            s["label"], s["ops_x_rsync"], "**yes**" if s["ops_x_rsync"] <= 1.25 else "**NO**"))
    return L


def _kinds_table(res):
    keys = res["order"]
    used = [k for k in latency.KINDS if any(res["summary"][c]["kinds_mean"][k] for c in keys)]
    L = ["Metadata calls per kind (mean per measured round; see bench/README.md for the calls of each kind):", "",
         "| kind | " + " | ".join(res["summary"][c]["label"] for c in keys) + " |",
         "|---|" + "--:|" * len(keys)]
    for k in used:
        L.append("| %s | %s |" % (k, " | ".join(fmt_int(res["summary"][c]["kinds_mean"][k]) for c in keys)))
    L.append("| by program | %s |" % " | ".join(
        ", ".join("%s %s" % (e, fmt_int(v)) for e, v in sorted(res["summary"][c]["by_exe"].items())) for c in keys))
    return L


def _verify_table(res):
    L = ["| checked | against source of round | equal | mismatches |", "|---|--:|---|---|"]
    for v in res["verify"]:
        L.append("| %s %s | %s | %s | %s |" % (res["summary"][v["key"]]["label"], v["snapshot"], v.get("round", "-"),
                                            "**yes**" if v["ok"] else "**NO**",
                                            ", ".join("%s %d" % kv for kv in sorted(v["counts"].items())) or "-"))
    return L


def _rounds_table(res):
    keys = res["order"]
    L = ["Per measured round (wall s / metadata calls):", "",
         "| round | changes | " + " | ".join(res["summary"][c]["label"] for c in keys) + " |",
         "|--:|--:|" + "--:|" * len(keys)]
    for r in res["rounds"]:
        if r["measured"]:
            L.append("| %d | %d | %s |" % (r["round"], r["changes"], " | ".join(
                "%.2f / %s" % (r["runs"][c]["wall"], fmt_int(r["runs"][c]["ops"]["total"])) for c in keys)))
    return L


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description="latency-bound benchmark (see bench/README.md, 'Latency model')")
    p.add_argument("--files", type=int, default=20000, help="files in the source tree (default 20000)")
    p.add_argument("--dirs", type=int, default=200, help="directories in the source tree (default 200)")
    p.add_argument("--top-dirs", type=int, default=32, help="top-level directories (default 32)")
    p.add_argument("--change", type=float, default=0.01, help="fraction of files changed per round (0.01)")
    p.add_argument("--latency-ms", type=float, default=1.0, help="delay per metadata call, ms (default 1)")
    p.add_argument("--rounds", type=int, default=3, help="measured incremental rounds (default 3)")
    p.add_argument("--retain", type=int, default=3, help="snapshots the engine keeps (default 3)")
    p.add_argument("--warmup", type=int, default=None,
                   help="unmeasured incremental rounds (default retain: the engine recycles from the 1st measured)")
    p.add_argument("--workers", default="1,4,16", help="engine worker counts (default 1,4,16)")
    p.add_argument("--streams", default="4,16", help="rsync split stream counts (default 4,16)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default="/var/tmp/efs-backup-latency-bench", help="scratch dir, wiped at start")
    p.add_argument("--force", action="store_true", help="wipe --workdir even without the bench marker")
    p.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    p.add_argument("--engine", default=DEFAULT_ENGINE)
    p.add_argument("--engine-rev", default=None, help="benchmark the engine as committed at this revision")
    p.add_argument("--results", default=DEFAULT_RESULTS, help="where latency.md/.json go")
    a = p.parse_args(argv)
    a.warmup = a.retain if a.warmup is None else a.warmup
    a.workers = [int(x) for x in a.workers.split(",") if x]
    a.streams = [int(x) for x in a.streams.split(",") if x]
    if a.rounds < 1 or a.files < 100 or a.latency_ms < 0:
        p.error("--rounds >= 1, --files >= 100, --latency-ms >= 0")
    return a


def make_contenders(args, work, src, engine):
    dst = os.path.join(work, "dst")
    cs = [Rsync(src, os.path.join(dst, "rsync-x1"))]
    cs += [Rsync(src, os.path.join(dst, "rsync-x%d" % k), streams=k) for k in args.streams if k > 1]
    cs += [Engine(work, src, args.retain, engine, k) for k in args.workers]
    for c in cs:
        c.setup()
    return cs


def main(argv=None):
    t_start = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    work = os.path.abspath(args.workdir)
    prepare_workdir(work, args.force)
    load0 = os.getloadavg()[0]
    machine = machine_info(work)
    if args.engine_rev:
        args.engine, machine["commit"] = export_engine(args.engine_rev, work)
    shim = latency.build(os.path.join(work, "shim"))
    src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
    log("generating %d files in %d directories (seed %d)" % (args.files, args.dirs, args.seed))
    tree = treegen.generate(src, args.files, args.seed, dirs=args.dirs, top_level=args.top_dirs)
    contenders = make_contenders(args, work, src, args.engine)
    model = (shim, [src, dst], args.latency_ms * 1000.0)
    rounds, lists = run_rounds(args, contenders, src, model, work)
    by_key = {c.key: c for c in contenders}
    summary = {c.key: summarize(c, contenders[0], by_key.get("rsync-x%d" % c.streams)) for c in contenders}
    res = {"command": command_line("latency_bench.py", argv),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), "args": vars(args),
           "machine": machine, "tree": tree, "rounds": rounds, "order": [c.key for c in contenders],
           "summary": summary, "verify": verify(contenders, lists, args.retain),
           "load": (load0, os.getloadavg()[0]), "notes": notes_for(summary, machine, load0)}
    res["runtime"] = time.perf_counter() - t_start
    write_results(args.results, "latency", res, render(res))
    if not args.keep:
        remove_tree(work)
    return 0 if all(v["ok"] for v in res["verify"]) else 1


def notes_for(summary, machine, load0):
    notes = []
    if load0 > machine["nproc"]:
        notes.append("The machine was loaded (1-min load average %.1f on %s cores) when the run started: "
                     "CPU-bound parts of every contender ran slower than on a quiet machine." % (
                         load0, machine["nproc"]))
    for s in summary.values():
        odd = sorted({st for st in s["status"] if st not in (None, "success")})
        if odd:
            notes.append("%s: engine status %s in some measured rounds." % (s["label"], ", ".join(odd)))
        for p in s["stderr_problem"]:
            notes.append("%s: Python traceback on stderr: %s" % (s["label"], p))
        if s["unresolved_mean"]:
            notes.append("%s: %.0f calls per round named a path relative to a directory fd the model did not see "
                         "opened (not counted)." % (s["label"], s["unresolved_mean"]))
    return notes


if __name__ == "__main__":
    sys.exit(main())
