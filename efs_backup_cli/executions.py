"""Step Functions executions: start one, follow its progress, read its outcome.

Progress of a backup run comes from the execution history: each worker's report is the output of its
``LaunchWorker`` task (the engine's ``work`` JSON: worker, parts, failed, files_scanned, bytes_transferred), so
"workers reported / total" and the bytes transferred so far are read from the finished LaunchWorker states.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from efs_backup_cli.discovery import translate_aws_error
from efs_backup_cli.errors import EXIT_BUSY, EXIT_FAILED, CliError

POLL_SECONDS = 2.0
WORKER_STATE = "LaunchWorker"
RESTORE_WORKER_STATES = ("LaunchRestoreWorker", "RestoreWorker", "LaunchWorker")


def utc_stamp(now: Optional[datetime] = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name


def _call(what: str, function: Callable, **kwargs):
    try:
        return function(**kwargs)
    except Exception as error:
        if type(error).__module__.startswith("botocore"):
            raise translate_aws_error(error, what) from None
        raise


def start(deployment, state_machine_arn: str, name: str, payload: Dict[str, Any]) -> str:
    sfn = deployment.client("stepfunctions")
    try:
        response = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    except Exception as error:
        if getattr(error, "response", {}).get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            raise CliError(f"an execution named {name} exists already (names carry the second they were started "
                           "in); start again in a moment", EXIT_BUSY) from None
        if type(error).__module__.startswith("botocore"):
            raise translate_aws_error(error, f"starting execution {name}") from None
        raise
    return response["executionArn"]


def running(deployment, state_machine_arn: str) -> List[Dict[str, Any]]:
    sfn = deployment.client("stepfunctions")
    found: List[Dict[str, Any]] = []
    kwargs = {"stateMachineArn": state_machine_arn, "statusFilter": "RUNNING"}
    while True:
        page = _call("listing running executions", sfn.list_executions, **kwargs)
        found.extend(page.get("executions", []))
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def newest(deployment, state_machine_arn: str) -> Optional[Dict[str, Any]]:
    sfn = deployment.client("stepfunctions")
    page = _call("listing executions", sfn.list_executions, stateMachineArn=state_machine_arn, maxResults=100)
    executions = page.get("executions", [])
    return max(executions, key=lambda e: e["startDate"]) if executions else None


@dataclass
class Progress:
    reported: int = 0
    failed: int = 0
    bytes_transferred: int = 0
    files_scanned: int = 0
    reports: List[Dict[str, Any]] = field(default_factory=list)


def history(deployment, arn: str) -> List[Dict[str, Any]]:
    sfn = deployment.client("stepfunctions")
    events: List[Dict[str, Any]] = []
    kwargs = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = _call("reading the execution history", sfn.get_execution_history, **kwargs)
        events.extend(page.get("events", []))
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def progress(deployment, arn: str, worker_states=(WORKER_STATE,)) -> Progress:
    """Worker reports so far: outputs of the exited worker states (failures counted from failed tasks)."""
    result = Progress()
    for event in history(deployment, arn):
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") in worker_states:
            try:
                report = json.loads(details.get("output") or "{}")
            except ValueError:
                continue
            if isinstance(report, dict) and "bytes_transferred" in report:
                result.reported += 1
                result.bytes_transferred += int(report.get("bytes_transferred") or 0)
                result.files_scanned += int(report.get("files_scanned") or 0)
                result.reports.append(report)
        elif event.get("type") in ("TaskFailed", "TaskTimedOut"):
            result.failed += 1
    return result


def wait(deployment, arn: str, *, timeout: Optional[float], on_progress: Callable[[Progress, Dict], None],
         worker_states=(WORKER_STATE,)) -> Dict[str, Any]:
    """Poll until the execution ends; report progress whenever it changes. Returns describe_execution."""
    sfn = deployment.client("stepfunctions")
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        described = _call("describing the execution", sfn.describe_execution, executionArn=arn)
        current = progress(deployment, arn, worker_states)
        key = (current.reported, current.failed, current.bytes_transferred, described["status"])
        if key != last:
            on_progress(current, described)
            last = key
        if described["status"] != "RUNNING":
            return described
        if deadline is not None and time.monotonic() > deadline:
            raise CliError(f"execution {described['name']} still running after {timeout:.0f} s; follow it with "
                           "`efs-backup status` (it goes on)", EXIT_FAILED)
        time.sleep(POLL_SECONDS)


def output_of(described: Dict[str, Any]) -> Dict[str, Any]:
    try:
        output = json.loads(described.get("output") or "{}")
    except ValueError:
        return {}
    return output if isinstance(output, dict) else {}


def backup_outcome(described: Dict[str, Any]) -> Dict[str, Any]:
    """The outcome of a finished backup execution: already-running, or the engine summary's status."""
    output = output_of(described)
    if described["status"] == "SUCCEEDED":
        if output.get("outcome") == "already-running":
            return {"outcome": "already-running", "message": output.get("message"), "summary": None}
        summary = output.get("summary") if isinstance(output.get("summary"), dict) else {}
        return {"outcome": output.get("outcome") or summary.get("status", "success"), "summary": summary}
    return {"outcome": "failed", "summary": None, "status": described["status"],
            "error": described.get("error"), "cause": described.get("cause")}


def busy_error(message: Optional[str]) -> CliError:
    return CliError(message or "another execution is running; this one did nothing", EXIT_BUSY)
