"""The backup workflow: one execution is one backup run of one interval, on the worker fleet (see fleet_workflow.py).

Input: ``{"interval": "daily", "retain": 7, "workers": 4}`` (``workers`` optional: the configured count); the
schedules send exactly that. Worker roles: ``work`` (every worker: prepare/join, then work), ``finalize`` (promote
and rotate, or record the failed parts), ``abort`` (record why the run stopped, release the lock). This construct
also owns the run-history table both workflows record into, and publishes each run's metrics (run_metrics.py).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs.fleet_workflow import FleetJob, FleetWorkflow, success_notification
from constructs.run_metrics import RunMetrics
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import WorkerLaunchTemplate
from stacks.config import INTERVALS, MAX_WORKERS, WorkerSettings


def backup_job(*, topic_arn: str, notify_on_success: bool) -> FleetJob:
    interval_rules = [{"Variable": "$.interval", "StringEquals": i} for i in INTERVALS]
    validation = {
        "ValidateInput": {
            "Type": "Choice",
            "Comment": "input: {interval: hourly|daily|weekly|monthly, retain: >= 1, workers?: 1..%d}" % MAX_WORKERS,
            "Choices": [{
                "And": [
                    {"Variable": "$.interval", "IsPresent": True},
                    {"Variable": "$.interval", "IsString": True},
                    {"Or": interval_rules},
                    {"Variable": "$.retain", "IsPresent": True},
                    {"Variable": "$.retain", "IsNumeric": True},
                    {"Variable": "$.retain", "NumericGreaterThanEquals": 1},
                ],
                "Next": "CheckWorkerCount",
            }],
            "Default": "InvalidInput",
        },
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
        work_role="work",
        finalize_role="finalize",
        abort_role="abort",
        validation=validation,
        invalid_input_cause="expected input {\"interval\": \"hourly|daily|weekly|monthly\", \"retain\": N >= 1, "
                            "\"workers\": 1..%d (optional)}" % MAX_WORKERS,
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
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            job=backup_job(topic_arn=topic.topic_arn, notify_on_success=notify_on_success),
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

    def after_records(self, states: Dict[str, Any]) -> None:
        """Every recorded run publishes its metrics (and a promotion its newest-snapshot record) before the outcome
        is checked or notified; see run_metrics.py (those states never fail the run)."""
        self.run_metrics = RunMetrics(self, "RunMetrics", backup_id=self.backup_id, table=self.table)
        self.run_metrics.grant(self.role)
        states.update(self.run_metrics.states("PublishRunMetrics", states["RecordRun"]["Next"], "success"))
        states.update(self.run_metrics.states("PublishFailedRunMetrics", states["RecordFailure"]["Next"], "failure"))
        states["RecordRun"]["Next"] = "PublishRunMetrics"
        states["RecordFailure"]["Next"] = "PublishFailedRunMetrics"
