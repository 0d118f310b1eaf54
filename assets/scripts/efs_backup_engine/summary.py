"""Run summaries and snapshot manifests, built from the per-unit results recorded on the backup FS."""

import socket
import time
import uuid

from efs_backup_engine import ENGINE_VERSION
from efs_backup_engine.units import describe

MAX_LISTED = 50
# Unreadable source paths are all named (a summary is the operator's only list of what a snapshot could not
# read), up to this many; unreadable_count says how many there were.
MAX_UNREADABLE = 1000
COUNTERS = ("files_scanned", "dirs", "bytes_total", "files_transferred", "bytes_transferred", "created",
            "deleted", "changed", "special", "linked")
# Per-part figures summarised as {count, sum, min, max} over the finished parts (published as CloudWatch statistic
# sets by the orchestration's run metrics).
PART_STATS = ("seconds", "files_scanned", "bytes_transferred")


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else None


def _statistics(values):
    """{count, sum, min, max} of a list of numbers (all 0 for an empty list); seconds rounded to milliseconds."""
    if not values:
        return {"count": 0, "sum": 0, "min": 0, "max": 0}
    rounded = [round(value, 3) if isinstance(value, float) else value for value in values]
    total = sum(values)
    return {"count": len(values), "sum": round(total, 3) if isinstance(total, float) else total,
            "min": min(rounded), "max": max(rounded)}


def build(run, units, results, finished=None):
    finished = finished or time.time()
    totals = {key: 0 for key in COUNTERS}
    workers = {}
    part_values = {key: [] for key in PART_STATS}
    failed, warned, unfinished, unreadable = [], [], [], []
    for uid, spec in sorted(units.items(), key=lambda item: item[1]["path"]):
        result = results.get(uid)
        if result is None:
            unfinished.append({"path": describe(spec), "reason": "not finished (worker stopped or lost)"})
            continue
        for key in COUNTERS:
            totals[key] += result.get(key, 0)
        for key in PART_STATS:
            part_values[key].append(result.get(key, 0.0 if key == "seconds" else 0))
        worker = workers.setdefault(result.get("worker", "?"), {
            "worker": result.get("worker", "?"), "units": 0, "files_scanned": 0, "files_transferred": 0,
            "bytes_transferred": 0, "seconds": 0.0})
        worker["units"] += 1
        for key in ("files_scanned", "files_transferred", "bytes_transferred"):
            worker[key] += result.get(key, 0)
        worker["seconds"] += result.get("seconds", 0.0)
        unreadable.extend(result.get("unreadable") or ())
        if result["status"] == "failed":
            failed.append({"path": result["path"], "reason": "; ".join(result["messages"][-3:])})
        elif result["status"] == "warning":
            warned.append({"path": result["path"], "messages": result["messages"][-5:]})
    if failed or unfinished:
        status = "failed"
    elif warned:
        status = "warning"
    else:
        status = "success"
    started = run.get("started")
    return {
        "engine_version": ENGINE_VERSION,
        "run_id": run["run_id"],
        "backup_id": run["backup_id"],
        "interval": run["interval"],
        "retain": run["retain"],
        "source": run["source"],
        "status": status,
        "attempt": run.get("attempt", 1),
        "resumed_parts": run.get("resumed_parts", 0),
        "started": started,
        "started_iso": _iso(started),
        "finished": finished,
        "finished_epoch": int(finished),
        "finished_iso": _iso(finished),
        "duration_seconds": round(finished - (run.get("attempt_started") or started), 3),
        "parts": len(units),
        "parts_finished": len(results),
        "totals": totals,
        "part_stats": {key: _statistics(values) for key, values in part_values.items()},
        "warnings": len(warned),
        "warning_parts": warned[:MAX_LISTED],
        "failed_parts": (failed + unfinished)[:MAX_LISTED],
        "failed_count": len(failed) + len(unfinished),
        "unreadable": sorted(unreadable)[:MAX_UNREADABLE],
        "unreadable_count": len(unreadable),
        "workers": sorted(workers.values(), key=lambda w: w["worker"]),
        "host": socket.gethostname(),
    }


def manifest(summary, units, results):
    """The manifest stored with a promoted snapshot: the run summary plus every part's outcome."""
    parts = []
    for uid, spec in sorted(units.items(), key=lambda item: item[1]["path"]):
        result = results[uid]
        parts.append({"path": result["path"], "names": spec.get("names"), "directory": spec["path"], "mode": result.get("mode"), "status": result["status"],
                      "worker": result.get("worker"), "files": result.get("files_scanned", 0),
                      "bytes": result.get("bytes_total", 0), "seconds": round(result.get("seconds", 0.0), 3),
                      "attempt": result.get("attempt"), "messages": result.get("messages", [])[-5:]})
    return dict(summary, snapshot_id=uuid.uuid4().hex, complete=True, format=1, parts_detail=parts)


def human(summary):
    totals = summary["totals"]
    lines = [
        "backup %s %s: %s (run %s, attempt %s)" % (summary["backup_id"], summary["interval"], summary["status"].upper(),
                                                   summary["run_id"], summary["attempt"]),
        "  snapshot:    %s" % (summary.get("snapshot") or "none promoted"),
        "  duration:    %.1f s" % summary["duration_seconds"],
        "  files:       %d scanned, %d transferred (%s), %d deleted" % (
            totals["files_scanned"], totals["files_transferred"], human_bytes(totals["bytes_transferred"]),
            totals["deleted"]),
        "  size:        %s in %d parts" % (human_bytes(totals["bytes_total"]), summary["parts"]),
    ]
    for worker in summary["workers"]:
        lines.append("  worker %-6s %4d parts, %8d files scanned, %6d transferred, %s, %.1f s" % (
            worker["worker"], worker["units"], worker["files_scanned"], worker["files_transferred"],
            human_bytes(worker["bytes_transferred"]), worker["seconds"]))
    for part in summary["warning_parts"]:
        lines.append("  WARNING %s: %s" % (part["path"], " | ".join(part["messages"])))
    for part in summary["failed_parts"]:
        lines.append("  FAILED  %s: %s" % (part["path"], part["reason"]))
    if summary.get("unreadable_count"):
        lines.append("  unreadable in the source (%d; kept as in the newest snapshot): %s" % (
            summary["unreadable_count"], ", ".join(summary["unreadable"])))
    if summary.get("verify"):
        verify = summary["verify"]
        lines.append("  verify:      %d entries compared, %d checksummed, %d mismatches" % (
            verify["compared"], verify["checksummed"], verify["mismatch_count"]))
    return "\n".join(lines)


def human_bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return "%.1f %s" % (count, unit) if unit != "B" else "%d B" % count
        count /= 1024.0
    return str(count)
