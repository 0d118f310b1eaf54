"""Restore requests for the restore state machine (output ``RestoreStateMachineArn``) and how their plans read.

Input contract: ``{"snapshot": "daily.3" | "latest" | "id:<snapshot_id>"`` or ``"at": "<ISO time>"``,
``"paths"`` (optional, relative to the snapshot root), ``"target_file_system_id"`` (optional, default production),
``"target_path"`` (default ``/efs-backup-restore/<execution name>``, which the CLI leaves to the state machine;
``/`` = in place), ``"mirror"``, ``"dry_run"``,
``"workers"`` and ``"streams"`` (optional)}. Output on success: ``{"outcome": "success"|"warning", "summary":
{...}}`` with the plan
(create / overwrite / delete / skip_newer, each ``{files, bytes}``, and samples). A failed restore ends FAILED.

The flow (main.py): a dry-run execution, its plan shown, the operator's confirmation, then the real execution
pinned to the snapshot the dry run resolved (``id:<snapshot_id>``), so names that shift meanwhile (a backup
promoting ``daily.0``) cannot change what is restored.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from efs_backup_contract import times
from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.times import format_utc

from efs_backup_cli.errors import EXIT_REFUSED, CliError

RESTORE_ROOT = "/efs-backup-restore"
PLAN_KINDS = ("create", "overwrite", "delete", "skip_newer")
_SNAPSHOT_NAME = re.compile(r"^(%s)\.[0-9]+$" % "|".join(INTERVALS))
_FS_ID = re.compile(r"^fs-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def parse_time(text: str) -> str:
    """An ISO 8601 time -> 'YYYY-MM-DDTHH:MM:SSZ' (the second it falls in): a date, or a date and time with ``T`` or
    a space, seconds and 1-6 fractional digits optional, ``Z`` or an offset (``+01:00``, ``+0100``, ``+01``); no
    zone = UTC. Parsed by efs_backup_contract.times, the same on Python 3.9 as later (not ``fromisoformat``)."""
    try:
        return format_utc(times.parse_time(text, naive_utc=True))
    except ValueError as error:
        raise CliError(f"--at {text!r}: expected an ISO time such as 2026-11-20T00:00:00Z ({error})",
                       EXIT_REFUSED) from None


def clean_path(path: str) -> str:
    """A path relative to the snapshot root: no '..', no empty parts; a leading '/' is dropped."""
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise CliError(f"--path {path!r}: expected a path inside the snapshot (no '..')", EXIT_REFUSED)
    return "/".join(parts)


def target_path_for(name: str, target_path: Optional[str], in_place: bool) -> Optional[str]:
    """The request's target_path: '/' in place, the given directory, or None for the default, which the restore
    state machine makes ``/efs-backup-restore/<execution name>`` (creating /efs-backup-restore when missing; an
    explicit target's parent must exist)."""
    if in_place:
        if target_path not in (None, "/"):
            raise CliError("--in-place restores to '/'; do not combine it with --target-path", EXIT_REFUSED)
        return "/"
    if target_path is None:
        return None
    if not target_path.startswith("/") or ".." in target_path.split("/"):
        raise CliError(f"--target-path {target_path!r}: expected an absolute path without '..'", EXIT_REFUSED)
    if target_path.rstrip("/") == "":
        raise CliError("--target-path / means in place: say --in-place", EXIT_REFUSED)
    return target_path.rstrip("/")


def default_target(name: str) -> str:
    return f"{RESTORE_ROOT}/{name}"


def build_request(*, snapshot: Optional[str] = None, snapshot_id: Optional[str] = None, at: Optional[str] = None,
                  paths: Sequence[str] = (), target_path: Optional[str] = None, target_file_system_id: Optional[str] = None,
                  mirror: bool = False, dry_run: bool = False, workers: Optional[int] = None,
                  streams: Optional[int] = None) -> Dict[str, Any]:
    chosen = [v is not None for v in (snapshot, snapshot_id, at)]
    if sum(chosen) != 1:
        raise CliError("choose exactly one of --snapshot, --snapshot-id, --at", EXIT_REFUSED)
    request: Dict[str, Any] = {}
    if snapshot is not None:
        if snapshot != "latest" and not _SNAPSHOT_NAME.fullmatch(snapshot) and not snapshot.startswith("id:"):
            raise CliError(f"--snapshot {snapshot!r}: expected <interval>.<n> (e.g. daily.3) or latest", EXIT_REFUSED)
        request["snapshot"] = snapshot
    elif snapshot_id is not None:
        if not re.fullmatch(r"^[0-9A-Za-z_-]{1,64}$", snapshot_id):
            raise CliError(f"--snapshot-id {snapshot_id!r}: expected the id shown by `efs-backup list`", EXIT_REFUSED)
        request["snapshot"] = f"id:{snapshot_id}"
    else:
        request["at"] = parse_time(at)
    if paths:
        request["paths"] = [clean_path(p) for p in paths]
    if target_file_system_id is not None:
        if not _FS_ID.fullmatch(target_file_system_id):
            raise CliError(f"--target-file-system {target_file_system_id!r}: expected fs-<hex id>", EXIT_REFUSED)
        request["target_file_system_id"] = target_file_system_id
    if target_path is not None:
        request["target_path"] = target_path
    request["mirror"] = bool(mirror)
    request["dry_run"] = bool(dry_run)
    if workers is not None:
        request["workers"] = workers
    if streams is not None:
        request["streams"] = streams
    return request


def plan_kinds(plan: Dict[str, Any]) -> List[str]:
    """The contract's categories first, then any other the engine reports (e.g. metadata, skip_conflict)."""
    extra = sorted(k for k, v in plan.items() if k not in PLAN_KINDS and k != "samples" and isinstance(v, dict))
    return list(PLAN_KINDS) + extra


def _count(entry: Dict[str, Any], key: str) -> int:
    return int((entry or {}).get(key) or 0)


def plan_is_empty(summary: Dict[str, Any]) -> bool:
    """Nothing would change: every category that writes (all but the skip_* ones) has no file and no directory."""
    plan = summary.get("plan") or {}
    return all(_count(plan.get(kind), "files") + _count(plan.get(kind), "dirs") == 0
               for kind in plan_kinds(plan) if not kind.startswith("skip"))


def plan_deletes(summary: Dict[str, Any]) -> int:
    """How many files and directories the plan deletes on the target (mirror mode only)."""
    deleted = (summary.get("plan") or {}).get("delete")
    return _count(deleted, "files") + _count(deleted, "dirs")


def logical_target(name: str, request: Dict[str, Any]) -> str:
    """Where a restore writes, as the operator names it: [<file system>:]<path on it> (the summary's target is the
    worker's mount path)."""
    path = request.get("target_path") or default_target(name)
    fs = request.get("target_file_system_id")
    return f"{fs}:{path}" if fs else path


def human_plan(summary: Dict[str, Any], format_bytes, target: Optional[str] = None) -> str:
    plan = summary.get("plan") or {}
    lines = ["restore plan: snapshot %s (id %s) -> %s, mode %s, paths %s" % (
        summary.get("snapshot"), summary.get("snapshot_id"), target or summary.get("target"), summary.get("mode"),
        ", ".join(summary.get("paths") or []) or "(all)")]
    for kind in plan_kinds(plan):
        entry = plan.get(kind) or {}
        lines.append("  %-13s %12s files %9s dirs  %12s" % (
            kind.replace("_", "-"), f"{_count(entry, 'files'):,}", f"{_count(entry, 'dirs'):,}",
            format_bytes(_count(entry, "bytes"))))
    samples = plan.get("samples") or {}
    for kind in plan_kinds(plan):
        names: List[str] = list(samples.get(kind) or [])[:5]
        if names:
            lines.append("  e.g. %s: %s" % (kind.replace("_", "-"), ", ".join(names)))
    return "\n".join(lines)
