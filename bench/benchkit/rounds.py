"""run_bench's rounds: round 0 is the full copy, then ``warmup`` incremental rounds, then the measured rounds,
alternating strace (odd) and timed (even).  Every round mutates the source (deterministically per seed and round),
writes its listing, and runs every contender on it, in an order that rotates so no contender always runs first."""

import os

import treegen
from benchkit.measure import run_contender
from benchkit.progress import log


def phase_of(rnd, warmup):
    if rnd == 0:
        return "full"
    if rnd <= warmup:
        return "warmup"
    return "strace" if (rnd - warmup) % 2 == 1 else "time"


def run_rounds(args, contenders, src, traces, listings, notes):
    """Every round; returns (per-round records, source listings of the last ``retain`` + 1 rounds by number)."""
    lists = {}
    rounds = []
    for rnd in range(0, args.warmup + args.rounds + 1):
        changes = treegen.mutate(src, args.change, args.seed, rnd) if rnd else {"changes": 0}
        lst = _list_source(src, listings, rnd)
        lists[rnd] = lst
        for old in [k for k in lists if k < rnd - args.retain]:
            del lists[old]
        rec = {"round": rnd, "phase": phase_of(rnd, args.warmup), "changes": changes["changes"],
               "mutations": changes, "files": treegen.tree_totals(lst)[0], "runs": {}}
        _run_contenders(rec, contenders, traces, notes)
        _log_round(rec)
        rounds.append(rec)
    return rounds, lists


def _list_source(src, listings, rnd):
    lst = treegen.listing(src)
    treegen.write_listing(lst, os.path.join(listings, "round-%03d.jsonl" % rnd))
    return lst


def _run_contenders(rec, contenders, traces, notes):
    rnd, phase = rec["round"], rec["phase"]
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


def _log_round(rec):
    log("round %d (%s): %d changes, %s" % (rec["round"], rec["phase"], rec["changes"], ", ".join(
        "%s %s" % (k, ("%d writes" % v["writes"]["total"]) if "writes" in v else "%.2fs" % v["wall"])
        for k, v in sorted(rec["runs"].items()))))
