"""The restore workflow: one execution restores one snapshot (whole, or chosen paths) on the worker fleet.

On demand only (no schedule). Input, checked before anything is launched:

    {"snapshot": "daily.3" | "latest" | "id:<snapshot_id>"   or   "at": "2026-11-20T00:00:00Z"   (exactly one),
     "paths": ["projects/a", "etc/app.conf"],     optional: relative to the snapshot root; default the whole snapshot
     "target_file_system_id": "fs-...",           optional: the production file system (default) or one of
                                                  restore_target_file_systems
     "target_path": "/efs-backup-restore/x",      optional: default /efs-backup-restore/<execution name>; "/" = in place
     "mirror": false,                             optional: true deletes extras and overwrites newer files (in paths)
     "dry_run": false,                            optional: true only reports the plan
     "workers": 4,                                optional: 1..32, default worker_count
     "streams": 4}                                optional: engine streams per worker, 1..16, default worker_streams

The request travels unchanged to every worker (``request`` in its task, as JSON text); ``worker.sh`` turns it into
the engine's ``restore-*`` arguments, so the engine — not the state machine — resolves the snapshot under the
backup-id's lock and refuses what it must (no complete manifest, a path not in the snapshot, ...). Worker roles:
``restore-work``, ``restore-finalize``, ``restore-abort``. Restore workers have their own role and launch template:
they may write to the production file system (and the configured restore targets), which backup workers may not. Runs are recorded in the run-history
table with kind ``restore``; failures always notify, real (not dry-run) successes notify too.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from constructs import Construct

from constructs.fleet_workflow import FleetJob, FleetWorkflow, optional_field_is_valid, success_notification
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import WorkerLaunchTemplate
from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER, MAX_WORKERS
from efs_backup_contract.task import RESTORE_ROLES
from settings.model import WorkerSettings

WORK, FINALIZE, ABORT = RESTORE_ROLES  # the worker roles of a restore run (efs_backup_contract.task)

INVALID_INPUT_CAUSE = (
    "expected input {\"snapshot\": \"<interval>.<n>|latest|id:<snapshot_id>\" or \"at\": \"<RFC 3339 time>\" "
    "(exactly one), \"paths\": [\"relative/path\", ...] (optional), \"target_file_system_id\": the production file "
    "system or a configured restore target (optional), \"target_path\": \"/absolute/path\" (optional), \"mirror\": true|false (optional), "
    "\"dry_run\": true|false (optional), \"workers\": 1..%d (optional), \"streams\": 1..%d (optional)}"
    % (MAX_WORKERS, MAX_STREAMS_PER_WORKER)
)


def restore_job(*, topic_arn: str, target_file_system_ids: Sequence[str]) -> FleetJob:
    request = "$.request"
    validation: Dict[str, Any] = {
        "ValidateInput": {
            "Type": "Pass",
            "Comment": "keep the request exactly as given: the checks below and every worker read $.request",
            "ResultPath": request,
            "Next": "CheckSnapshotChoice",
        },
        "CheckSnapshotChoice": {
            "Type": "Choice",
            "Comment": "exactly one of snapshot (a name, latest or id:<snapshot_id>) and at (a time)",
            "Choices": [
                {"And": [{"Variable": f"{request}.snapshot", "IsPresent": True},
                         {"Variable": f"{request}.snapshot", "IsString": True},
                         {"Variable": f"{request}.at", "IsPresent": False}],
                 "Next": "CheckRestoreOptions"},
                {"And": [{"Variable": f"{request}.at", "IsPresent": True},
                         {"Variable": f"{request}.at", "IsTimestamp": True},
                         {"Variable": f"{request}.snapshot", "IsPresent": False}],
                 "Next": "CheckRestoreOptions"},
            ],
            "Default": "InvalidInput",
        },
        "CheckRestoreOptions": {
            "Type": "Choice",
            "Comment": "types of the optional fields; the target file system must be one restores may write to",
            "Choices": [{
                "And": [
                    optional_field_is_valid(f"{request}.mirror", {"IsBoolean": True}),
                    optional_field_is_valid(f"{request}.dry_run", {"IsBoolean": True}),
                    optional_field_is_valid(f"{request}.target_path", {"IsString": True}),
                    {"Or": [{"Variable": f"{request}.paths", "IsPresent": False},
                            {"Not": {"Or": [{"Variable": f"{request}.paths", "IsString": True},
                                            {"Variable": f"{request}.paths", "IsNumeric": True},
                                            {"Variable": f"{request}.paths", "IsBoolean": True}]}}]},
                    {"Or": [{"Variable": f"{request}.target_file_system_id", "IsPresent": False}]
                     + [{"Variable": f"{request}.target_file_system_id", "StringEquals": fs}
                        for fs in target_file_system_ids]},
                ],
                "Next": "CheckWorkerCount",
            }],
            "Default": "InvalidInput",
        },
    }
    success_route = {
        "CheckDryRun": {
            "Type": "Choice",
            "Comment": "a dry run changed nothing: its plan is the execution's output, no notification",
            "Choices": [{"And": [{"Variable": "$.summary.dry_run", "IsPresent": True},
                                 {"Variable": "$.summary.dry_run", "BooleanEquals": True}],
                         "Next": "Done"}],
            "Default": "NotifySuccess",
        },
        "NotifySuccess": success_notification(
            topic_arn,
            "States.Format('efs-backup {} restore: {}', $.backup_id, $.summary.status)",
            "States.Format('efs-backup restore {} of backup-id {}, started {}: {}. Request: {}. Engine summary "
            "(snapshot, target, and the plan of what was created, overwritten, deleted and kept because newer): {}', "
            "$.run_id, $.backup_id, $.started, $.summary.status, States.JsonToString($.request), "
            "States.JsonToString($.summary))",
        ),
    }
    return FleetJob(
        kind="restore",
        work_role=WORK, finalize_role=FINALIZE, abort_role=ABORT,
        validation=validation,
        invalid_input_cause=INVALID_INPUT_CAUSE,
        job_fields={"request.$": request},
        task_fields={"request.$": f"States.JsonToString({request})"},
        record_fields={},
        failure_subject="States.Format('efs-backup {} restore: FAILED', $.backup_id)",
        failure_message=(
            "States.Format('efs-backup restore {} of backup-id {}, started {}: FAILED. Request: {}. Error: {}. "
            "Engine summary (failed_parts names each failed part and why): {}', $.run_id, $.backup_id, $.started, "
            "States.JsonToString($.request), States.JsonToString($.error), States.JsonToString($.summary))"
        ),
        success_route=success_route,
        success_entry="CheckDryRun",
    )


class RestoreWorkflow(FleetWorkflow):
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
        table: dynamodb.ITable,
        target_file_system_ids: Sequence[str],
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            job=restore_job(topic_arn=topic.topic_arn, target_file_system_ids=target_file_system_ids),
            state_machine_name=state_machine_name,
            backup_id=backup_id,
            source_file_system_id=source_file_system_id,
            backup_file_system_id=backup_file_system_id,
            subnet_ids=subnet_ids,
            workers=workers,
            launch_template=launch_template,
            worker=worker,
            topic=topic,
            table=table,
        )
