"""Bounding a report (a run summary, a worker's report) to a size a message can carry.

A worker hands its step's JSON to Step Functions with SendTaskSuccess, whose output is limited to 256 KiB, and the
state machine then puts it into the run-history item (DynamoDB: 400 KB per item) and the notification (SNS: 256 KB
per message) next to other fields; see https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
("Maximum input or output size for a task, state, or execution": 256 KiB). A run with many warning parts with long
names can exceed that, and a too large report must never turn a promoted snapshot into a failed run. So the report
is cut down to ``max_bytes`` of UTF-8 JSON, and the full one stays where the engine already keeps it (the backup file
system's ``<backup-id>/.efs-backup/history/<run-id>.json``, the promoted snapshot's manifest).

What is cut, in this order, until it fits: the longest lists (halved, repeatedly: failed and warning parts, workers,
plans), then long strings (kept to their first STRING_KEEP characters), then everything but the top-level scalars
(strings cut to LAST_RESORT_KEEP) and flat objects, and finally, for a bound smaller than that, all but OUTCOME_KEYS.
Top-level scalars and flat objects (status, snapshot, snapshot_id, counts, totals) are never removed, and a bounded report says what was cut in
``truncated``: ``{"original_bytes", "lists": {path: original length}, "strings": n, "note"}``. Python 3.9 stdlib.
"""

import copy
import json

STRING_KEEP = 500
LAST_RESORT_KEEP = 100
OUTCOME_KEYS = ("status", "snapshot", "snapshot_id", "run_id", "kind", "dry_run")


def size_of(value):
    return len(json.dumps(value, sort_keys=True).encode("utf-8"))


def _lists(value, path=()):
    """(path, list) of every list in value, nested dicts and lists included."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_lists(item, path + (key,)))
    elif isinstance(value, list):
        found.append((path, value))
        for index, item in enumerate(value):
            found.extend(_lists(item, path + (index,)))
    return found


def _long_strings(value):
    """(container, key) of every string longer than STRING_KEEP."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, str) and len(item) > STRING_KEEP:
            found.append((value, key))
        else:
            found.extend(_long_strings(item))
    return found


def _scalar(value):
    return value is None or isinstance(value, (str, int, float, bool))


def _label(path):
    return ".".join(str(part) for part in path) or "."


def bound(report, max_bytes, note=None):
    """``report`` if its JSON fits in max_bytes, else a copy cut down as the module says (``truncated`` added)."""
    original = size_of(report)
    if original <= max_bytes:
        return report
    result = copy.deepcopy(report)
    truncated = {"original_bytes": original, "lists": {}, "strings": 0}
    if note:
        truncated["note"] = note
    result["truncated"] = truncated
    while size_of(result) > max_bytes:
        candidates = [(size_of(items), path, items) for path, items in _lists(result)
                      if items and path[:1] != ("truncated",)]
        if not candidates:
            break
        _size, path, items = max(candidates, key=lambda candidate: candidate[0])
        truncated["lists"].setdefault(_label(path), len(items))
        del items[len(items) // 2:]
    for container, key in _long_strings(result):
        if size_of(result) <= max_bytes:
            break
        container[key] = container[key][:STRING_KEEP] + "..."
        truncated["strings"] += 1
    if size_of(result) > max_bytes:  # only scalars are left to keep (and they are what a run's outcome is)
        result = {key: value for key, value in result.items() if _scalar(value)
                  or (isinstance(value, dict) and all(_scalar(item) for item in value.values()))}
        result = {key: (value[:LAST_RESORT_KEEP] + "..." if isinstance(value, str) and len(value) > LAST_RESORT_KEEP
                        else value) for key, value in result.items()}
        result["truncated"] = {"original_bytes": original, "note": note, "only_scalars_kept": True}
    if size_of(result) > max_bytes:  # a bound smaller than the outcome itself: the outcome's names only
        result = {key: result[key] for key in OUTCOME_KEYS if key in result}
        result["truncated"] = {"original_bytes": original, "only_outcome_kept": True}
    return result
