"""Run summaries and snapshot manifests, built from the per-part results recorded on the backup FS.

outcome() is what every run says of its parts (backups and restores alike); build() adds a backup's own keys;
restore.summarize() a restore's."""

import socket
import time
import uuid

from efs_backup_engine import ENGINE_VERSION
from efs_backup_engine.parts import describe

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


def outcome(parts, results, started, attempt_started=None, finished=None):
    """What every run's summary says of its parts, backups' and restores' alike: the status (failed if a part
    failed or never finished, warning if one warned), timing, totals, per-part statistics, the failed and warned
    parts, the unreadable source paths and each worker's share.

    parts: {id: spec} and results: {id: result} as the run's PartStore has them; started: when the run began,
    attempt_started: when this attempt began (the duration counts from it; default: started)."""
    finished = finished or time.time()
    tally = _Tally()
    for part_id, spec in sorted(parts.items(), key=lambda item: item[1]["path"]):
        tally.add(spec, results.get(part_id))
    totals, workers, part_values = tally.totals, tally.workers, tally.part_values
    failed, warned, unfinished, unreadable = tally.failed, tally.warned, tally.unfinished, tally.unreadable
    if failed or unfinished:
        status = "failed"
    elif warned:
        status = "warning"
    else:
        status = "success"
    return {
        "engine_version": ENGINE_VERSION,
        "status": status,
        "started": started,
        "started_iso": _iso(started),
        "finished": finished,
        "finished_epoch": int(finished),
        "finished_iso": _iso(finished),
        "duration_seconds": round(finished - (attempt_started or started), 3),
        "parts": len(parts),
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


class _Tally:
    """The parts' results added up, part by part (in path order)."""

    def __init__(self):
        self.totals = {key: 0 for key in COUNTERS}
        self.workers = {}
        self.part_values = {key: [] for key in PART_STATS}
        self.failed, self.warned, self.unfinished, self.unreadable = [], [], [], []

    def add(self, spec, result):
        """One part: spec, and its result (None if it never finished)."""
        if result is None:
            self.unfinished.append({"path": describe(spec), "reason": "not finished (worker stopped or lost)"})
            return
        for key in COUNTERS:
            self.totals[key] += result.get(key, 0)
        for key in PART_STATS:
            self.part_values[key].append(result.get(key, 0.0 if key == "seconds" else 0))
        self.add_to_worker(result)
        self.unreadable.extend(result.get("unreadable") or ())
        if result["status"] == "failed":
            self.failed.append({"path": result["path"], "reason": "; ".join(result["messages"][-3:])})
        elif result["status"] == "warning":
            self.warned.append({"path": result["path"], "messages": result["messages"][-5:]})

    def add_to_worker(self, result):
        """Count one finished part in its worker's share ("units": the summary's legacy key for the worker's
        parts, read by the orchestration and the CLI)."""
        worker = self.workers.setdefault(result.get("worker", "?"), {
            "worker": result.get("worker", "?"), "units": 0, "files_scanned": 0, "files_transferred": 0,
            "bytes_transferred": 0, "seconds": 0.0})
        worker["units"] += 1
        for key in ("files_scanned", "files_transferred", "bytes_transferred"):
            worker[key] += result.get(key, 0)
        worker["seconds"] += result.get("seconds", 0.0)


def fleet(streams, streams_per_worker):
    """What a summary says of the run's parallelism: "streams", the engine streams in all (the run record's
    "workers": the local runner's --workers, or instances x streams per instance on EC2), "streams_per_worker" and
    "instances" (the worker instances; the summary's "workers" lists each stream's share of the parts)."""
    per = max(1, streams_per_worker or 1)
    return {"streams": streams, "streams_per_worker": per, "instances": -(-streams // per)}


def build(run, parts, results, finished=None):
    """A backup run's summary. run: the run's record (its run.json, RunState.to_json()): run_id, backup_id,
    interval, retain, source, and when present started, attempt_started, attempt, resumed_parts, workers and
    streams_per_worker (records before streams per worker: 1)."""
    summary = outcome(parts, results, run.get("started"), run.get("attempt_started"), finished)
    if run.get("workers"):
        summary.update(fleet(run["workers"], run.get("streams_per_worker", 1)))
    summary.update(run_id=run["run_id"], backup_id=run["backup_id"], interval=run["interval"],
                   retain=run["retain"], source=run["source"], attempt=run.get("attempt", 1),
                   resumed_parts=run.get("resumed_parts", 0))
    return summary


def note_crashed_workers(summary, worker_exits):
    """worker_exits: {worker id: exit code} when the caller knows them. A worker that died (code other than 0, 2
    or 1) is reported; its unfinished parts already fail the run, and if others finished them it is a warning."""
    crashed = {worker: code for worker, code in sorted((worker_exits or {}).items()) if code not in (0, 1, 2)}
    if crashed:
        summary["warning_parts"].append({"path": "(workers)", "messages": [
            "worker %s exited with code %s" % (worker, code) for worker, code in crashed.items()]})
        summary["warnings"] += 1
        if summary["status"] == "success":
            summary["status"] = "warning"
    return summary


def mark_aborted(summary, reason):
    """Turn a run summary into the failure an orchestrator's abort records: the reason comes first."""
    summary["status"] = "failed"
    summary["aborted"] = reason or "aborted by the orchestrator"
    summary["failed_parts"].insert(0, {"path": "(run)", "reason": summary["aborted"]})
    summary["failed_count"] += 1
    return summary


def manifest(summary, parts, results):
    """The manifest stored with a promoted snapshot: the run summary plus every part's outcome."""
    detail = []
    for part_id, spec in sorted(parts.items(), key=lambda item: item[1]["path"]):
        result = results[part_id]
        detail.append({"path": result["path"], "names": spec.get("names"), "directory": spec["path"], "mode": result.get("mode"), "status": result["status"],
                      "worker": result.get("worker"), "files": result.get("files_scanned", 0),
                      "bytes": result.get("bytes_total", 0), "seconds": round(result.get("seconds", 0.0), 3),
                      "attempt": result.get("attempt"), "messages": result.get("messages", [])[-5:]})
    return dict(summary, snapshot_id=uuid.uuid4().hex, complete=True, format=1, parts_detail=detail)


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
    lines += part_lines(summary)
    if summary.get("unreadable_count"):
        lines.append("  unreadable in the source (%d; kept as in the newest snapshot): %s" % (
            summary["unreadable_count"], ", ".join(summary["unreadable"])))
    if summary.get("verify"):
        verify = summary["verify"]
        lines.append("  verify:      %d entries compared, %d checksummed, %d mismatches" % (
            verify["compared"], verify["checksummed"], verify["mismatch_count"]))
    return "\n".join(lines)


def part_lines(summary):
    """The lines every human summary ends its part report with: each worker's share, then warned and failed parts."""
    lines = []
    if summary.get("streams"):
        lines.append("  streams:     %d in all: %d worker%s x %d stream%s" % (
            summary["streams"], summary["instances"], "" if summary["instances"] == 1 else "s",
            summary["streams_per_worker"], "" if summary["streams_per_worker"] == 1 else "s"))
    for worker in summary.get("workers", []):
        lines.append("  worker %-6s %4d parts, %8d files scanned, %6d transferred, %s, %.1f s" % (
            worker["worker"], worker["units"], worker["files_scanned"], worker["files_transferred"],
            human_bytes(worker["bytes_transferred"]), worker["seconds"]))
    for part in summary.get("warning_parts", []):
        lines.append("  WARNING %s: %s" % (part["path"], " | ".join(part["messages"])))
    for part in summary.get("failed_parts", []):
        lines.append("  FAILED  %s: %s" % (part["path"], part["reason"]))
    return lines


def human_bytes(count):
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or suffix == "TiB":
            return "%.1f %s" % (count, suffix) if suffix != "B" else "%d B" % count
        count /= 1024.0
    return str(count)
