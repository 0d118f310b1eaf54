"""The backup workflow: a Step Functions STANDARD state machine (JSONPath) and the run-history table.

One execution is one backup run of one interval. Input: ``{"interval": "daily", "retain": 7, "workers": 4}``
(``workers`` optional: the configured count). The definition is written as plain ASL (rendered with CDK tokens) so
what runs is exactly what the tests validate with asl-validator and execute in moto:

    ValidateInput ─► FindRunningExecutions ─► (another execution running?) ─► AlreadyRunning (ends, does nothing)
        │ bad input ─► InvalidInput (fails)
        ▼
    PlanWorkers ─► Workers (Map: LaunchWorker = ec2:runInstances.waitForTaskToken, role "work", per worker)
        ▼ every worker reported success                       │ any failure, heartbeat or task timeout, launch error
    Finalize (an instance running `finalize`)                  ▼
        ▼                                               FindWorkerInstances ─► TerminateWorkers (tag: execution)
    RecordRun (DynamoDB) ─► success|warning? ─┐               ▼
        │ failed                              │         part failures? ─► RecordFailedRun (instance: `finalize`,
        ▼                                     │               │            records failed parts, releases lock)
    NotifyFailure ─► RunFailed                │               └ else ────► ReleaseLock (instance: `abort`)
                                              ▼               ▼
                               NotifySuccess (if configured) ─► Done      RecordFailure ─► NotifyFailure ─► RunFailed

Tasks keep the state: results go to their own paths (trimmed by ResultSelector), never ``ResultPath: null``
(moto's interpreter replaces the state with the result there). The Map keeps each worker's report (the engine's
small ``work`` JSON) in ``$.worker_reports``. Every worker task has a heartbeat timeout (workers beat every fifth of it) and a task timeout; no callback task
relies on ``Retry``. The execution's instances carry the tags ``efs-backup:execution`` (execution name) and
``efs-backup:backup-id``; the role may terminate only instances with this backup-id's tag.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from constructs.script_bucket import NAG_PACK, nag_resource
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import WorkerLaunchTemplate
from stacks.config import INTERVALS, MAX_WORKERS, WorkerSettings

TAG_BACKUP_ID = "efs-backup:backup-id"
TAG_EXECUTION = "efs-backup:execution"
TAG_ROLE = "efs-backup:role"
ENGINE_WORK_FAILED = "EngineWorkFailed"  # the error worker.sh reports when parts failed (see worker.sh)


class BackupWorkflow(Construct):
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
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.backup_id = backup_id
        self.state_machine_name = state_machine_name
        self.state_machine_arn_literal = stack.format_arn(
            service="states", resource="stateMachine", resource_name=state_machine_name,
            arn_format=_colon_resource_name(),
        )

        self.table = dynamodb.Table(
            self,
            "RunHistory",
            partition_key=dynamodb.Attribute(name="backup_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="run", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{state_machine_name}",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"efs-backup state machine of backup-id {backup_id}: launch and stop workers, record, notify",
        )
        self._grant(stack, launch_template, worker, subnet_ids, topic)

        definition = self.definition(
            backup_id=backup_id,
            source_file_system_id=source_file_system_id,
            backup_file_system_id=backup_file_system_id,
            subnet_ids=subnet_ids,
            workers=workers,
            launch_template=launch_template,
            topic_arn=topic.topic_arn,
            notify_on_success=notify_on_success,
            region=stack.region,
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
        self._acknowledge(stack)

    # ------------------------------------------------------------------------------------------------ definition

    def definition(self, *, backup_id, source_file_system_id, backup_file_system_id, subnet_ids, workers,
                   launch_template, topic_arn, notify_on_success, region) -> Dict[str, Any]:
        timeout = workers.timeout_hours * 3600
        # Workers are spread over the subnets: worker i goes to subnets[i mod n] (JSONPath has no modulo, so the
        # list is laid out up to the largest worker count).
        spread = [subnet_ids[i % len(subnet_ids)] for i in range(MAX_WORKERS)]
        task_base = {
            "backup_id": backup_id,
            "source_file_system_id": source_file_system_id,
            "backup_file_system_id": backup_file_system_id,
            "region": region,
            "log_group": launch_template.log_group.log_group_name,
            "heartbeat_seconds": workers.heartbeat_interval_seconds,
            "interval.$": "$.interval",
            "retain.$": "$.retain",
            "worker_count.$": "$.workers",
            "run_id.$": "$.run_id",
        }  # evaluated against PlanWorkers' output (in the Map's ItemSelector, or a Pass state before a launch)

        def launch(role: str, subnet: str) -> Dict[str, Any]:
            """A Task that starts one instance with this task's token in its user data and waits for its report.
            ``$.task`` (the worker's named inputs) and ``$.bootstrap`` are in the state's input."""
            return {
                "Type": "Task",
                "Comment": f"one instance running worker.sh ({role}); it reports with the task token",
                "Resource": "arn:aws:states:::aws-sdk:ec2:runInstances.waitForTaskToken",
                "Parameters": {
                    "LaunchTemplate": {
                        "LaunchTemplateId": launch_template.launch_template_id,
                        "Version": launch_template.launch_template_version,
                    },
                    "MinCount": 1,
                    "MaxCount": 1,
                    "NetworkInterfaces": [{
                        "DeviceIndex": 0,
                        **({"SubnetId.$": subnet} if subnet.startswith("$") else {"SubnetId": subnet}),
                        "Groups": launch_template.security_group_ids,
                        "AssociatePublicIpAddress": False,
                        "DeleteOnTermination": True,
                    }],
                    "TagSpecifications": [
                        {"ResourceType": kind, "Tags": [
                            {"Key": TAG_BACKUP_ID, "Value": backup_id},
                            {"Key": TAG_EXECUTION, "Value.$": "$.run_id"},
                            {"Key": TAG_ROLE, "Value": role},
                            {"Key": "Name", "Value.$": f"States.Format('efs-backup {role} {{}}', $.run_id)"},
                        ]}
                        for kind in ("instance", "volume")
                    ],
                    "UserData.$": (
                        "States.Base64Encode(States.Format('{}{}{}{}{}', $.bootstrap.head, $$.Task.Token, "
                        "$.bootstrap.middle, States.JsonToString($.task), $.bootstrap.tail))"
                    ),
                },
                "HeartbeatSeconds": workers.heartbeat_timeout_seconds,
                "TimeoutSeconds": timeout,
            }

        def single(role: str, *, next_state: str, catch_next: str) -> Dict[str, Any]:
            """One instance outside the Map (finalize or abort); its report becomes $.summary."""
            return {
                **launch(role, subnet_ids[0]),
                "ResultPath": "$.summary",
                "Next": next_state,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": catch_next}],
            }

        interval_rules = [{"Variable": "$.interval", "StringEquals": i} for i in INTERVALS]
        states: Dict[str, Any] = {
            "ValidateInput": {
                "Type": "Choice",
                "Comment": "input: {interval: hourly|daily|weekly|monthly, retain: >= 1, workers?: 1..%d}" % MAX_WORKERS,
                "Choices": [
                    {
                        "And": [
                            {"Variable": "$.interval", "IsPresent": True},
                            {"Variable": "$.interval", "IsString": True},
                            {"Or": interval_rules},
                            {"Variable": "$.retain", "IsPresent": True},
                            {"Variable": "$.retain", "IsNumeric": True},
                            {"Variable": "$.retain", "NumericGreaterThanEquals": 1},
                        ],
                        "Next": "CheckWorkerCount",
                    }
                ],
                "Default": "InvalidInput",
            },
            "InvalidInput": {
                "Type": "Fail",
                "Error": "InvalidInput",
                "Cause": "expected input {\"interval\": \"hourly|daily|weekly|monthly\", \"retain\": N >= 1, "
                         "\"workers\": 1..%d (optional)}" % MAX_WORKERS,
            },
            "CheckWorkerCount": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.workers", "IsPresent": False, "Next": "DefaultWorkerCount"},
                    {
                        "And": [
                            {"Variable": "$.workers", "IsNumeric": True},
                            {"Variable": "$.workers", "NumericGreaterThanEquals": 1},
                            {"Variable": "$.workers", "NumericLessThanEquals": MAX_WORKERS},
                        ],
                        "Next": "FindRunningExecutions",
                    },
                ],
                "Default": "InvalidInput",
            },
            "DefaultWorkerCount": {
                "Type": "Pass",
                "Result": workers.count,
                "ResultPath": "$.workers",
                "Next": "FindRunningExecutions",
            },
            "FindRunningExecutions": {
                "Type": "Task",
                "Comment": "one run per backup-id: this execution counts itself",
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
                    "backup_id": backup_id,
                    "interval.$": "$.interval",
                    "message": "another execution of this state machine is running; this one did nothing",
                },
                "End": True,
            },
            "PlanWorkers": {
                "Type": "Pass",
                "Parameters": {
                    "backup_id": backup_id,
                    "interval.$": "$.interval",
                    "retain.$": "$.retain",
                    "workers.$": "$.workers",
                    "run_id.$": "$$.Execution.Name",
                    # When the run was planned (ISO 8601). $$.Execution.StartTime would do in AWS, but moto's context
                    # holds a datetime there that no intrinsic or integration can serialise.
                    "started.$": "$$.State.EnteredTime",
                    "indexes.$": "States.ArrayRange(0, States.MathAdd($.workers, -1), 1)",
                    "subnets": spread,
                    "bootstrap": launch_template.bootstrap_pieces(),
                    "summary": {},
                },
                "Next": "Workers",
            },
            "Workers": {
                "Type": "Map",
                "Comment": "one instance per worker; every worker prepares (joins) the run and works until no part is left",
                "ItemsPath": "$.indexes",
                "ItemSelector": {
                    "index.$": "$$.Map.Item.Value",
                    "run_id.$": "$.run_id",
                    "subnet.$": "States.ArrayGetItem($.subnets, $$.Map.Item.Value)",
                    "bootstrap.$": "$.bootstrap",
                    "task": {**task_base, "role": "work", "worker_index.$": "$$.Map.Item.Value"},
                },
                "MaxConcurrency": 0,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "LaunchWorker",
                    "States": {
                        # No Next, no Catch, no Retry: the Map's Catch handles every worker failure.
                        "LaunchWorker": {**launch("work", "$.subnet"), "End": True},
                    },
                },
                "ResultPath": "$.worker_reports",
                "Next": "FinalizeTask",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "FindWorkerInstances"}],
            },
        }
        def task_pass(role: str, next_state: str) -> Dict[str, Any]:
            return {
                "Type": "Pass",
                "Comment": f"the task object of the {role} instance",
                "Parameters": {**task_base, "role": role, "worker_index": 0},
                "ResultPath": "$.task",
                "Next": next_state,
            }

        states.update({
            "FinalizeTask": task_pass("finalize", "Finalize"),
            "Finalize": {**single("finalize", next_state="RecordRun", catch_next="FindWorkerInstances"),
                         "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                    "Next": "FindWorkerInstances"}]},
            "RecordRun": self._record("success", next_state="CheckOutcome"),
            "CheckOutcome": {
                "Type": "Choice",
                "Choices": [{"Or": [{"Variable": "$.summary.status", "StringEquals": "success"},
                                    {"Variable": "$.summary.status", "StringEquals": "warning"}],
                             "Next": "NotifySuccess" if notify_on_success else "Done"}],
                "Default": "NotifyFailure",
            },
            "Done": {"Type": "Succeed"},
            # ---- failure path
            "FindWorkerInstances": {
                "Type": "Task",
                "Comment": "every instance this execution launched that is not terminated yet",
                "Resource": "arn:aws:states:::aws-sdk:ec2:describeInstances",
                "Parameters": {"Filters": [
                    {"Name": f"tag:{TAG_EXECUTION}", "Values.$": "States.Array($.run_id)"},
                    {"Name": f"tag:{TAG_BACKUP_ID}", "Values": [backup_id]},
                    {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
                ]},
                "ResultSelector": {"ids.$": "$.Reservations[*].Instances[*].InstanceId"},
                "ResultPath": "$.instances",
                "Next": "AnyWorkerInstances",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": "ChooseRelease"}],
            },
            "AnyWorkerInstances": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.instances.ids[0]", "IsPresent": True, "Next": "TerminateWorkers"}],
                "Default": "ChooseRelease",
            },
            "TerminateWorkers": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:ec2:terminateInstances",
                "Parameters": {"InstanceIds.$": "$.instances.ids"},
                "ResultSelector": {"count.$": "States.ArrayLength($.TerminatingInstances)"},
                "ResultPath": "$.terminated",
                "Next": "ChooseRelease",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.cleanup_error", "Next": "ChooseRelease"}],
            },
            "ChooseRelease": {
                "Type": "Choice",
                "Comment": "part failures: finalize records them (nothing can be promoted) and releases the lock; "
                           "anything else: abort releases the lock if this run holds it",
                "Choices": [{"Variable": "$.error.Error", "StringEquals": ENGINE_WORK_FAILED,
                             "Next": "RecordFailedRunTask"}],
                "Default": "ReleaseLockTask",
            },
            "RecordFailedRunTask": task_pass("finalize", "RecordFailedRun"),
            "RecordFailedRun": single("finalize", next_state="RecordFailure", catch_next="RecordFailure"),
            "ReleaseLockTask": task_pass("abort", "ReleaseLock"),
            "ReleaseLock": single("abort", next_state="RecordFailure", catch_next="RecordFailure"),
            "RecordFailure": self._record("failed", next_state="NotifyFailure"),
            "NotifyFailure": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject.$": "States.Format('efs-backup {} {}: FAILED', $.backup_id, $.interval)",
                    "Message.$": (
                        "States.Format('efs-backup run {} of backup-id {}, interval {} (retain {}), started {}: "
                        "FAILED. Nothing was promoted; the next {} run resumes the work. Error: {}. Engine "
                        "summary (failed_parts names each failed part and why): {}', $.run_id, $.backup_id, "
                        "$.interval, $.retain, $.started, $.interval, States.JsonToString($.error), "
                        "States.JsonToString($.summary))"
                    ),
                },
                "ResultSelector": {"message_id.$": "$.MessageId"},
                "ResultPath": "$.notified",
                "Next": "RunFailed",
            },
            "RunFailed": {"Type": "Fail", "Error": "BackupRunFailed",
                          "Cause": "the run failed; see the notification and the run-history table"},
        })
        if notify_on_success:
            states["NotifySuccess"] = {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject.$": "States.Format('efs-backup {} {}: {}', $.backup_id, $.interval, $.summary.status)",
                    "Message.$": (
                        "States.Format('efs-backup run {} of backup-id {}, interval {} (retain {}), started {}: {}. "
                        "Snapshot {}, {} s, {} files scanned, {} bytes transferred, {} warnings. Engine summary: {}', "
                        "$.run_id, $.backup_id, $.interval, $.retain, $.started, $.summary.status, "
                        "$.summary.snapshot, $.summary.duration_seconds, $.summary.totals.files_scanned, "
                        "$.summary.totals.bytes_transferred, $.summary.warnings, States.JsonToString($.summary))"
                    ),
                },
                "ResultSelector": {"message_id.$": "$.MessageId"},
                "ResultPath": "$.notified",
                "Next": "Done",
            }
        states["Finalize"]["Catch"][0]["ResultPath"] = "$.error"
        return {
            "Comment": f"efs-backup of backup-id {backup_id}: one execution is one run of one interval",
            "StartAt": "ValidateInput",
            "States": states,
        }

    def _record(self, outcome: str, *, next_state: str) -> Dict[str, Any]:
        """PutItem of the run summary into the run-history table (readable without mounting EFS)."""
        item: Dict[str, Any] = {
            "backup_id": {"S.$": "$.backup_id"},
            "run": {"S.$": "States.Format('{}#{}', $.started, $.run_id)"},
            "execution": {"S.$": "$.run_id"},
            "interval": {"S.$": "$.interval"},
            "started": {"S.$": "$.started"},
            "summary": {"S.$": "States.JsonToString($.summary)"},
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
        def arn(resource: str, name: str, *, region: bool = True, account: bool = True, service: str = "ec2"):
            return stack.format_arn(service=service, resource=resource, resource_name=name,
                                    region=None if region else "", account=None if account else "")

        backup_tag = {f"aws:RequestTag/{TAG_BACKUP_ID}": self.backup_id}
        statements: List[iam.PolicyStatement] = [
            iam.PolicyStatement(
                sid="RunWorkersFromTheTemplate",
                actions=["ec2:RunInstances"],
                resources=[launch_template.launch_template_arn()]
                + [arn("subnet", subnet) for subnet in subnet_ids]
                + [arn("security-group", group) for group in launch_template.security_group_ids],
            ),
            iam.PolicyStatement(
                sid="RunWorkersTaggedWithTheBackupId",
                actions=["ec2:RunInstances"],
                resources=[arn("instance", "*"), arn("volume", "*")],
                conditions={"StringEquals": backup_tag},
            ),
            iam.PolicyStatement(
                sid="RunWorkersNetworkInterface",
                actions=["ec2:RunInstances"],
                resources=[arn("network-interface", "*")],
                conditions={"ArnEquals": {"ec2:Subnet": [arn("subnet", subnet) for subnet in subnet_ids]}},
            ),
            iam.PolicyStatement(
                sid="RunWorkersFromAmazonImages",
                actions=["ec2:RunInstances"],
                resources=[arn("image", "*", account=False)],
                conditions={"StringEquals": {"ec2:Owner": "amazon"}},
            ),
            iam.PolicyStatement(
                sid="ResolveTheAmazonLinuxImageAtLaunch",
                actions=["ssm:GetParameters", "ssm:GetParameter"],
                resources=[arn("parameter", launch_template.image_parameter.lstrip("/"), account=False,
                               service="ssm")],
            ),
            iam.PolicyStatement(
                sid="TagWorkersAtLaunch",
                actions=["ec2:CreateTags"],
                resources=[arn("instance", "*"), arn("volume", "*")],
                conditions={"StringEquals": {"ec2:CreateAction": "RunInstances", **backup_tag}},
            ),
            iam.PolicyStatement(
                sid="PassOnlyTheWorkerRoleToEc2",
                actions=["iam:PassRole"],
                resources=[worker.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="FindWorkerInstances",
                actions=["ec2:DescribeInstances"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TerminateOnlyThisBackupIdsWorkers",
                actions=["ec2:TerminateInstances"],
                resources=[arn("instance", "*")],
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
        for statement in statements:
            self.role.add_to_principal_policy(statement)

    def _acknowledge(self, stack: Stack) -> None:
        """Each remaining wildcard of the state machine role, with its reason (cdk-nag IAM5)."""
        instance_any = nag_resource(stack, stack.format_arn(service="ec2", resource="instance", resource_name="*"))
        volume_any = nag_resource(stack, stack.format_arn(service="ec2", resource="volume", resource_name="*"))
        eni_any = nag_resource(stack, stack.format_arn(service="ec2", resource="network-interface",
                                                       resource_name="*"))
        image_any = nag_resource(stack, stack.format_arn(service="ec2", resource="image", resource_name="*",
                                                         account=""))
        findings = {
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


def _colon_resource_name():
    from aws_cdk import ArnFormat

    return ArnFormat.COLON_RESOURCE_NAME
