"""A job run on a fleet of EC2 workers: the Step Functions state machine the backup and restore workflows share.

A job (``FleetJob``) is what differs between the two: how the input is validated, which fields go into each
worker's task, which ``worker.sh`` roles its instances play (work / finalize / abort), and what the run record and
the notifications say. Everything else is here: one STANDARD state machine (JSONPath) per job, written as plain ASL
(rendered with CDK tokens) so what runs is exactly what the tests validate with asl-validator and execute in moto:

    <the job's validation> ─► CheckWorkerCount ─► CheckStreamCount ─► FindRunningExecutions ─► another one running?
        │ bad input, workers not a whole 1..32,                                   ─► AlreadyRunning (ends, does nothing)
        │ streams not a whole 1..16 ─► RecordRefusedInput ─► NotifyRefusedInput
        ▼                                         ─► InputRefused (fails; nothing launched)
    PlanWorkers ─► Workers (Map, per worker: StartWorker = ec2:runInstances, retried ─► LaunchWorker = the task
        │                     object with the token, s3:putObject.waitForTaskToken; the work role; launch_states)
        ▼ every worker reported success                       │ any failure, heartbeat or task timeout, launch given up
    Finalize (an instance, the finalize role)                  ▼
        ▼                                               FindWorkerInstances ─► TerminateWorkers (tag: execution)
    RecordRun (DynamoDB) ─► success|warning? ─┐               ▼
        │ failed                              │         part failures? ─► RecordFailedRun (an instance, the finalize
        ▼                                     │               │            role: records the failed parts, releases
    NotifyFailure ─► RunFailed                │               │            the lock)
                                              ▼               └ else ────► ReleaseLock (an instance, the abort role)
                       <the job's success route> ─► Done              ▼
                                                          RecordFailure ─► NotifyFailure ─► RunFailed

Tasks keep the state: results go to their own paths (trimmed by ResultSelector), never ``ResultPath: null``
(moto's interpreter replaces the state with the result there). The Map keeps only a mark per worker in
``$.worker_reports`` (the reports themselves stay out of the state: 256 KiB at most). Every worker task has a
heartbeat timeout (workers beat every fifth of it) and a task timeout; launches (request-response) are retried, no
callback task relies on ``Retry``. Instances carry the tags ``efs-backup:execution`` (execution name),
``efs-backup:backup-id`` and ``efs-backup:role``; the role may terminate only instances with this backup-id's tag.
A successful execution's output is ``{"outcome", "execution", "backup_id", "summary"}`` (the engine's summary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from aws_cdk import Acknowledgment, ArnFormat, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from constructs.nag import NAG_PACK, nag_resource
from constructs.run_metrics import RunMetrics
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import WorkerLaunchTemplate
from efs_backup_contract.deployment import TAG_BACKUP_ID
from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER, MAX_WORKERS
from efs_backup_contract.task import ENGINE_WORK_FAILED  # the error worker.sh reports when parts failed
from settings.model import WorkerSettings

TAG_EXECUTION = "efs-backup:execution"
TAG_ROLE = "efs-backup:role"
TAG_WORKFLOW = "efs-backup:workflow"  # backup | restore: execution names are unique per state machine only
TASK_KEY_ROOT = "tasks"  # tasks/<kind>/<execution>/<step>-<index>.json in the script bucket


@dataclass(frozen=True)
class FleetJob:
    """What one kind of fleet run does; the JSONPath fields are evaluated as each comment says."""

    kind: str  # "backup" | "restore": the run record's kind
    work_role: str  # worker.sh roles of the instances
    finalize_role: str
    abort_role: str
    # States from "ValidateInput" on; they end in "CheckWorkerCount" (workers in $.workers) or "InvalidInput".
    validation: Dict[str, Any]
    invalid_input_cause: str
    # PlanWorkers parameters taken from the validated input (also the AlreadyRunning output).
    job_fields: Dict[str, Any]
    # Fields of every worker's task, evaluated against PlanWorkers' output.
    task_fields: Dict[str, Any]
    # Run-history attributes beyond the common ones, evaluated against the state at recording time.
    record_fields: Dict[str, Any]
    failure_subject: str  # States.Format expressions over the state
    failure_message: str
    # States reached when the run succeeded (status success or warning), entered at ``success_entry`` and ending in
    # "Done"; e.g. a ``success_notification``.
    success_route: Dict[str, Any] = field(default_factory=dict)
    success_entry: str = "Done"
    # Every recorded run (success or failure) publishes its metrics (run_metrics.py) before its outcome is checked
    # or notified.
    publishes_run_metrics: bool = False


def success_notification(topic_arn: str, subject: str, message: str) -> Dict[str, Any]:
    """An SNS publish of a successful run (subject/message: States.Format expressions) that continues to Done."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {"TopicArn": topic_arn, "Subject.$": subject, "Message.$": message},
        "ResultSelector": {"message_id.$": "$.MessageId"},
        "ResultPath": "$.notified",
        "Next": "Done",
        # The run succeeded: a notification that cannot be sent must not turn it into a failed execution.
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.notify_error", "Next": "Done"}],
    }


