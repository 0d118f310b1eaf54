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

Python 3.9+, stdlib only.  Writes bench/results/latest.md and latest.json.  The pieces are in benchkit/ (one
module per responsibility, see benchkit/__init__.py); this file is the command line and the order of the steps.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import syscount
import treegen
from benchkit import DEFAULT_ENGINE, DEFAULT_RESULTS
from benchkit.balance import balance, balance_notes
from benchkit.contenders import Engine, Mirror, Old
from benchkit.engine_source import export_engine
from benchkit.machine import machine_info
from benchkit.measure import foreign_cpu_share
from benchkit.progress import log
from benchkit.report import WRITES_DEFINITION, render, summarize_runs
from benchkit.results import command_line, write_results
from benchkit.rounds import run_rounds
from benchkit.targets import targets
from benchkit.verify import verify_snapshots
from benchkit.workdir import prepare_workdir, remove_tree


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
    p.add_argument("--engine", default=DEFAULT_ENGINE)
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
    p.add_argument("--results", default=DEFAULT_RESULTS,
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
    work = os.path.abspath(args.workdir)
    prepare_workdir(work, args.force)
    machine = machine_info(work)
    notes = []
    if machine["fs_type"] == "tmpfs":
        notes.append("The bench dir is on tmpfs (RAM): metadata operations are far cheaper than on disk "
                     "or EFS; prefer --workdir on a real disk.")
    syscount.known_syscalls()       # probe strace once, outside any measurement
    engine_path = choose_engine(args, work, machine)
    src = os.path.join(work, "src")
    traces, listings = make_dir(work, "traces"), make_dir(work, "listings")
    contenders = make_contenders(args, work, src, engine_path)
    log("generating %d files (seed %d) in %s" % (args.files, args.seed, src))
    tree = treegen.generate(src, args.files, args.seed)
    log("tree: %s" % json.dumps(tree))
    rounds, lists = run_rounds(args, contenders, src, traces, listings, notes)
    log("verifying snapshots")
    verify = verify_snapshots(contenders, lists, args.retain, args.warmup + args.rounds, notes)
    bal = None
    if not args.no_balance:
        bal = balance(args, engine_path, work)
        notes += balance_notes(bal, args.workers)
    res = results(args, argv, machine, tree, rounds, contenders, verify, bal, engine_path, notes)
    res["runtime"] = time.perf_counter() - t_start
    write_results(args.results, "latest", res, render(res))
    if not args.keep:
        log("removing %s" % work)
        remove_tree(work)
    return 0


def choose_engine(args, work, machine):
    """The engine to run (None with --skip-engine); --engine-rev exports it and names its commit in ``machine``."""
    if args.skip_engine:
        return None
    if args.engine_rev:
        args.engine, machine["commit"] = export_engine(args.engine_rev, work)
    if not os.path.exists(args.engine):
        raise SystemExit("engine not found at %s (use --skip-engine to run (b) and (c) only)" % args.engine)
    return args.engine


def make_contenders(args, work, src, engine_path):
    contenders = [Engine(work, src, args.retain, engine_path)] if engine_path else []
    contenders += [Old(work, src, args.retain), Mirror(work, src, args.retain)]
    for c in contenders:
        c.setup()
    return contenders


def make_dir(work, name):
    path = os.path.join(work, name)
    os.makedirs(path)
    return path


def results(args, argv, machine, tree, rounds, contenders, verify, bal, engine_path, notes):
    """Everything latest.json holds (latest.md is rendered from it)."""
    strace = [r for r in rounds if r["phase"] == "strace"]
    res = {
        "command": command_line("run_bench.py", argv),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "args": vars(args),
        "machine": machine,
        "tree": tree,
        "changes_mean": statistics.mean(r["changes"] for r in strace),
        "tree_files_mean": statistics.mean(r["files"] for r in strace),
        "strace_rounds": [r["round"] for r in strace],
        "time_rounds": [r["round"] for r in rounds if r["phase"] == "time"],
        "contenders": {},
        "verify": verify,
        "balance": bal,
        "rounds": rounds,
        "foreign_cpu": {"share": foreign_cpu_share()},
        "writes_definition": WRITES_DEFINITION,
        "engine_version": next((c.runs[-1].get("summary") or {}).get("engine_version")
                               for c in contenders if c.key == "a") if engine_path else None,
        "notes": notes,
    }
    for c in contenders:
        s = summarize_runs(c)
        s["label"] = c.label
        res["contenders"][c.key] = s
    res["targets"] = targets(res, args.retain)
    return res


if __name__ == "__main__":
    sys.exit(main())
