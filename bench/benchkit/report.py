"""run_bench's results: each contender's figures over the measured rounds, and the markdown table (section by
section, in the order bench/README.md "Reading the table" describes)."""

import statistics

from benchkit.results import fmt_f, fmt_int, yes

WRITES_DEFINITION = (
    "every call (successful or failed) of mkdir(at), link(at), unlink(at), rename(at/at2), "
    "rmdir, symlink(at), mknod(at), creat, open/openat/openat2 with O_CREAT, chmod/fchmod/"
    "fchmodat, chown/fchown/lchown/fchownat, utime(s)/utimensat/futimesat and the xattr "
    "set/remove calls, by every process of the run (`strace -f`)")
KEYS = ("a", "b", "c")


# ----------------------------------------------------------------------------- figures

def summarize_runs(c):
    st = [r for r in c.runs if r["phase"] == "strace"]
    tm = [r for r in c.runs if r["phase"] == "time"]
    out = {"strace_rounds": [r["round"] for r in st], "time_rounds": [r["round"] for r in tm]}
    if st:
        out.update(_write_figures(st))
    if tm:
        out["wall_median"] = statistics.median(r["wall"] for r in tm)
        out["wall_min"] = min(r["wall"] for r in tm)
        out["wall_max"] = max(r["wall"] for r in tm)
        out["cpu_median"] = statistics.median(r["cpu"] for r in tm)
    return out


def _write_figures(st):
    out = {
        "writes_mean": statistics.mean(r["writes"]["total"] for r in st),
        "ns_mean": statistics.mean(r["writes"]["ns"] for r in st),
        "attr_mean": statistics.mean(r["writes"]["attr"] for r in st),
        "writes_min": min(r["writes"]["total"] for r in st),
        "writes_max": max(r["writes"]["total"] for r in st),
    }
    calls = {}
    for r in st:
        for k, v in r["writes"]["calls"].items():
            calls[k] = calls.get(k, 0) + v
    out["calls_mean"] = {k: v / float(len(st)) for k, v in sorted(calls.items())}
    out["failed_mean"] = statistics.mean(r["writes"]["failed"] for r in st)
    return out


# ----------------------------------------------------------------------------- the table

def render(res):
    L = _header(res) + _machine(res) + _tree(res) + _steady_state(res) + _targets(res) + _correctness(res)
    if res.get("balance"):
        L += _balance(res["balance"])
    L += _syscalls(res) + _engine_runs(res) + _per_round(res)
    if res.get("notes"):
        L.append("")
        for n in res["notes"]:
            L.append("- " + n)
    return "\n".join(L) + "\n"


def _header(res):
    return ["# efs-backup benchmark results", "",
            "Command: `%s`  " % res["command"],
            "Date: %s, total runtime %.0f s" % (res["date"], res["runtime"]), ""]


def _machine(res):
    m = res["machine"]
    L = ["| machine | |",
         "|---|---|",
         "| nproc / memory | %s / %s |" % (m["nproc"], m["memory"]),
         "| kernel | %s |" % m["kernel"],
         "| rsync | %s |" % m["rsync"],
         "| strace / python | %s / %s |" % (m["strace"], m["python"]),
         "| bench dir | `%s` on %s (%s, mounted at %s)%s |" % (
             m["workdir"], m["fs_type"], m["fs_device"], m["fs_mount"],
             " -- **tmpfs: RAM, not a disk**" if m["fs_type"] == "tmpfs" else ""),
         "| user | %s |" % m["user"]]
    fc = res.get("foreign_cpu") or {}
    if fc.get("share") is not None:
        L.append("| CPU used outside the measured command during timed runs (other processes and kernel "
                 "threads such as writeback) | %.0f%% of all cores%s |" % (
                     fc["share"] * 100, " -- **busy machine: wall times are noisy**"
                     if fc["share"] > 0.15 else ""))
    L.append("| repo commit | %s%s |" % (m.get("commit", "?"), (", engine_version %s" % res["engine_version"])
                                         if res.get("engine_version") else ""))
    return L


def _tree(res):
    a, t = res["args"], res["tree"]
    return ["", "Source tree (seed %d): %s files, %s symlinks, %s directories, %.0f MiB; "
            "%s top-level directories.  Each round changes %.2f%% of the files "
            "(mean %s changes/round: edits, appends, creates, deletes, renames, chmods, chowns).  "
            "Retain %d; warm-up %d incremental rounds, then %d measured rounds "
            "(strace rounds %s, timed rounds %s)." % (
                a["seed"], fmt_int(t["files"]), fmt_int(t["symlinks"]), fmt_int(t["dirs"]),
                t["bytes"] / 1048576.0, t["top_level"], a["change"] * 100,
                fmt_int(res["changes_mean"]), a["retain"], a["warmup"], a["rounds"],
                res["strace_rounds"], res["time_rounds"]), ""]