class FleetWorkflow(Construct):
    """One job's state machine, its role, its log group; records runs in ``table`` (None: creates the run-history
    table here) and notifies ``topic``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        job: FleetJob,
        state_machine_name: str,
        backup_id: str,
        source_file_system_id: str,
        backup_file_system_id: str,
        subnet_ids: Sequence[str],
        workers: WorkerSettings,
        launch_template: WorkerLaunchTemplate,
        worker: WorkerIdentity,
        topic: sns.ITopic,
        table: Optional[dynamodb.ITable],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.job = job
        self.backup_id = backup_id
        self.table = table if table is not None else run_history_table(self, "RunHistory")
        self.state_machine_name = state_machine_name
        self.state_machine_arn_literal = stack.format_arn(
            service="states", resource="stateMachine", resource_name=state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{state_machine_name}",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # Each worker's task (token and task) is an object here; the workers of this job read only this prefix.
        self.task_bucket = launch_template.scripts.bucket
        self.task_bucket_name = self.task_bucket.bucket_name
        self.task_prefix = f"{TASK_KEY_ROOT}/{job.kind}/"
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"efs-backup {job.kind} state machine of backup-id {backup_id}: launch and stop workers, "
                        "record, notify",
        )
        self.launch_template_settings = launch_template.settings
        self._grant(stack, launch_template, worker, subnet_ids, topic)
        self.run_metrics: Optional[RunMetrics] = None
        if job.publishes_run_metrics:
            self.run_metrics = RunMetrics(self, "RunMetrics", backup_id=backup_id, table=self.table)
            self.run_metrics.grant(self.role)

        definition = self.definition(
            # Every worker of every job mounts (some of) both file systems; worker.sh requires both ids.
            task_constants={"source_file_system_id": source_file_system_id,
                            "backup_file_system_id": backup_file_system_id},
            subnet_ids=subnet_ids,
            workers=workers,
            launch_template=launch_template,
            topic_arn=topic.topic_arn,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(stack.to_json_string(definition)),
            role=self.role,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Workers report their own task's outcome and heartbeats (task tokens of this state machine only).
        self.state_machine.grant_task_response(worker.role)
        self._acknowledge(stack, worker)

    # ------------------------------------------------------------------------------------------------ definition

    def definition(self, *, task_constants, subnet_ids, workers, launch_template, topic_arn) -> Dict[str, Any]:
        """The state machine, its states in the order of the picture above: the job's validation and the admission
        of a run, the workers, the record of the run, the failure path, then the job's success route and what
        follows each record (the run metrics, when the job publishes them). Every ``Next`` is set where its state
        is built."""
        launcher = self._launcher(task_constants, subnet_ids, workers, launch_template)
        after_run, after_run_states = self._after_record("success", next_state="CheckOutcome")
        after_failure, after_failure_states = self._after_record("failure", next_state="NotifyFailure")
        states: Dict[str, Any] = {
            **self._validation(),
            **self._worker_count(workers),
            **self._stream_count(workers),
            **self._refused_input(topic_arn),
            **self._admission(workers),
            **self._plan_workers(launcher),
            **self._workers(launcher),
            **self._finalize(launcher),
            **self._record_run(next_state=after_run),
            **self._stop_workers(),
            **self._release_lock(launcher),
            **self._record_failure(topic_arn, next_state=after_failure),
            **self.job.success_route,
            **after_run_states,
            **after_failure_states,
        }
        return {
            "Comment": f"efs-backup {self.job.kind} of backup-id {self.backup_id}: one execution is one run",
            "StartAt": "ValidateInput",
            "States": states,
        }

    def _launcher(self, task_constants: Dict[str, Any], subnet_ids: Sequence[str], workers: WorkerSettings,
                  launch_template: WorkerLaunchTemplate) -> WorkerLauncher:
        """What every launch of this job shares: where instances go and the fields of every worker's task."""
        task_base = {
            "backup_id": self.backup_id,
            **task_constants,
            "region": Stack.of(self).region,
            "log_group": launch_template.log_group.log_group_name,
            "heartbeat_seconds": workers.heartbeat_interval_seconds,
            "worker_count.$": "$.workers",
            "run_id.$": "$.run_id",
            **self.job.task_fields,
        }  # evaluated against PlanWorkers' output (in the Map's ItemSelector, or a Pass state before a launch)
        return WorkerLauncher(
            launch_template=launch_template, workers=workers, task_bucket=self.task_bucket_name,
            task_prefix=self.task_prefix, backup_id=self.backup_id, kind=self.job.kind,
            # Launch attempt a of worker i uses subnets[(i + a) mod n] and instance_types[a] (JSONPath has no modulo,
            # so both lists are laid out up to the largest index used): workers are spread over the subnets, and a
            # launch the capacity of one zone refused is tried in the next zone, then with the next instance type.
            placement=launch_placements(subnet_ids, workers.instance_types),
            task_base=task_base,
        )

    def _after_record(self, path: str, *, next_state: str) -> Tuple[str, Dict[str, Any]]:
        """Where a recorded run goes on to, and the states on the way: the run metrics (``path`` success or failure;
        see run_metrics.py, they never fail the run) before the outcome is checked or notified, or straight on to
        ``next_state`` when the job publishes none."""
        if self.run_metrics is None:
            return next_state, {}
        entry = "PublishRunMetrics" if path == "success" else "PublishFailedRunMetrics"
        return entry, self.run_metrics.states(entry, next_state, path)

    # ---- admission: the input is valid, the worker count allowed, no other run is going on

    def _validation(self) -> Dict[str, Any]:
        """The job's own checks of the input, from ValidateInput on; they end in CheckWorkerCount or InvalidInput."""
        return {**self.job.validation, "InvalidInput": refusal(self.job.invalid_input_cause)}

    def _worker_count(self, workers: WorkerSettings) -> Dict[str, Any]:
        return {
            "CheckWorkerCount": {
                "Type": "Choice",
                "Comment": "workers: a whole number 1..%d (ASL has no integer test: each allowed value is listed, "
                           "so 2.5 or \"2\" is refused here instead of failing an intrinsic later)" % MAX_WORKERS,
                "Choices": [
                    {"Variable": "$.workers", "IsPresent": False, "Next": "DefaultWorkerCount"},
                    {
                        "And": [
                            {"Variable": "$.workers", "IsNumeric": True},
                            {"Or": [{"Variable": "$.workers", "NumericEquals": n} for n in range(1, MAX_WORKERS + 1)]},
                        ],
                        "Next": "CheckStreamCount",
                    },
                ],
                "Default": "RefuseWorkerCount",
            },
            "RefuseWorkerCount": refusal(
                "workers must be a whole number from 1 to %d (or absent: the configured worker_count %d)"
                % (MAX_WORKERS, workers.count)),
        }

    def _stream_count(self, workers: WorkerSettings) -> Dict[str, Any]:
        """streams (engine streams per worker instance), checked like workers; absent: the configured
        worker_streams. Each work task carries it (worker.sh runs that many streams)."""
        return {
            "CheckStreamCount": {
                "Type": "Choice",
                "Comment": "streams: a whole number 1..%d, each allowed value listed (as for workers)"
                           % MAX_STREAMS_PER_WORKER,
                "Choices": [
                    {"Variable": "$.streams", "IsPresent": False, "Next": "DefaultStreamCount"},
                    {
                        "And": [
                            {"Variable": "$.streams", "IsNumeric": True},
                            {"Or": [{"Variable": "$.streams", "NumericEquals": n}
                                    for n in range(1, MAX_STREAMS_PER_WORKER + 1)]},
                        ],
                        "Next": "FindRunningExecutions",
                    },
                ],
                "Default": "RefuseStreamCount",
            },
            "RefuseStreamCount": refusal(
                "streams must be a whole number from 1 to %d (or absent: the configured worker_streams %d)"
                % (MAX_STREAMS_PER_WORKER, workers.streams)),
            "DefaultStreamCount": {
                "Type": "Pass",
                "Comment": "worker_streams of this deployment",
                "Result": workers.streams,
                "ResultPath": "$.streams",
                "Next": "FindRunningExecutions",
            },
        }

    def _refused_input(self, topic_arn: str) -> Dict[str, Any]:
        """A refused input (a ``refusal`` state): recorded and notified like a failed run, before anything is
        launched."""
        kind, backup_id = self.job.kind, self.backup_id
        return {
            "RecordRefusedInput": self._record_refusal(next_state="NotifyRefusedInput"),
            "NotifyRefusedInput": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": f"efs-backup {backup_id} {kind}: INPUT REFUSED",
                    "Message.$": (
                        f"States.Format('efs-backup {kind} execution {{}} of backup-id {backup_id} was refused "
                        "before anything was launched (nothing changed): {}. Input: {}', $.run_id, $.error.Cause, "
                        "$.input)"
                    ),
                },
                "ResultSelector": {"message_id.$": "$.MessageId"},
                "ResultPath": "$.notified",
                "Next": "InputRefused",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.notify_error", "Next": "InputRefused"}],
            },
            "InputRefused": {"Type": "Fail", "Error": "InvalidInput", "CausePath": "$.error.Cause"},
        }

    def _admission(self, workers: WorkerSettings) -> Dict[str, Any]:
        """The configured worker count when the input names none; then one run of this state machine at a time."""
        return {
            "DefaultWorkerCount": {
                "Type": "Pass",
                "Result": workers.count,
                "ResultPath": "$.workers",
                "Next": "CheckStreamCount",
            },
            "FindRunningExecutions": {
                "Type": "Task",
                "Comment": "one run of this state machine at a time: this execution counts itself",
                "Resource": "arn:aws:states:::aws-sdk:sfn:listExecutions",
                "Parameters": {"StateMachineArn.$": "$$.StateMachine.Id", "StatusFilter": "RUNNING", "MaxResults": 10},
                "ResultSelector": {"count.$": "States.ArrayLength($.Executions)"},
                "ResultPath": "$.running",
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3,
                           "BackoffRate": 2}],
                "Next": "CheckAlreadyRunning",
            },
            "CheckAlreadyRunning": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.running.count", "NumericGreaterThan": 1, "Next": "AlreadyRunning"}],
                "Default": "PlanWorkers",
            },
            "AlreadyRunning": {
                "Type": "Pass",
                "Comment": "another execution is running: end at once, touch nothing",
                "Parameters": {
                    "outcome": "already-running",
                    "backup_id": self.backup_id,
                    **self.job.job_fields,
                    "message": "another execution of this state machine is running; this one did nothing",
                },
                "End": True,
            },
        }

    # ---- the run: plan, the workers, finalize, record

    def _plan_workers(self, launcher: WorkerLauncher) -> Dict[str, Any]:
        return {
            "PlanWorkers": {
                "Type": "Pass",
                "Parameters": {
                    "backup_id": self.backup_id,
                    **self.job.job_fields,
                    "workers.$": "$.workers",
                    "streams.$": "$.streams",
                    "run_id.$": "$$.Execution.Name",
                    # When the run was planned (ISO 8601). $$.Execution.StartTime would do in AWS, but moto's context
                    # holds a datetime there that no intrinsic or integration can serialise.
                    "started.$": "$$.State.EnteredTime",
                    "indexes.$": "States.ArrayRange(0, States.MathAdd($.workers, -1), 1)",
                    **launcher.placement,
                    "bootstrap": launcher.launch_template.bootstrap_pieces(),
                    "envelope": TASK_ENVELOPE,
                    "summary": {},
                },
                "Next": "Workers",
            },
        }

    def _workers(self, launcher: WorkerLauncher) -> Dict[str, Any]:
        role = self.job.work_role
        return {
            "Workers": {
                "Type": "Map",
                "Comment": "one instance per worker; every worker prepares (joins) the run and works until no part "
                           "is left",
                "ItemsPath": "$.indexes",
                "ItemSelector": {
                    "run_id.$": "$.run_id",
                    "subnets.$": "$.subnets",
                    "instance_types.$": "$.instance_types",
                    "backoff_seconds.$": "$.backoff_seconds",
                    "bootstrap.$": "$.bootstrap",
                    "envelope.$": "$.envelope",
                    "launch": {
                        "index.$": "$$.Map.Item.Value",
                        "attempt": 0,
                        "task": {**launcher.task_base, "role": role, "worker_index.$": "$$.Map.Item.Value",
                                 "streams.$": "$.streams"},
                    },
                },
                "MaxConcurrency": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "StartWorker",
                    # A launch given up fails the iteration (a Fail state): the Map's Catch handles every worker
                    # failure. The waiting state (named LaunchWorker: efs-backup-cli reads the worker reports from
                    # its exits) outputs the worker's report; each iteration's output is only a mark (the reports
                    # of 32 workers stay out of the state, 256 KiB at most).
                    "States": {
                        **launcher.launch("Worker", role, done={"Next": "WorkerReported"}, result_path="$",
                                          give_up=None, wait_name="LaunchWorker"),
                        "WorkerReported": {"Type": "Pass", "Result": {"reported": True}, "End": True},
                    },
                },
                "ResultPath": "$.worker_reports",
                "Next": "FinalizeTask",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "FindWorkerInstances"}],
            },
        }

    def _finalize(self, launcher: WorkerLauncher) -> Dict[str, Any]:
        role = self.job.finalize_role
        return {
            "FinalizeTask": launcher.first_task(role, "StartFinalize"),
            **launcher.single("Finalize", role, next_state="RecordRun", catch_next="FindWorkerInstances",
                              error_path="$.error"),
        }

    def _record_run(self, *, next_state: str) -> Dict[str, Any]:
        """The run's record, then its outcome: success or warning goes the job's success route to Done."""
        return {
            "RecordRun": self._record("success", next_state=next_state),
            "CheckOutcome": {
                "Type": "Choice",
                "Choices": [{"Or": [{"Variable": "$.summary.status", "StringEquals": "success"},
                                    {"Variable": "$.summary.status", "StringEquals": "warning"}],
                             "Next": self.job.success_entry}],
                "Default": "NotifyFailure",
            },
            "Done": {
                "Type": "Pass",
                "Comment": "the execution's output: the outcome and the engine's summary",
                "Parameters": {"outcome.$": "$.summary.status", "execution.$": "$.run_id",
                               "backup_id.$": "$.backup_id", "summary.$": "$.summary"},
                "End": True,
            },
        }

    # ---- failure path: stop the workers, release the lock (recording failed parts), record, notify

    def _stop_workers(self) -> Dict[str, Any]:
        return terminate_instances_states("FindWorkerInstances", "AnyWorkerInstances", "TerminateWorkers",
                                          "ChooseRelease", backup_id=self.backup_id, kind=self.job.kind)

    def _release_lock(self, launcher: WorkerLauncher) -> Dict[str, Any]:
        job = self.job
        return {
            "ChooseRelease": {
                "Type": "Choice",
                "Comment": "part failures: finalize records them (nothing can be promoted) and releases the lock; "
                           "anything else: abort releases the lock if this run holds it",
                "Choices": [{"Variable": "$.error.Error", "StringEquals": ENGINE_WORK_FAILED,
                             "Next": "RecordFailedRunTask"}],
                "Default": "ReleaseLockTask",
            },
            "RecordFailedRunTask": launcher.first_task(job.finalize_role, "StartRecordFailedRun"),
            **launcher.single("RecordFailedRun", job.finalize_role, next_state="RecordFailure",
                              catch_next="FindLeftoverInstances", error_path="$.release_error"),
            "ReleaseLockTask": launcher.first_task(job.abort_role, "StartReleaseLock"),
            **launcher.single("ReleaseLock", job.abort_role, next_state="RecordFailure",
                              catch_next="FindLeftoverInstances", error_path="$.release_error"),
            # The finalize or abort instance itself failed (timed out, lost): it must not be left running.
            **terminate_instances_states("FindLeftoverInstances", "AnyLeftoverInstances",
                                         "TerminateLeftoverInstances", "RecordFailure",
                                         backup_id=self.backup_id, kind=job.kind),
        }

    def _record_failure(self, topic_arn: str, *, next_state: str) -> Dict[str, Any]:
        job = self.job
        return {
            "RecordFailure": self._record("failed", next_state=next_state),
            "NotifyFailure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {"TopicArn": topic_arn, "Subject.$": job.failure_subject,
                               "Message.$": job.failure_message},
                "ResultSelector": {"message_id.$": "$.MessageId"},
                "ResultPath": "$.notified",
                "Next": "RunFailed",
            },
            "RunFailed": {"Type": "Fail", "Error": f"{job.kind.capitalize()}RunFailed",
                          "Cause": "the run failed; see the notification and the run-history table"},
        }

    def _record_refusal(self, *, next_state: str) -> Dict[str, Any]:
        """PutItem of a refused input (state made by ``refusal``): status failed, error InvalidInput and why."""
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": self.table.table_name, "Item": {
                "backup_id": {"S": self.backup_id},
                "run": {"S.$": "States.Format('{}#{}', $.started, $.run_id)"},
                "execution": {"S.$": "$.run_id"},
                "kind": {"S": self.job.kind},
                "started": {"S.$": "$.started"},
                "status": {"S": "failed"},
                "error": {"S.$": "States.JsonToString($.error)"},
                "summary": {"S": "{}"},
                "refused_input": {"S.$": "$.input"},
            }},
            "ResultSelector": {"recorded": True},
            "ResultPath": "$.recorded",
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3,
                       "BackoffRate": 2}],
            "Next": next_state,
        }

    def _record(self, outcome: str, *, next_state: str) -> Dict[str, Any]:
        """PutItem of the run summary into the run-history table (readable without mounting EFS)."""
        item: Dict[str, Any] = {
            "backup_id": {"S.$": "$.backup_id"},
            "run": {"S.$": "States.Format('{}#{}', $.started, $.run_id)"},
            "execution": {"S.$": "$.run_id"},
            "kind": {"S": self.job.kind},
            "started": {"S.$": "$.started"},
            "summary": {"S.$": "States.JsonToString($.summary)"},
            **self.job.record_fields,
        }
        if outcome == "success":
            item["status"] = {"S.$": "$.summary.status"}
        else:
            item["status"] = {"S": "failed"}
            item["error"] = {"S.$": "States.JsonToString($.error)"}
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": self.table.table_name, "Item": item},
            "ResultSelector": {"recorded": True},
            "ResultPath": "$.recorded",
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "MaxAttempts": 3,
                       "BackoffRate": 2}],
            "Next": next_state,
        }

    # ------------------------------------------------------------------------------------------------ permissions

    def _grant(self, stack: Stack, launch_template: WorkerLaunchTemplate, worker: WorkerIdentity,
               subnet_ids: Sequence[str], topic: sns.ITopic) -> None:
        """The state machine role's statements (launching the workers, running them, Spot, the root volumes' key),
        and the worker's right to its own task object."""
        settings = launch_template.settings
        statements = (self._launch_statements(stack, launch_template, worker, subnet_ids)
                      + self._run_statements(stack, topic)
                      + (_spot_statements(stack) if settings.spot else [])
                      + _root_volume_key_statements(stack, settings.ebs_kms_key_arn))
        for statement in statements:
            self.role.add_to_principal_policy(statement)
        # The worker reads its own task object (its key is in its user data) and deletes it, every version of it:
        # the task token must not outlive the task in a versioned bucket.
        worker.add_to_policy(iam.PolicyStatement(
            sid="ReadAndDeleteOwnTask",
            actions=["s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
            resources=[self.task_bucket.arn_for_objects(f"{self.task_prefix}*")],
        ))

    def _launch_statements(self, stack: Stack, launch_template: WorkerLaunchTemplate, worker: WorkerIdentity,
                           subnet_ids: Sequence[str]) -> List[iam.PolicyStatement]:
        """RunInstances from the launch template only, into the configured subnets and security groups, tagged with
        this backup id, from the worker image, passing only the worker role."""
        backup_tag = {f"aws:RequestTag/{TAG_BACKUP_ID}": self.backup_id}
        return [
            iam.PolicyStatement(
                sid="RunWorkersFromTheTemplate",
                actions=["ec2:RunInstances"],
                resources=[launch_template.launch_template_arn()]
                + [_arn(stack, "subnet", subnet) for subnet in subnet_ids]
                + [_arn(stack, "security-group", group) for group in launch_template.security_group_ids],
            ),
            iam.PolicyStatement(
                sid="RunWorkersTaggedWithTheBackupId",
                actions=["ec2:RunInstances"],
                resources=[_arn(stack, "instance", "*"), _arn(stack, "volume", "*")],
                conditions={"StringEquals": backup_tag},
            ),
            iam.PolicyStatement(
                sid="RunWorkersNetworkInterface",
                actions=["ec2:RunInstances"],
                resources=[_arn(stack, "network-interface", "*")],
                conditions={"ArnEquals": {"ec2:Subnet": [_arn(stack, "subnet", subnet) for subnet in subnet_ids]}},
            ),
            # The worker image (Amazon Linux 2023 by default, or worker_image), item 7 of issue 11.
            *launch_template.image_permissions(
                parameter_arn=lambda name, aws_owned: _arn(stack, "parameter", name, account=not aws_owned,
                                                           service="ssm"),
                image_arn=lambda image: _arn(stack, "image", image, account=False)),
            iam.PolicyStatement(
                sid="TagWorkersAtLaunch",
                actions=["ec2:CreateTags"],
                resources=[_arn(stack, "instance", "*"), _arn(stack, "volume", "*")],
                conditions={"StringEquals": {"ec2:CreateAction": "RunInstances", **backup_tag}},
            ),
            iam.PolicyStatement(
                sid="PassOnlyTheWorkerRoleToEc2",
                actions=["iam:PassRole"],
                resources=[worker.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
        ]

    def _run_statements(self, stack: Stack, topic: sns.ITopic) -> List[iam.PolicyStatement]:
        """Handing out tasks, finding and terminating this backup id's workers, seeing this state machine's own
        executions, recording run summaries and publishing outcomes."""
        return [
            iam.PolicyStatement(
                sid="HandEachWorkerItsTask",
                actions=["s3:PutObject"],
                resources=[self.task_bucket.arn_for_objects(f"{self.task_prefix}*")],
            ),
            iam.PolicyStatement(
                sid="FindWorkerInstances",
                actions=["ec2:DescribeInstances"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TerminateOnlyThisBackupIdsWorkers",
                actions=["ec2:TerminateInstances"],
                resources=[_arn(stack, "instance", "*")],
                conditions={"StringEquals": {f"ec2:ResourceTag/{TAG_BACKUP_ID}": self.backup_id}},
            ),
            iam.PolicyStatement(
                sid="SeeOwnRunningExecutions",
                actions=["states:ListExecutions"],
                resources=[self.state_machine_arn_literal],
            ),
            iam.PolicyStatement(
                sid="RecordRunSummaries",
                actions=["dynamodb:PutItem"],
                resources=[self.table.table_arn],
            ),
            iam.PolicyStatement(
                sid="PublishOutcomes",
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
            ),
        ]

    def _acknowledge(self, stack: Stack, worker: WorkerIdentity) -> None:
        """Each remaining wildcard of the state machine role, with its reason (cdk-nag IAM5)."""
        instance_any = nag_resource(stack, stack.format_arn(service="ec2", resource="instance", resource_name="*"))
        volume_any = nag_resource(stack, stack.format_arn(service="ec2", resource="volume", resource_name="*"))
        eni_any = nag_resource(stack, stack.format_arn(service="ec2", resource="network-interface",
                                                       resource_name="*"))
        image_any = nag_resource(stack, stack.format_arn(service="ec2", resource="image", resource_name="*",
                                                         account=""))
        tasks = nag_resource(stack, self.task_bucket.arn_for_objects(f"{self.task_prefix}*"))
        task_reason = ("Task objects are named by execution, step and worker index at run time "
                       f"({self.task_prefix}<execution>/<step>-<index>.json); limited to this workflow's prefix.")
        worker_policy = worker.role.node.find_child("DefaultPolicy").node.default_child
        Validations.of(worker_policy).acknowledge(
            Acknowledgment(id=f"{NAG_PACK}AwsSolutions-IAM5[Resource::{tasks}]", reason=task_reason))
        extra: Dict[str, str] = {}
        settings = self.launch_template_settings
        if settings.spot:
            spot = nag_resource(stack, stack.format_arn(service="ec2", resource="spot-instances-request",
                                                        resource_name="*"))
            extra[f"IAM5[Resource::{spot}]"] = (
                "The Spot request is created by RunInstances itself (its id exists only after the launch); the "
                "launch is otherwise limited by the template, subnets, images and tags of the other statements.")
        if not settings.ebs_kms_key_arn:
            any_key = nag_resource(stack, stack.format_arn(service="kms", resource="key", resource_name="*"))
            extra[f"IAM5[Resource::{any_key}]"] = (
                "The root volume's key is the account's EBS default key, which only the account knows (it may be "
                "customer managed); usable through EC2 in this region only (kms:ViaService), grants only for AWS "
                "resources. Set worker_ebs_kms_key to grant one key instead.")
        findings = {
            **extra,
            f"IAM5[Resource::{tasks}]": task_reason,
            "IAM5[Resource::*]": (
                "ec2:DescribeInstances has no resource-level permissions (it only reads; the execution filters by its "
                "tags), and the X-Ray and CloudWatch Logs delivery actions the CDK adds for tracing and logging "
                "support only '*'."
            ),
            f"IAM5[Resource::{instance_any}]": (
                "Instance ids exist only after launch: RunInstances/CreateTags are limited by the aws:RequestTag of "
                "this backup-id, TerminateInstances by the ec2:ResourceTag of this backup-id."
            ),
            f"IAM5[Resource::{volume_any}]": (
                "The root volume is created by RunInstances; RunInstances and CreateTags on volumes are limited by "
                "the aws:RequestTag of this backup-id (and CreateTags to ec2:CreateAction RunInstances)."
            ),
            f"IAM5[Resource::{eni_any}]": (
                "The network interface is created by RunInstances, so its id is unknown; limited to the configured "
                "subnets by the ec2:Subnet condition."
            ),
            f"IAM5[Resource::{image_any}]": (
                "The AMI id is resolved at every launch from AWS's public Amazon Linux 2023 SSM parameter, so it "
                "changes with each release; limited to images owned by Amazon (ec2:Owner)."
            ),
        }
        policy = self.role.node.find_child("DefaultPolicy").node.default_child
        Validations.of(policy).acknowledge(
            *(Acknowledgment(id=f"{NAG_PACK}AwsSolutions-{rule}", reason=reason) for rule, reason in findings.items())
        )


def _arn(stack: Stack, resource: str, name: str, *, region: bool = True, account: bool = True,
         service: str = "ec2") -> str:
    """An ARN of this stack's partition (and, unless told otherwise, its region and account)."""
    return stack.format_arn(service=service, resource=resource, resource_name=name,
                            region=None if region else "", account=None if account else "")


def _spot_statements(stack: Stack) -> List[iam.PolicyStatement]:
    """A Spot launch through RunInstances also creates a spot-instances-request (untagged here: the launch tags only
    instances and volumes), and needs the Spot service-linked role, which EC2 creates on the first Spot request of
    an account if the caller may (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/
    service-linked-roles-spot-instance-requests.html; the spot-instances-request resource of RunInstances:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html)."""
    return [
        iam.PolicyStatement(
            sid="RunWorkersAsSpotInstances",
            actions=["ec2:RunInstances"],
            resources=[_arn(stack, "spot-instances-request", "*")],
        ),
        iam.PolicyStatement(
            sid="CreateTheSpotServiceLinkedRoleOnce",
            actions=["iam:CreateServiceLinkedRole"],
            resources=[stack.format_arn(service="iam", region="", resource="role",
                                        resource_name="aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot")],
            conditions={"StringLike": {"iam:AWSServiceName": "spot.amazonaws.com"}},
        ),
    ]


def _root_volume_key_statements(stack: Stack, ebs_kms_key_arn: Optional[str]) -> List[iam.PolicyStatement]:
    """Encrypted root volumes: the principal that calls RunInstances must be allowed to use the volume's KMS key
    (kms:CreateGrant for AWS resources only, Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext, ReEncrypt*;
    https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html#ebs-encryption-permissions),
    otherwise an instance whose default EBS key is customer managed goes from pending to terminated
    (Client.InvalidKMSKey.InvalidState). The AWS managed aws/ebs key needs no grant. worker_ebs_kms_key names the
    key (only it is granted); by default the account's own keys are granted through EC2 only."""
    keys = [ebs_kms_key_arn] if ebs_kms_key_arn else [stack.format_arn(service="kms", resource="key",
                                                                       resource_name="*")]
    via_ec2 = {"kms:ViaService": f"ec2.{stack.region}.amazonaws.com"}
    return [
        iam.PolicyStatement(
            sid="UseTheRootVolumeKeyThroughEc2",
            actions=["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                     "kms:ReEncryptTo"],
            resources=keys,
            conditions={"StringEquals": via_ec2},
        ),
        iam.PolicyStatement(
            sid="LetEc2GrantItselfTheRootVolumeKey",
            actions=["kms:CreateGrant"],
            resources=keys,
            conditions={"StringEquals": via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    ]


def run_history_table(scope: Construct, construct_id: str) -> dynamodb.Table:
    """The run-history table both workflows record into: key backup_id, sort key run (<started>#<execution>)."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name="backup_id", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="run", type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )


# ------------------------------------------------------------------------------------------------ launching workers

# What the worker's task object (in S3) holds: head + task token + middle + task JSON + tail (a token is base64-like
# text, the task is JSON: no escaping needed; States.Format cannot write literal braces portably).
TASK_ENVELOPE = {"head": '{"task_token": "', "middle": '", "task": ', "tail": "}"}
# Retried in place first, with exponential backoff and full jitter: the error names Step Functions gives AWS SDK
# integration errors (ServiceName.ErrorName + "Exception", https://docs.aws.amazon.com/step-functions/latest/dg/
# supported-services-awssdk.html). RequestLimitExceeded: EC2 API throttling, retry with backoff
# (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html); InsufficientInstanceCapacity: retry
# later, in another zone or with another type (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/
# troubleshooting-launch.html#troubleshooting-launch-capacity); InvalidParameterValue "Invalid IAM Instance
# Profile": a role or instance profile created moments ago is not usable by EC2 yet (IAM is eventually consistent,
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
# EC2's SDK models no exception per error code, and Step Functions reports its errors as Ec2.Ec2Exception with the
# code's message in the cause (e.g. https://github.com/CloudSnorkel/cdk-github-runners/issues/182): retried too (a
# failed launch created nothing, so at worst a permanent error fails about a minute later).
LAUNCH_RETRY_ERRORS = ("Ec2.InsufficientInstanceCapacityException", "Ec2.RequestLimitExceededException",
                       "Ec2.InvalidParameterValueException", "Ec2.Ec2Exception")
LAUNCH_RETRY = {"ErrorEquals": list(LAUNCH_RETRY_ERRORS), "IntervalSeconds": 5, "MaxAttempts": 3,
                "BackoffRate": 2, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"}
# After the in-place retries (or when the error has another name: some SDK paths report EC2 errors as
# Ec2.Ec2Exception with the code only in the message, and moto names them after the API call), the launch moves on
# to its next placement when the error or its message says it is worth another try. Matched on both fields.
RETRYABLE_ERROR_PATTERNS = ("*InsufficientInstanceCapacity*", "*InsufficientCapacity*", "*RequestLimitExceeded*",
                            "*Unsupported*")
RETRYABLE_CAUSE_PATTERNS = (
    "*sufficient*capacity*",  # "We currently do not have sufficient m6i.large capacity in the Availability Zone..."
    "*no Spot capacity*",  # "There is no Spot capacity available that matches your request."
    "*Request limit exceeded*",
    "*is not supported in your requested Availability Zone*",  # error code Unsupported
    "*Invalid IAM Instance Profile*", "*iamInstanceProfile*",  # a fresh instance profile (InvalidParameterValue)
)
MAX_BACKOFF_SECONDS = 60


def launch_placements(subnet_ids: Sequence[str], instance_types: Sequence[str]) -> Dict[str, List[Any]]:
    """The lists launch attempts pick from: attempt a of worker i uses ``subnets[i + a]`` and ``instance_types[a]``
    (each instance type through every subnet, in order, then two more rounds of the last for throttling), and waits
    up to ``backoff_seconds[a]`` (full jitter) before attempt a + 1."""
    zones, types = len(subnet_ids), len(instance_types)
    attempts = zones * types + 2
    return {
        "subnets": [subnet_ids[k % zones] for k in range(MAX_WORKERS + attempts)],
        "instance_types": [instance_types[min(a // zones, types - 1)] for a in range(attempts)],
        "backoff_seconds": [min(5 * 2 ** a, MAX_BACKOFF_SECONDS) for a in range(attempts)],
    }


def _field_matches(field: str, pattern: str) -> Dict[str, Any]:
    path = f"$.launch_error.{field}"
    return {"And": [{"Variable": path, "IsPresent": True}, {"Variable": path, "IsString": True},
                    {"Variable": path, "StringMatches": pattern}]}


def launch_states(step: str, role: str, *, launch_template: WorkerLaunchTemplate, task_bucket: str,
                  task_prefix: str, backup_id: str, kind: str, workers: WorkerSettings, attempts: int,
                  done: Dict[str, Any], result_path: str, give_up: Optional[str], error_path: str,
                  wait_name: Optional[str] = None) -> Dict[str, Any]:
    """One worker instance for ``step`` (the prefix of the state names, also part of the task object's key):

    ``Start<step>`` (ec2:RunInstances, request-response: Retry with backoff and full jitter; a failed launch created
    nothing, so trying again is safe) ─► ``<step>`` or ``wait_name`` (s3:PutObject.waitForTaskToken: writes the task
    token and the
    task to ``tasks/<kind>/<run_id>/<step>-<index>.json``, which the instance reads and deletes, then waits for the
    worker's report under a heartbeat and a task timeout).
    A launch error worth another try ─► ``<step>NextLaunch`` (next subnet / instance type, a random wait up to the
    attempt's backoff) ─► ``Start<step>``; otherwise, or after the last attempt, ``<step>LaunchGivenUp``: a Fail
    state with the launch's error (``give_up`` None: inside the Map, whose Catch takes it) or the error stored at
    ``error_path`` and on to ``give_up``.

    The user data is constant-size (the bootstrap plus the object's key): what a task carries (a restore's paths)
    never meets the 16 KB user-data limit or States.Base64Encode's 10,000 characters
    (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html#asl-intrsc-func-base64encode).
    Expects in the state: ``run_id``, ``subnets``, ``instance_types``, ``backoff_seconds``, ``bootstrap``,
    ``envelope`` and ``launch`` = {index, attempt, task}."""
    key = f"States.Format('{task_prefix}{{}}/{step}-{{}}.json', $.run_id, $.launch.index)"
    start, wait_name = f"Start{step}", wait_name or step
    retry_next, next_launch, backoff, given_up = (f"{step}LaunchRetryable", f"{step}NextLaunch",
                                                  f"{step}LaunchBackoff", f"{step}LaunchGivenUp")
    wait = _wait_for_report(role, key, task_bucket=task_bucket, workers=workers, result_path=result_path, done=done)
    if give_up is not None:
        wait["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": error_path, "Next": give_up}]
    return {
        start: _start_instance(role, key, launch_template=launch_template, backup_id=backup_id, kind=kind,
                               next_state=wait_name, on_error=retry_next),
        retry_next: _launch_retryable(attempts, next_launch=next_launch, given_up=given_up),
        next_launch: _next_placement(backoff),
        backoff: {"Type": "Wait", "SecondsPath": "$.launch.delay", "Next": start},
        given_up: _launch_given_up(give_up, error_path),
        wait_name: wait,
    }


def _instance_tags(role: str, backup_id: str, kind: str) -> List[Dict[str, str]]:
    return [
        {"Key": TAG_BACKUP_ID, "Value": backup_id},
        {"Key": TAG_EXECUTION, "Value.$": "$.run_id"},
        {"Key": TAG_ROLE, "Value": role},
        {"Key": TAG_WORKFLOW, "Value": kind},
        {"Key": "Name", "Value.$": f"States.Format('efs-backup {role} {{}}', $.run_id)"},
    ]


def _start_instance(role: str, key: str, *, launch_template: WorkerLaunchTemplate, backup_id: str, kind: str,
                    next_state: str, on_error: str) -> Dict[str, Any]:
    """ec2:RunInstances of one instance from the launch template at the current placement; its user data is the
    bootstrap plus where its task object is."""
    tags = _instance_tags(role, backup_id, kind)
    return {
        "Type": "Task",
        "Comment": f"one instance that runs worker.sh ({role}); its user data holds only where its task is",
        "Resource": "arn:aws:states:::aws-sdk:ec2:runInstances",
        "Parameters": {
            "LaunchTemplate": {
                "LaunchTemplateId": launch_template.launch_template_id,
                "Version": launch_template.launch_template_version,
            },
            "InstanceType.$": "States.ArrayGetItem($.instance_types, $.launch.attempt)",
            "MinCount": 1,
            "MaxCount": 1,
            "NetworkInterfaces": [{
                "DeviceIndex": 0,
                "SubnetId.$": "States.ArrayGetItem($.subnets, States.MathAdd($.launch.index, $.launch.attempt))",
                "Groups": launch_template.security_group_ids,
                "AssociatePublicIpAddress": False,
                "DeleteOnTermination": True,
            }],
            "TagSpecifications": [{"ResourceType": resource, "Tags": tags} for resource in ("instance", "volume")],
            "UserData.$": f"States.Base64Encode(States.Format('{{}}{{}}{{}}', $.bootstrap.head, {key}, "
                          "$.bootstrap.tail))",
        },
        # SDK results hold timestamps (and moto cannot serialise them): keep the ids only.
        "ResultSelector": {"instance_ids.$": "$.Instances[*].InstanceId"},
        "ResultPath": "$.launched",
        "Retry": [LAUNCH_RETRY],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.launch_error", "Next": on_error}],
        "Next": next_state,
    }


def _launch_retryable(attempts: int, *, next_launch: str, given_up: str) -> Dict[str, Any]:
    return {
        "Type": "Choice",
        "Comment": "capacity, throttling or a fresh instance profile, and attempts left: try the next placement",
        "Choices": [{
            "And": [
                {"Variable": "$.launch.attempt", "NumericLessThan": attempts - 1},
                {"Or": [_field_matches("Error", p) for p in RETRYABLE_ERROR_PATTERNS]
                 + [_field_matches("Cause", p) for p in RETRYABLE_CAUSE_PATTERNS]},
            ],
            "Next": next_launch,
        }],
        "Default": given_up,
    }


def _next_placement(backoff: str) -> Dict[str, Any]:
    """The next launch attempt (next subnet, then instance type) after a random wait up to its backoff."""
    return {
        "Type": "Pass",
        "Parameters": {
            "index.$": "$.launch.index",
            "attempt.$": "States.MathAdd($.launch.attempt, 1)",
            "task.$": "$.launch.task",
            "delay.$": "States.MathRandom(1, States.ArrayGetItem($.backoff_seconds, $.launch.attempt))",
        },
        "ResultPath": "$.launch",
        "Next": backoff,
    }


def _launch_given_up(give_up: Optional[str], error_path: str) -> Dict[str, Any]:
    if give_up is None:
        return {"Type": "Fail", "ErrorPath": "$.launch_error.Error", "CausePath": "$.launch_error.Cause"}
    return {"Type": "Pass", "InputPath": "$.launch_error", "ResultPath": error_path, "Next": give_up}


def _wait_for_report(role: str, key: str, *, task_bucket: str, workers: WorkerSettings, result_path: str,
                     done: Dict[str, Any]) -> Dict[str, Any]:
    """s3:PutObject.waitForTaskToken: writes the task object (token and task), then waits for the worker's report
    under a heartbeat and a task timeout."""
    return {
        "Type": "Task",
        "Comment": f"the task of the {role} instance, with its task token; waits for the worker's report",
        "Resource": "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken",
        "Parameters": {
            "Bucket": task_bucket,
            "Key.$": key,
            "ContentType": "application/json",
            "Body.$": ("States.Format('{}{}{}{}{}', $.envelope.head, $$.Task.Token, $.envelope.middle, "
                       "States.JsonToString($.launch.task), $.envelope.tail)"),
        },
        "HeartbeatSeconds": workers.heartbeat_timeout_seconds,
        "TimeoutSeconds": workers.timeout_hours * 3600,
        "ResultPath": result_path,
        **done,
    }


@dataclass(frozen=True)
class WorkerLauncher:
    """The states that start worker instances for one job (launch_states), with what all its launches share."""

    launch_template: WorkerLaunchTemplate
    workers: WorkerSettings
    task_bucket: str
    task_prefix: str
    backup_id: str
    kind: str
    placement: Dict[str, List[Any]]  # launch_placements
    task_base: Dict[str, Any]  # the fields of every worker's task, evaluated against PlanWorkers' output

    def launch(self, step: str, role: str, *, done: Dict[str, Any], result_path: str, give_up: Optional[str],
               error_path: str = "$.error", wait_name: Optional[str] = None) -> Dict[str, Any]:
        """The states that start one instance for ``step`` and wait for its report (see launch_states)."""
        return launch_states(
            step, role, wait_name=wait_name, launch_template=self.launch_template, task_bucket=self.task_bucket,
            task_prefix=self.task_prefix, backup_id=self.backup_id, kind=self.kind, workers=self.workers,
            attempts=len(self.placement["instance_types"]), done=done, result_path=result_path, give_up=give_up,
            error_path=error_path,
        )

    def single(self, step: str, role: str, *, next_state: str, catch_next: str, error_path: str) -> Dict[str, Any]:
        """One instance outside the Map (finalize or abort); its report becomes $.summary. Any failure (the launch
        given up, the worker's reported failure, a timeout) goes to catch_next with the error at error_path."""
        states = self.launch(step, role, done={"Next": f"{step}Reported"}, result_path="$.summary",
                             give_up=catch_next, error_path=error_path)
        # The task (a restore's request, again) is not needed any more: keep the state small (256 KiB at most).
        states[f"{step}Reported"] = {"Type": "Pass", "Result": {}, "ResultPath": "$.launch", "Next": next_state}
        return states

    def first_task(self, role: str, next_state: str) -> Dict[str, Any]:
        """A Pass state that puts the task of a single ``role`` instance, its first launch attempt, in $.launch."""
        return {
            "Type": "Pass",
            "Comment": f"the task object of the {role} instance, its first launch attempt",
            "Parameters": {"index": 0, "attempt": 0,
                           "task": {**self.task_base, "role": role, "worker_index": 0}},
            "ResultPath": "$.launch",
            "Next": next_state,
        }


def terminate_instances_states(find: str, any_left: str, terminate: str, next_state: str, *, backup_id: str,
                               kind: str) -> Dict[str, Any]:
    """Terminate every instance of this execution that is not terminated yet, then go on to next_state (also when
    looking or terminating fails: the failure path must always reach the record)."""
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": next_state}]
    return {
        find: {
            "Type": "Task",
            "Comment": "every instance this execution launched that is not terminated yet",
            "Resource": "arn:aws:states:::aws-sdk:ec2:describeInstances",
            "Parameters": {"Filters": [
                {"Name": f"tag:{TAG_EXECUTION}", "Values.$": "States.Array($.run_id)"},
                {"Name": f"tag:{TAG_BACKUP_ID}", "Values": [backup_id]},
                {"Name": f"tag:{TAG_WORKFLOW}", "Values": [kind]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ]},
            "ResultSelector": {"ids.$": "$.Reservations[*].Instances[*].InstanceId"},
            "ResultPath": "$.instances",
            "Next": any_left,
            "Catch": catch,
        },
        any_left: {
            "Type": "Choice",
            "Choices": [{"Variable": "$.instances.ids[0]", "IsPresent": True, "Next": terminate}],
            "Default": next_state,
        },
        terminate: {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:ec2:terminateInstances",
            "Parameters": {"InstanceIds.$": "$.instances.ids"},
            "ResultSelector": {"count.$": "States.ArrayLength($.TerminatingInstances)"},
            "ResultPath": "$.terminated",
            "Next": next_state,
            "Catch": catch,
        },
    }


def refusal(cause: str) -> Dict[str, Any]:
    """The state a job's validation goes to when it refuses the input: keeps the execution's name, start and input
    and the reason, then records and notifies the refusal (RecordRefusedInput) and fails with InvalidInput."""
    return {
        "Type": "Pass",
        "Comment": "refused input: nothing is launched",
        "Parameters": {
            "run_id.$": "$$.Execution.Name",
            "started.$": "$$.State.EnteredTime",
            "input.$": "States.JsonToString($$.Execution.Input)",
            "error": {"Error": "InvalidInput", "Cause": cause},
        },
        "Next": "RecordRefusedInput",
    }


def optional_field_is_valid(path: str, test: Dict[str, Any]) -> Dict[str, Any]:
    """Choice rule: the field is absent, or present and passes ``test`` (a rule without Variable)."""
    return {"Or": [{"Variable": path, "IsPresent": False},
                   {"And": [{"Variable": path, "IsPresent": True}, {"Variable": path, **test}]}]}

