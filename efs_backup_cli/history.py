"""The run-history table (output ``RunHistoryTableName``): runs, outcomes, and the snapshots derived from them.

Items (docs/orchestration.md, "Read the outcome"): key ``backup_id`` + ``run`` = ``<started>#<execution>``;
``status`` (success, warning, failed), ``interval``, ``execution``, ``started``, ``summary`` (the engine's summary as JSON), ``error`` for
failures; restore runs carry ``kind`` = ``restore`` (backup items have no kind, or ``backup``).

Snapshot names are derived, not read from the backup file system: for each interval, its successful runs newest
first are ``<interval>.0``, ``<interval>.1``, ... (k = the number of newer successful runs of that interval), and runs
at k >= the configured retain have expired. Limits: a retention change since those runs, or an engine run outside
the orchestration (a local ``efs-backup-engine backup`` on the backup file system), is not in the table, so the
names can be off; the ``snapshot_id`` of each run is exact, which is why restores pass ``id:<snapshot_id>``.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from efs_backup_contract.deployment import OUTPUT_RUN_HISTORY_TABLE

from efs_backup_cli.discovery import translate_aws_error

SUCCESS = ("success", "warning")


@dataclass
class Run:
    backup_id: str
    run: str
    status: str
    interval: Optional[str]
    execution: str
    started: str
    kind: str
    summary: Dict[str, Any]
    error: Optional[str]

    @property
    def finished(self) -> Optional[str]:
        return self.summary.get("finished_iso")

    @property
    def finished_epoch(self) -> Optional[float]:
        value = self.summary.get("finished")
        return float(value) if isinstance(value, (int, float)) else None

    def to_json(self) -> Dict[str, Any]:
        return {"run": self.run, "execution": self.execution, "kind": self.kind, "interval": self.interval,
                "status": self.status, "started": self.started, "finished": self.finished,
                "snapshot": self.summary.get("snapshot"), "snapshot_id": self.summary.get("snapshot_id"),
                "warnings": self.summary.get("warnings", 0), "failed_count": self.summary.get("failed_count", 0),
                # the fleet that ran it (None: a run before streams per worker, or refused before any ran)
                "instances": self.summary.get("instances"),
                "streams_per_worker": self.summary.get("streams_per_worker"),
                "error": self.error}


def _plain(item: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    return {key: next(iter(value.values())) for key, value in item.items()}


def _run(item: Dict[str, Any]) -> Run:
    plain = _plain(item)
    try:
        summary = json.loads(plain.get("summary") or "{}")
    except ValueError:
        summary = {}
    return Run(backup_id=plain.get("backup_id", ""), run=plain.get("run", ""), status=plain.get("status", "?"),
               interval=plain.get("interval"), execution=plain.get("execution", ""), started=plain.get("started", ""),
               kind=plain.get("kind") or "backup", summary=summary if isinstance(summary, dict) else {},
               error=plain.get("error"))


def runs(deployment, limit: Optional[int] = None) -> List[Run]:
    """Every run of the backup-id, newest first (the sort key starts with the ISO start time)."""
    table = deployment.output(OUTPUT_RUN_HISTORY_TABLE)
    ddb = deployment.client("dynamodb")
    found: List[Run] = []
    kwargs = {"TableName": table, "KeyConditionExpression": "backup_id = :b",
              "ExpressionAttributeValues": {":b": {"S": deployment.backup_id}}, "ScanIndexForward": False}
    try:
        while True:
            page = ddb.query(**kwargs)
            found.extend(_run(item) for item in page.get("Items", []))
            if limit and len(found) >= limit or "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except Exception as error:  # botocore errors -> one line
        if type(error).__module__.startswith("botocore"):
            raise translate_aws_error(error, f"reading the run history table {table}") from None
        raise
    found.sort(key=lambda r: r.run, reverse=True)
    return found[:limit] if limit else found


def record(deployment, execution: str) -> Optional[Run]:
    """The run-history record of one execution (among the newest 50 runs), or None."""
    return next((run for run in runs(deployment, limit=50) if run.execution == execution), None)


def backups(all_runs: List[Run]) -> List[Run]:
    return [r for r in all_runs if r.kind == "backup"]


def snapshots(deployment, all_runs: List[Run], interval: Optional[str] = None) -> List[Dict[str, Any]]:
    """The snapshots kept now, per used interval newest first, named as described in the module docstring."""
    rows = []
    for name in deployment.used_intervals():
        if interval and name != interval:
            continue
        retain = deployment.retain(name)
        successful = [r for r in backups(all_runs) if r.interval == name and r.status in SUCCESS]
        for k, run in enumerate(successful[:retain]):
            totals = run.summary.get("totals", {})
            rows.append({"name": f"{name}.{k}", "interval": name, "finished": run.finished,
                         "files": totals.get("files_scanned"), "bytes": totals.get("bytes_total"),
                         "snapshot_id": run.summary.get("snapshot_id"), "status": run.status,
                         "execution": run.execution})
    return rows


def resolve_snapshot(deployment, all_runs: List[Run], name: str) -> Optional[Dict[str, Any]]:
    """'daily.3' / 'latest' -> the snapshot row of the history, or None."""
    rows = snapshots(deployment, all_runs)
    if name == "latest":
        rows = sorted(rows, key=lambda r: r["finished"] or "", reverse=True)
        return rows[0] if rows else None
    return next((row for row in rows if row["name"] == name), None)


def snapshot_at(deployment, all_runs: List[Run], iso_time: str) -> Optional[Dict[str, Any]]:
    """The newest kept snapshot that finished at or before ``iso_time`` ('YYYY-MM-DDTHH:MM:SSZ'), or None."""
    rows = [row for row in snapshots(deployment, all_runs) if row["finished"] and row["finished"] <= iso_time]
    return max(rows, key=lambda row: row["finished"]) if rows else None


def age_seconds(run: Run, now: Optional[float] = None) -> Optional[float]:
    finished = run.finished_epoch
    if finished is None and run.finished:
        finished = calendar.timegm(time.strptime(run.finished, "%Y-%m-%dT%H:%M:%SZ"))  # UTC, whatever TZ says
    return None if finished is None else (now or time.time()) - finished