def _steady_state(res):
    L = ["## Incremental run in steady state (per run)", "",
         "| contender | namespace writes (mean) | ns / attr | min..max | per changed file "
         "| per file in tree | wall s (median) | wall s min..max | CPU s (median) |",
         "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for key in KEYS:
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
    return L + [""]


def _targets(res):
    L = ["## Targets", "", "| check | value | target | met |", "|---|--:|---|---|"]
    for row in res["targets"]:
        L.append("| %s | %s | %s | %s |" % (row["check"], row["value"], row["target"], yes(row["met"])))
    return L + [""]


def _correctness(res):
    L = ["## Correctness: every snapshot vs the source listing of its round", "",
         "Compared per path: presence, type, mode, uid, gid, size, mtime (ns), symlink target, "
         "sha256 of content (the snapshot root's own mtime is ignored).", "",
         "| contender | snapshot | source round | equal | mismatches (count by kind) | examples |",
         "|---|---|--:|---|---|---|"]
    for v in res["verify"]:
        L.append("| %s | %s | %d | %s | %s | %s |" % (
            v["label"], v["snapshot"], v["round"], yes(v["ok"]),
            ", ".join("%s %d" % kv for kv in sorted(v["counts"].items())) or "-",
            "<br>".join("`%s`" % e.replace("|", "\\|") for e in v["examples"][:3]) or "-"))
    return L


def _balance(b):
    bt, o = b["tree"], b["old"]
    L = ["", "## Balance: skewed tree, %d workers" % b["workers"], "",
         "Tree: %s files, %.0f MiB; `big/` holds %.0f%% of the files and %.0f%% of the bytes.  "
         "Ratio = largest worker's share / ideal share (1.00 is perfect)." % (
             fmt_int(bt["files"]), bt["bytes"] / 1048576.0, b["big_share_files"] * 100,
             b["big_share_bytes"] * 100), "",
         "| split | run | files ratio | bytes ratio | per-worker files | per-worker MiB | "
         "per-worker seconds | units |",
         "|---|---|--:|--:|---|---|---|---|",
         "| old: top-level `ls` line mod %d | (computed) | %s | %s | %s | %s | - | - |" % (
             b["workers"], fmt_f(o["files_ratio"]), fmt_f(o["bytes_ratio"]),
             " / ".join(fmt_int(x) for x in o["files"]),
             " / ".join("%.0f" % (x / 1048576.0) for x in o["bytes"]))]
    for r in b.get("engine", []):
        L.append(_balance_engine_row(b["workers"], r))
    if "engine" not in b:
        L.append("| engine | not run | - | - | - | - | - | - |")
    return L


def _balance_engine_row(workers, r):
    fkey = "files_transferred" if r["run"] == "full" else "files_scanned"
    return "| engine, `--workers %d` | %s (%s; %s parts) | %s | %s | %s | %s | %s | %s |" % (
        workers, r["run"], fkey, fmt_int(r.get("parts")), fmt_f(r.get(fkey + "_ratio")),
        fmt_f(r.get("bytes_transferred_ratio")) if r["run"] == "full" else "-",
        " / ".join(fmt_int(x) for x in r.get(fkey, [])),
        " / ".join("%.1f" % (x / 1048576.0) for x in r.get("bytes_transferred", [])),
        " / ".join("%.1f" % x for x in r.get("seconds", [])),
        " / ".join(fmt_int(x) for x in r.get("units", [])))


def _present(res):
    return [k for k in KEYS if k in res["contenders"]]


def _syscalls(res):
    C, keys = res["contenders"], _present(res)
    names = sorted({n for k in keys for n in C[k].get("calls_mean", {})})
    L = ["", "## Namespace-write system calls (mean per strace'd incremental run)", "",
         "| syscall | " + " | ".join(C[k]["label"] for k in keys) + " |",
         "|---|" + "--:|" * len(keys)]
    for n in names:
        L.append("| %s | %s |" % (n, " | ".join(fmt_int(C[k].get("calls_mean", {}).get(n)) for k in keys)))
    L.append("| failed calls (included above) | %s |" % " | ".join(fmt_int(C[k].get("failed_mean")) for k in keys))
    return L + [""]


def _engine_runs(res):
    eng = [(rr["round"], rr["phase"], rr["runs"]["a"]) for rr in res["rounds"] if "a" in rr["runs"]]
    if not eng:
        return []
    L = ["## Engine runs in detail (from its --json summary)", "",
         "Wall = measured around the command; engine s = its own `duration_seconds`; unit s = sum of "
         "its parts' rsync seconds.", "",
         "| round | phase | wall s | engine s | unit s | parts | files scanned | transferred | deleted |",
         "|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for rnd, phase, r in eng:
        e = r.get("engine") or {}
        t = e.get("totals") or {}
        wall = fmt_f(r["wall"]) if "wall" in r else "(%s)" % fmt_f(r.get("wall_strace"))
        L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            rnd, phase, wall, fmt_f(e.get("duration_seconds")), fmt_f(e.get("unit_seconds")),
            fmt_int(e.get("parts")), fmt_int(t.get("files_scanned")), fmt_int(t.get("files_transferred")),
            fmt_int(t.get("deleted"))))
    return L + [""]


def _per_round(res):
    keys = _present(res)
    L = ["## Per round", "",
         "| round | phase | changes | files in tree | " + " | ".join("%s writes | %s s" % (k, k) for k in keys) + " |",
         "|--:|---|--:|--:|" + "--:|--:|" * len(keys)]
    for rr in res["rounds"]:
        cells = []
        for k in keys:
            cells += _round_cells(rr["runs"].get(k, {}))
        L.append("| %d | %s | %s | %s | %s |" % (rr["round"], rr["phase"], fmt_int(rr["changes"]),
                                                fmt_int(rr["files"]), " | ".join(cells)))
    L += ["", "Wall times in parentheses were measured under strace and are not used for ratios.  "
          "\"namespace writes\" = %s." % res["writes_definition"]]
    return L


def _round_cells(r):
    writes = fmt_int(r.get("writes", {}).get("total")) if "writes" in r else "-"
    if "wall" in r:
        return [writes, fmt_f(r["wall"])]
    if "wall_strace" in r:
        return [writes, "(%s)" % fmt_f(r["wall_strace"])]
    return [writes, "-"]
