"""Step Functions executions: start one, find one by name, follow its progress, read its outcome.

Progress comes from the execution history (progress.py reads it): each worker's report is the output of its
``LaunchWorker`` task (the engine's ``work`` JSON: worker, parts, failed, files_scanned, bytes_transferred), so
workers launched / reported and the parts, files and bytes so far are read from the worker states.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from efs_backup_contract.deployment import OUTPUT_RESTORE_STATE_MACHINE, OUTPUT_STATE_MACHINE

from efs_backup_cli import progress
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


def describe(deployment, arn: str) -> Optional[Dict[str, Any]]:
    """describe_execution, or None when there is no such execution."""
    sfn = deployment.client("stepfunctions")
    try:
        return sfn.describe_execution(executionArn=arn)
    except Exception as error:
        if getattr(error, "response", {}).get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        if type(error).__module__.startswith("botocore"):
            raise translate_aws_error(error, "describing an execution") from None
        raise


def machines(deployment) -> Dict[str, str]:
    """The deployment's state machines by kind: backup, and restore when the stack has one."""
    found = {"backup": deployment.output(OUTPUT_STATE_MACHINE)}
    if deployment.outputs.get(OUTPUT_RESTORE_STATE_MACHINE):
        found["restore"] = deployment.outputs[OUTPUT_RESTORE_STATE_MACHINE]
    return found


def find(deployment, name: str) -> Optional[Tuple[str, str, Dict[str, Any]]]:
    """(kind, execution ARN, describe_execution) of the execution ``name`` in either state machine, or None."""
    for kind, machine in machines(deployment).items():
        arn = execution_arn(machine, name)
        described = describe(deployment, arn)
        if described is not None:
            return kind, arn, described
    return None


def running_anywhere(deployment) -> List[Dict[str, Any]]:
    """Every running execution of the deployment's state machines, oldest first, with its kind."""
    found = [dict(e, kind=kind) for kind, machine in machines(deployment).items()
             for e in running(deployment, machine)]
    return sorted(found, key=lambda e: e["startDate"])


def newest(deployment, state_machine_arn: str) -> Optional[Dict[str, Any]]:
    sfn = deployment.client("stepfunctions")
    page = _call("listing executions", sfn.list_executions, stateMachineArn=state_machine_arn, maxResults=100)
    executions = page.get("executions", [])
    return max(executions, key=lambda e: e["startDate"]) if executions else None


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


def _epoch(value: Any) -> Optional[float]:
    return value.timestamp() if isinstance(value, datetime) else None


def look(deployment, arn: str, *, worker_states=(WORKER_STATE,), workers_total: Optional[int] = None,
         described: Optional[Dict[str, Any]] = None, observed: Optional[float] = None) -> progress.Snapshot:
    """The execution as it is now: its status and state, elapsed time, workers, parts, files and bytes.

    A running execution's elapsed time is taken at ``observed``, the moment just before ``described`` was asked
    for: it is never later than the stop time a later look shows (elapsed time never runs backwards)."""
    sfn = deployment.client("stepfunctions")
    if described is None:
        observed = time.time()
        described = _call("describing the execution", sfn.describe_execution, executionArn=arn)
    ended = _epoch(described.get("stopDate"))
    return progress.read(history(deployment, arn), described["name"], worker_states,
                         started=_epoch(described.get("startDate")),
                         now=ended if ended else (observed if observed is not None else time.time()),
                         status=described["status"], workers_total=workers_total)


def wait(deployment, arn: str, *, timeout: Optional[float], reporter: progress.Reporter,
         worker_states=(WORKER_STATE,), workers_total: Optional[int] = None) -> Dict[str, Any]:
    """Poll until the execution ends, showing each look on ``reporter``. Returns describe_execution. A timeout
    raises CliError (exit 1): the execution goes on."""
    sfn = deployment.client("stepfunctions")
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            observed = time.time()
            described = _call("describing the execution", sfn.describe_execution, executionArn=arn)
            reporter.update(look(deployment, arn, worker_states=worker_states, workers_total=workers_total,
                                 described=described, observed=observed))
            if described["status"] != "RUNNING":
                return described
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                waited = progress.duration(timeout) if timeout >= 60 else f"{timeout:g}s"
                raise CliError(f"execution {described['name']} still running after {waited}; it "
                               f"goes on: follow it with `efs-backup follow {described['name']}`", EXIT_FAILED)
            time.sleep(POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - now)))
    finally:
        reporter.close()


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
