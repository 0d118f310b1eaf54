"""The backup workflow: one execution is one backup run of one interval, on the worker fleet (see fleet_workflow.py).

Input: ``{"interval": "daily", "workers": 4, "streams": 4}`` (``workers`` optional: the configured worker_count;
``streams``, the engine streams per worker, optional: the configured worker_streams); the schedules send
``{"interval": ...}``. Retention is part of the deployment: each used interval's ``retain_<interval>`` is written
into the definition (a Pass state per interval), so whoever may start an execution cannot expire snapshots, and an input that
carries ``retain`` is refused (recorded and notified like every refused input). Worker roles: ``work`` (every worker: prepare/join, then work), ``finalize`` (promote
and rotate, or record the failed parts), ``abort`` (record why the run stopped, release the lock). This construct
also owns the run-history table both workflows record into, and publishes each run's metrics (run_metrics.py).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs.fleet_workflow import FleetJob, FleetWorkflow, refusal, success_notification
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import WorkerLaunchTemplate
from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER, MAX_WORKERS
from efs_backup_contract.task import BACKUP_ROLES
from settings.model import IntervalPolicy, WorkerSettings

WORK, FINALIZE, ABORT = BACKUP_ROLES  # the worker roles of a backup run (efs_backup_contract.task)


def backup_job(*, topic_arn: str, notify_on_success: bool, retention: Sequence[IntervalPolicy]) -> FleetJob:
    """``retention``: every interval's policy from the deployment's configuration. Only used intervals (retain >= 1)
    are accepted, and each one's retention is written into the definition: the input never carries it."""
    used = [policy for policy in retention if policy.enabled]
    if not used:
        raise ValueError("the backup workflow needs at least one interval with retain >= 1")
    expected = "{\"interval\": \"%s\", \"workers\": 1..%d (optional), \"streams\": 1..%d (optional)}" % (
        "|".join(p.interval for p in used), MAX_WORKERS, MAX_STREAMS_PER_WORKER)
    validation: Dict[str, Any] = {
        "ValidateInput": {
            "Type": "Choice",
            "Comment": "input: %s; retention comes from the deployment (retain_<interval>), never from the input"
                       % expected,
            "Choices": [{"Variable": "$.retain", "IsPresent": True, "Next": "RefuseRetain"}] + [
                {
                    "And": [
                        {"Variable": "$.interval", "IsPresent": True},
                        {"Variable": "$.interval", "IsString": True},
                        {"Variable": "$.interval", "StringEquals": policy.interval},
                    ],
                    "Next": f"Retain{policy.interval.capitalize()}",
                }
                for policy in used
            ],
            "Default": "InvalidInput",
        },
        "RefuseRetain": refusal(
            "retain is not accepted in the input: each interval's retention is part of the deployment "
            "(retain_<interval> in the configuration) and changes only with a deploy; expected " + expected),
    }
    for policy in used:
        validation[f"Retain{policy.interval.capitalize()}"] = {
            "Type": "Pass",
            "Comment": f"retain_{policy.interval} of this deployment",
            "Result": policy.retain,
            "ResultPath": "$.retain",
            "Next": "CheckWorkerCount",
        }
    success_route = {}
    if notify_on_success:
        success_route["NotifySuccess"] = success_notification(
            topic_arn,
            "States.Format('efs-backup {} {}: {}', $.backup_id, $.interval, $.summary.status)",
            "States.Format('efs-backup run {} of backup-id {}, interval {} (retain {}), started {}: {}. "
            "Snapshot {}, {} s, {} files scanned, {} bytes transferred, {} warnings. Engine summary: {}', "
            "$.run_id, $.backup_id, $.interval, $.retain, $.started, $.summary.status, "
            "$.summary.snapshot, $.summary.duration_seconds, $.summary.totals.files_scanned, "
            "$.summary.totals.bytes_transferred, $.summary.warnings, States.JsonToString($.summary))",
        )
    return FleetJob(
        kind="backup",
        work_role=WORK, finalize_role=FINALIZE, abort_role=ABORT,
        validation=validation,
        invalid_input_cause="the input was refused; expected " + expected,
        job_fields={"interval.$": "$.interval", "retain.$": "$.retain"},
        task_fields={"interval.$": "$.interval", "retain.$": "$.retain"},
        record_fields={"interval": {"S.$": "$.interval"}},
        failure_subject="States.Format('efs-backup {} {}: FAILED', $.backup_id, $.interval)",
        failure_message=(
            "States.Format('efs-backup run {} of backup-id {}, interval {} (retain {}), started {}: FAILED. Nothing "
            "was promoted; the next {} run resumes the work. Error: {}. Engine summary (failed_parts names each "
            "failed part and why): {}', $.run_id, $.backup_id, $.interval, $.retain, $.started, $.interval, "
            "States.JsonToString($.error), States.JsonToString($.summary))"
        ),
        success_route=success_route,
        success_entry="NotifySuccess" if notify_on_success else "Done",
        publishes_run_metrics=True,
    )


class BackupWorkflow(FleetWorkflow):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_name: str,
        backup_id: str,
        source_file_system_id: str,
        backup_file_system_id: str,
        subnet_ids: Sequence[str],
        workers: WorkerSettings,
        launch_template: WorkerLaunchTemplate,
        worker: WorkerIdentity,
        topic: sns.ITopic,
        notify_on_success: bool,
        retention: Sequence[IntervalPolicy],
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            job=backup_job(topic_arn=topic.topic_arn, notify_on_success=notify_on_success, retention=retention),
            state_machine_name=state_machine_name,
            backup_id=backup_id,
            source_file_system_id=source_file_system_id,
            backup_file_system_id=backup_file_system_id,
            subnet_ids=subnet_ids,
            workers=workers,
            launch_template=launch_template,
            worker=worker,
            topic=topic,
            table=None,  # this workflow creates the run-history table; the restore workflow records into it
        )
