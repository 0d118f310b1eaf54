"""Balance: a skewed tree (``--skew`` of its files under one top-level directory ``big/``) backed up by the engine
with ``--workers`` workers (full, then one incremental run), and the old scripts' split (top-level names in listing
order, name i to worker i mod N).  Ratio = largest worker's share / ideal share (1.00 is perfect)."""

import os

import treegen
from benchkit.contenders import Engine, parse_engine_summary, stderr_problem
from benchkit.measure import run_plain
from benchkit.progress import log

RUNS = ("full", "incremental")
WORKER_FIGURES = ("files_scanned", "files_transferred", "bytes_transferred", "seconds", "units")


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
    out = {"tree": info, "workers": args.workers, "skew": args.skew, "old": _old_figures(lst, args.workers)}
    out.update(_big_share(lst))
    if engine_path is None:
        return out
    eng = Engine(work, src, args.retain, engine_path, workers=args.workers, root_name="skew-root")
    eng.setup()
    runs = []
    for rnd, run in enumerate(RUNS):
        if rnd:
            treegen.mutate(src, args.change, args.seed, 1)
        runs.append(_engine_run(eng, run, args.workers))
    if args.verify_balance:
        snap = treegen.listing(eng.snapshot_dir(0))
        out["engine_snapshot_ok"] = treegen.compare(treegen.listing(src), snap)["ok"]
    out["engine"] = runs
    return out


def _old_figures(lst, workers):
    per = old_split(lst, workers)
    return {"files": [p[0] for p in per], "bytes": [p[1] for p in per],
            "files_ratio": max_over_ideal([p[0] for p in per]),
            "bytes_ratio": max_over_ideal([p[1] for p in per])}


def _big_share(lst):
    big = [v for k, v in lst.items() if k.startswith("big/") and v.type != "d"]
    nall, ball = treegen.tree_totals(lst)
    return {"big_share_files": len(big) / float(nall), "big_share_bytes": sum(e.size for e in big) / float(ball)}


def _engine_run(eng, run, workers):
    """One engine run on the skewed tree: its per-worker figures (from --json) and their ratios."""
    rc, wall, cpu, proc = run_plain(eng.cmd())
    if not eng.ok(rc):
        raise SystemExit("engine (4 workers, skewed tree) failed rc %d: %s%s" % (
            rc, proc.stdout[-3000:], proc.stderr[-3000:]))
    summ = parse_engine_summary(proc.stdout) or {}
    ws = summ.get("workers") or []
    log("balance: engine %s run, %d workers: %.2fs, status %s, %d workers reported" % (
        run, workers, wall, summ.get("status"), len(ws)))
    rec = {"run": run, "wall": wall, "status": summ.get("status"),
           "workers": ws, "parts": summ.get("parts"), "stderr_problem": stderr_problem(proc.stderr)}
    for name in WORKER_FIGURES:
        vals = [float(w.get(name) or 0) for w in ws]
        rec[name] = vals
        rec[name + "_ratio"] = max_over_ideal(vals, workers)
    rec["workers_reporting"] = len(ws)
    return rec


def balance_notes(bal, workers):
    """What the report's notes say about the engine's balance runs (a crash, workers that did no part)."""
    notes = []
    for r in bal.get("engine", []):
        if r.get("stderr_problem"):
            notes.append("balance, %s run: the engine printed a Python traceback on stderr (a worker "
                         "crashed?): `%s`" % (r["run"], r["stderr_problem"]))
        if len(r["workers"]) < workers:
            notes.append("balance, %s run: only %d of %d workers appear in the engine's summary "
                         "(the others did no unit)" % (r["run"], len(r["workers"]), workers))
    return notes
