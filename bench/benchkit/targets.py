"""run_bench's targets: (b)/(a) writes >= 10 at retain 3; (a) <= retain x (c) writes; (a) wall <= 2 x (c) wall;
every snapshot equal to the source of its time; balance <= 1.15.  Each row: check, value, target, met (None: n/a)."""

import statistics

from benchkit.results import fmt_f


def targets(res, retain):
    C = res["contenders"]
    a, b, c = C.get("a"), C.get("b"), C.get("c")
    rows = []
    if a and b:
        rows += _engine_vs_old(a, b)
    if a and c:
        rows += _engine_vs_floor(res, a, c, retain)
    if b and c:
        rows += _old_vs_floor(res, b, c)
    rows += _correctness(res["verify"])
    if res.get("balance"):
        rows += _balance(res["balance"])
    return rows


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


def _ratio(x, y):
    return None if x is None or y in (None, 0) else x / float(y)


def _engine_vs_old(a, b):
    r = _ratio(b.get("writes_mean"), a.get("writes_mean"))
    return [{"check": "(b) writes / (a) writes", "value": "%.1fx" % r if r else "-",
             "target": ">= 10x (at retain 3)", "met": None if r is None else r >= 10}]


def _engine_vs_floor(res, a, c, retain):
    r = _ratio(a.get("writes_mean"), retain * c.get("writes_mean", 0))
    rows = [{"check": "(a) writes / (retain x (c) writes)", "value": fmt_f(r),
             "target": "<= 1", "met": None if r is None else r <= 1}]
    per = round_ratios(res, "a", "c")
    r = statistics.median(per) if per else None
    rows.append({"check": "(a) wall / (c) wall (median of per-round ratios: %s; ratio of medians %s)" % (
        ", ".join(fmt_f(x) for x in per), fmt_f(_ratio(a.get("wall_median"), c.get("wall_median")))),
        "value": fmt_f(r), "target": "<= 2", "met": None if r is None else r <= 2})
    return rows


def _old_vs_floor(res, b, c):
    r = _ratio(b.get("writes_mean"), c.get("writes_mean"))
    rows = [{"check": "(b) writes / (c) writes (context)", "value": "%.1fx" % r if r else "-",
             "target": "-", "met": None}]
    per = round_ratios(res, "b", "c")
    r = statistics.median(per) if per else None
    rows.append({"check": "(b) wall / (c) wall (context, median of per-round ratios)", "value": fmt_f(r),
                 "target": "-", "met": None})
    return rows


def _correctness(verify):
    rows = []
    for key, lab in (("a", "(a)"), ("b", "(b)")):
        vs = [v for v in verify if v["key"] == key]
        if vs:
            good = sum(1 for v in vs if v["ok"])
            rows.append({"check": "%s snapshots equal the source at their time" % lab,
                         "value": "%d / %d" % (good, len(vs)), "target": "all",
                         "met": good == len(vs)})
    vs = [v for v in verify if v["key"] == "c"]
    if vs:
        rows.append({"check": "(c) mirror equals the last source state", "value": "%s" % vs[0]["ok"],
                     "target": "sanity", "met": vs[0]["ok"]})
    return rows


def _balance(bal):
    o = bal["old"]
    worst = max(x for x in (o["files_ratio"], o["bytes_ratio"]) if x is not None)
    rows = [{"check": "balance, old mod-%d split (max of files/bytes ratio)" % bal["workers"],
             "value": fmt_f(worst), "target": "<= 1.15", "met": worst <= 1.15}]
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
