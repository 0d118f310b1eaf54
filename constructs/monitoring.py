"""Monitoring: the newest-snapshot publisher, the alarms and the optional dashboard.

* **Alarm topic.** CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key ``alias/aws/sns``
  (its key policy cannot admit the CloudWatch service), which is how the run-notification topic is encrypted. The
  alarms therefore publish to their own topic, encrypted with a customer managed key (rotated) whose policy lets
  ``cloudwatch.amazonaws.com`` use it only for this account's alarms named ``<prefix>-*``; the same e-mail addresses
  are subscribed. The topic accepts only TLS publishers.
* **Newest-snapshot age.** JSONPath cannot do date arithmetic, so a small STANDARD state machine, started every hour
  by an EventBridge Scheduler schedule, reads each scheduled interval's "latest" item from the run-history table
  (written by the backup workflow's run metrics, see run_metrics.py) and publishes ``NewestSnapshotTimestamp``
  (epoch seconds of the newest promoted snapshot's end; 0 when the interval has none yet). The age is metric math:
  ``EPOCH(m1) - m1`` (``EPOCH`` gives each datapoint's timestamp in seconds). A period without a datapoint has no
  value at all; the stale alarms treat missing data as breaching, so a stopped publisher alarms.
* **Alarms** (all to the alarm topic): per state machine, any execution that failed, timed out or was aborted; per
  scheduled interval (when schedules are enabled), newest snapshot older than ``alarm_stale_multiple`` interval
  lengths, missing data breaching; for the backup file system, depending on its modes: burst credits low
  (bursting), ``PercentIOLimit`` high (generalPurpose), permitted-throughput utilization high (elastic and
  provisioned).
* **Dashboard** (``dashboard: true``): run outcomes, durations, bytes and files, part statistics, newest-snapshot
  age per interval, both file systems' throughput and burst credits, and the alarms.

moto runs the publisher (tests/orchestration/test_monitoring_moto.py); alarms, the dashboard and the schedule are
asserted on the template (moto evaluates no alarm math and fires no schedule).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from constructs.run_metrics import NAMESPACE, latest_key, present
from constructs.nag import NAG_PACK
from efs_backup_contract.deployment import METRIC_NEWEST_SNAPSHOT
from efs_backup_contract.intervals import INTERVAL_SECONDS
from settings.model import BackupFileSystemSettings, IntervalPolicy, MonitoringSettings

NEWEST_SNAPSHOT_METRIC = METRIC_NEWEST_SNAPSHOT
PUBLISHER_RATE = "rate(1 hour)"
AGE_PERIOD = Duration.hours(1)  # one publisher datapoint per period
# Stale: 3 of the last 4 hourly periods breach, so the current hour (not published yet) plus one late datapoint
# cannot raise it, while a stopped publisher or schedule raises it within about 3 hours.
AGE_EVALUATION_PERIODS, AGE_DATAPOINTS_TO_ALARM = 4, 3
RUN_FAILED_PERIOD = Duration.minutes(5)
RUN_FAILED_METRICS = ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
FS_PERIOD = Duration.minutes(5)
FS_EVALUATION_PERIODS = 3  # 15 minutes sustained
GIB = 1024 ** 3
MIB = 1024 ** 2
_RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 2}]


def newest_snapshot_metric(backup_id: str, interval: str) -> cw.Metric:
    return cw.Metric(namespace=NAMESPACE, metric_name=NEWEST_SNAPSHOT_METRIC,
                     dimensions_map={"BackupId": backup_id, "Interval": interval},
                     statistic="Maximum", period=AGE_PERIOD)


def snapshot_age(backup_id: str, interval: str, *, hours: bool = False, metric_id: str = "m1") -> cw.MathExpression:
    """Seconds (or hours) since the interval's newest snapshot finished, as of each period's start."""
    age = f"EPOCH({metric_id}) - {metric_id}"
    return cw.MathExpression(expression=f"({age}) / 3600" if hours else age,
                             using_metrics={metric_id: newest_snapshot_metric(backup_id, interval)},
                             period=AGE_PERIOD, label=f"{interval} newest snapshot age{' (h)' if hours else ' (s)'}")


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        backup_id: str,
        settings: MonitoringSettings,
        policies: Sequence[IntervalPolicy],
        schedules_enabled: bool,
        timezone: str,
        run_table: dynamodb.ITable,
        state_machines: Mapping[str, sfn.IStateMachine],
        source_file_system_id: str,
        backup_file_system_id: str,
        backup_file_system: BackupFileSystemSettings,
        emails: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.name_prefix = name_prefix
        self.backup_id = backup_id
        self.settings = settings
        self.scheduled = [p.interval for p in policies if p.enabled and p.schedule]
        self.used = [p.interval for p in policies if p.enabled]
        self.alarms: Dict[str, cw.Alarm] = {}  # by name without the prefix
        self.alarm_names: Dict[str, str] = {}  # construct id -> full alarm name

        self._alarm_topic(stack, emails)
        self.publisher: Optional[sfn.StateMachine] = None
        self.publisher_schedule: Optional[scheduler.CfnSchedule] = None
        if self.scheduled:
            self._publisher(stack, run_table, schedules_enabled, timezone)

        for label, machine in state_machines.items():
            self._run_failed_alarm(label, machine)
        if schedules_enabled:
            for interval in self.scheduled:
                self._stale_alarm(interval)
        self._file_system_alarms(backup_file_system_id, backup_file_system)

        self.dashboard: Optional[cw.Dashboard] = None
        if settings.dashboard:
            self._dashboard(state_machines, source_file_system_id, backup_file_system_id, backup_file_system)

    # ------------------------------------------------------------------------------------------------ alarm topic

    def _alarm_topic(self, stack: Stack, emails: Sequence[str]) -> None:
        alarms_arn = stack.format_arn(service="cloudwatch", resource="alarm", resource_name=f"{self.name_prefix}-*",
                                      arn_format=_colon_resource_name())
        only_our_alarms = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": alarms_arn},
        }
        self.alarm_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"efs-backup {self.name_prefix}: encrypts the alarm topic (CloudWatch alarms publish to it)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.alarm_key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublishEncrypted",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions=only_our_alarms,
        ))
        self.alarm_topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"efs-backup alarms {self.name_prefix}"[:100],
            master_key=self.alarm_key,
            enforce_ssl=True,
        )
        self.alarm_topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[self.alarm_topic.topic_arn],
            conditions=only_our_alarms,
        ))
        for email in emails:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(email))
        self._action = cw_actions.SnsAction(self.alarm_topic)

    def _alarm(self, construct_id: str, *, name: str, description: str, ok_action: bool, **props: Any) -> cw.Alarm:
        full_name = f"{self.name_prefix}-{name}"[:255]
        alarm = cw.Alarm(self, construct_id, alarm_name=full_name, alarm_description=description, **props)
        alarm.add_alarm_action(self._action)
        if ok_action:
            alarm.add_ok_action(self._action)
        self.alarms[name] = alarm
        self.alarm_names[construct_id] = full_name
        return alarm

    # ------------------------------------------------------------------------------------------------ publisher

    def publisher_definition(self, table_name: str) -> Dict[str, Any]:
        """Publish NewestSnapshotTimestamp for every scheduled interval (0 while it has no snapshot)."""

        def put(value: Dict[str, Any]) -> Dict[str, Any]:
            return {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
                "Parameters": {"Namespace": NAMESPACE, "MetricData": [{
                    "MetricName": NEWEST_SNAPSHOT_METRIC,
                    "Dimensions": [{"Name": "BackupId", "Value": self.backup_id},
                                   {"Name": "Interval", "Value.$": "$.interval"}],
                    "Unit": "Seconds",
                    **value,
                }]},
                "ResultSelector": {"published": True},
                "ResultPath": "$.published",
                "Retry": _RETRY,
                "End": True,
            }

        return {
            "Comment": f"efs-backup {self.backup_id}: publish each scheduled interval's newest-snapshot time "
                       "(failing leaves a gap, which the stale-snapshot alarms treat as breaching)",
            "StartAt": "ScheduledIntervals",
            "States": {
                "ScheduledIntervals": {"Type": "Pass", "Result": {"intervals": list(self.scheduled)},
                                       "Next": "PublishEachInterval"},
                "PublishEachInterval": {
                    "Type": "Map",
                    "ItemsPath": "$.intervals",
                    "ItemSelector": {"interval.$": "$$.Map.Item.Value"},
                    "MaxConcurrency": 0,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "ReadNewestSnapshot",
                        "States": {
                            "ReadNewestSnapshot": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::dynamodb:getItem",
                                "Parameters": {
                                    "TableName": table_name,
                                    "Key": {"backup_id": {"S": latest_key(self.backup_id)},
                                            "run": {"S.$": "$.interval"}},
                                    "ConsistentRead": True,
                                },
                                "ResultPath": "$.newest",
                                "Retry": _RETRY,
                                "Next": "HasNewestSnapshot",
                            },
                            "HasNewestSnapshot": {
                                "Type": "Choice",
                                "Choices": [{"And": present("$.newest.Item.finished.N", "IsString"),
                                             "Next": "PublishNewestSnapshotTime"}],
                                "Default": "PublishNoSnapshotYet",
                            },
                            "PublishNewestSnapshotTime": put(
                                {"Value.$": "States.StringToJson($.newest.Item.finished.N)"}),
                            "PublishNoSnapshotYet": put({"Value": 0}),
                        },
                    },
                    "ResultPath": "$.published",
                    "End": True,
                },
            },
        }

    def _publisher(self, stack: Stack, run_table: dynamodb.ITable, schedules_enabled: bool, timezone: str) -> None:
        name = f"{self.name_prefix}-snapshot-age"[:80]
        self.publisher_log_group = logs.LogGroup(
            self,
            "PublisherLogs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.publisher_role = iam.Role(
            self,
            "PublisherRole",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"efs-backup {self.backup_id}: read the newest-snapshot items, publish their age metric",
        )
        self.publisher_role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadNewestSnapshotItems",
            actions=["dynamodb:GetItem"],
            resources=[run_table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [latest_key(self.backup_id)]}},
        ))
        self.publisher_role.add_to_principal_policy(iam.PolicyStatement(
            sid="PublishSnapshotAge",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
        ))
        self.publisher = sfn.StateMachine(
            self,
            "Publisher",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(
                stack.to_json_string(self.publisher_definition(run_table.table_name))),
            role=self.publisher_role,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.publisher_log_group, level=sfn.LogLevel.ALL,
                                include_execution_data=False),
            timeout=Duration.minutes(15),
            removal_policy=RemovalPolicy.DESTROY,
        )
        Validations.of(self.publisher_role.node.find_child("DefaultPolicy").node.default_child).acknowledge(
            Acknowledgment(
                id=f"{NAG_PACK}AwsSolutions-IAM5[Resource::*]",
                reason="cloudwatch:PutMetricData has no resource-level permissions (limited to the "
                       f"{NAMESPACE} namespace by cloudwatch:namespace), and the X-Ray and CloudWatch Logs delivery "
                       "actions the CDK adds for tracing and logging support only '*'.",
            )
        )
        self.scheduler_role = iam.Role(
            self,
            "PublisherScheduleRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description=f"efs-backup {self.backup_id}: start the hourly newest-snapshot publisher",
        )
        self.scheduler_role.add_to_principal_policy(iam.PolicyStatement(
            sid="StartPublisher", actions=["states:StartExecution"], resources=[self.publisher.state_machine_arn],
        ))
        self.publisher_schedule = scheduler.CfnSchedule(
            self,
            "PublisherSchedule",
            name=f"{self.name_prefix}-snapshot-age"[:64],
            description="efs-backup: publish each scheduled interval's newest-snapshot time (stale-snapshot alarms)",
            schedule_expression=PUBLISHER_RATE,
            schedule_expression_timezone=timezone,  # no effect on a rate; kept like the backup schedules'
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if schedules_enabled else "DISABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.publisher.state_machine_arn,
                role_arn=self.scheduler_role.role_arn,
                input="{}",
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=3),
            ),
        )

    # ------------------------------------------------------------------------------------------------ alarms

    def _run_failed_alarm(self, label: str, machine: sfn.IStateMachine) -> None:
        metrics = {
            f"m{index}": cw.Metric(namespace="AWS/States", metric_name=metric_name,
                                   dimensions_map={"StateMachineArn": machine.state_machine_arn},
                                   statistic="Sum", period=RUN_FAILED_PERIOD)
            for index, metric_name in enumerate(RUN_FAILED_METRICS, start=1)
        }
        self._alarm(
            f"{label.capitalize()}Failed",
            name=f"{label}-failed",
            description=(
                f"A {label} execution failed, timed out or was aborted. Read the execution's notification or its "
                "run-history item (status, error, engine summary with each failed part and why) and the execution "
                "history; the next run of that interval resumes the work."
            ),
            ok_action=False,
            # FILL: these counts are sparse (no datapoint in a period without such executions); a period where only
            # one of them has data must still add up.
            metric=cw.MathExpression(expression=" + ".join(f"FILL({m}, 0)" for m in metrics), using_metrics=metrics,
                                     period=RUN_FAILED_PERIOD, label=f"{label} executions failed/timed out/aborted"),
            threshold=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

    def _stale_alarm(self, interval: str) -> None:
        limit = self.settings.stale_after_seconds(interval)
        self._alarm(
            f"Stale{interval.capitalize()}",
            name=f"snapshot-stale-{interval}",
            description=(
                f"The newest {interval} snapshot of {self.backup_id} is older than {self.settings.stale_multiple:g} "
                f"x {INTERVAL_SECONDS[interval] // 3600} h (or no age is being published). Check the {interval} "
                "schedule is enabled, the latest executions and their notifications, and the publisher "
                f"{self.name_prefix}-snapshot-age; start a {interval} run by hand once the cause is fixed."
            ),
            ok_action=True,
            metric=snapshot_age(self.backup_id, interval),
            threshold=limit,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=AGE_EVALUATION_PERIODS,
            datapoints_to_alarm=AGE_DATAPOINTS_TO_ALARM,
            treat_missing_data=cw.TreatMissingData.BREACHING,
        )

    def _file_system_alarms(self, file_system_id: str, fs: BackupFileSystemSettings) -> None:
        def metric(name: str, statistic: str) -> cw.Metric:
            return cw.Metric(namespace="AWS/EFS", metric_name=name, dimensions_map={"FileSystemId": file_system_id},
                             statistic=statistic, period=FS_PERIOD)

        common = dict(ok_action=True, evaluation_periods=FS_EVALUATION_PERIODS,
                      treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
        percent = self.settings.utilization_percent
        if fs.throughput_mode == "bursting":
            minimum = self.settings.burst_credit_minimum_gib
            self._alarm(
                "BackupBurstCreditsLow",
                name="backup-fs-burst-credits-low",
                description=(
                    f"The backup file system's burst credit balance is below {minimum} GiB: runs slow down to the "
                    "baseline throughput when it reaches zero. Spread the schedules, or switch the backup file "
                    "system to elastic throughput (backup_throughput_mode)."
                ),
                metric=metric("BurstCreditBalance", "Minimum"),
                threshold=minimum * GIB,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                **common,
            )
        if fs.performance_mode == "generalPurpose":
            self._alarm(
                "BackupIoLimitHigh",
                name="backup-fs-io-limit-high",
                description=(
                    f"The backup file system is above {percent}% of the General Purpose I/O limit: runs are "
                    "throttled on metadata operations. Use fewer workers (worker_count) or spread the schedules."
                ),
                metric=metric("PercentIOLimit", "Average"),
                threshold=percent,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                **common,
            )
        if fs.throughput_mode in ("elastic", "provisioned"):
            self._alarm(
                "BackupThroughputHigh",
                name="backup-fs-throughput-high",
                description=(
                    f"The backup file system uses more than {percent}% of its permitted throughput (metered I/O "
                    "over PermittedThroughput). With provisioned throughput raise "
                    "backup_provisioned_throughput_mibps; otherwise use fewer workers or spread the schedules."
                ),
                metric=cw.MathExpression(
                    expression="100 * (m1 / PERIOD(m1)) / m2",
                    using_metrics={"m1": metric("MeteredIOBytes", "Sum"), "m2": metric("PermittedThroughput",
                                                                                      "Average")},
                    period=FS_PERIOD, label="permitted throughput utilization (%)"),
                threshold=percent,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                **common,
            )

    # ------------------------------------------------------------------------------------------------ dashboard

    def _run_metric(self, name: str, interval: str, statistic: str, label: Optional[str] = None) -> cw.Metric:
        return cw.Metric(namespace=NAMESPACE, metric_name=name,
                         dimensions_map={"BackupId": self.backup_id, "Interval": interval},
                         statistic=statistic, period=Duration.hours(1), label=label or f"{interval} {name}")

    def _dashboard(self, state_machines: Mapping[str, sfn.IStateMachine], source_file_system_id: str,
                   backup_file_system_id: str, fs: BackupFileSystemSettings) -> None:
        used = self.used

        def per_interval(name: str, statistic: str) -> List[cw.IMetric]:
            return [self._run_metric(name, interval, statistic) for interval in used]

        def throughput(file_system_id: str, label: str) -> cw.MathExpression:
            metric_id = f"io_{label.split()[0]}"
            return cw.MathExpression(
                expression=f"{metric_id} / PERIOD({metric_id}) / {MIB}",
                using_metrics={metric_id: cw.Metric(namespace="AWS/EFS", metric_name="TotalIOBytes",
                                               dimensions_map={"FileSystemId": file_system_id}, statistic="Sum",
                                               period=FS_PERIOD)},
                period=FS_PERIOD, label=label)

        def credits(file_system_id: str, label: str) -> cw.MathExpression:
            metric_id = f"credits_{label.split()[0]}"
            return cw.MathExpression(
                expression=f"{metric_id} / {GIB}",
                using_metrics={metric_id: cw.Metric(namespace="AWS/EFS", metric_name="BurstCreditBalance",
                                               dimensions_map={"FileSystemId": file_system_id},
                                               statistic="Minimum", period=FS_PERIOD)},
                period=FS_PERIOD, label=label)

        width, height = 8, 6
        executions = [
            cw.Metric(namespace="AWS/States", metric_name=metric_name,
                      dimensions_map={"StateMachineArn": machine.state_machine_arn}, statistic="Sum",
                      period=Duration.hours(1), label=f"{label} {metric_name}")
            for label, machine in state_machines.items()
            for metric_name in ("ExecutionsSucceeded",) + RUN_FAILED_METRICS
        ]
        age_widget: cw.IWidget = cw.TextWidget(
            markdown="### Newest snapshot age\nNo interval has a schedule: ages are published for scheduled "
                     "intervals only.", width=width, height=height,
        ) if not self.scheduled else cw.GraphWidget(
            title="Newest snapshot age (hours)",
            left=[snapshot_age(self.backup_id, interval, hours=True, metric_id=f"newest_{interval}")
                  for interval in self.scheduled],
            left_annotations=[
                cw.HorizontalAnnotation(value=self.settings.stale_after_seconds(interval) / 3600,
                                        label=f"{interval} stale", color=cw.Color.RED)
                for interval in self.scheduled
            ],
            width=width, height=height,
        )
        file_systems = [throughput(source_file_system_id, "production MiB/s"),
                        throughput(backup_file_system_id, "backup MiB/s")]
        rows: List[List[cw.IWidget]] = [
            [
                cw.GraphWidget(title="Runs (succeeded / failed per hour)",
                               left=per_interval("RunsSucceeded", "Sum") + per_interval("RunsFailed", "Sum"),
                               width=width, height=height),
                cw.GraphWidget(title="Executions", left=executions, width=width, height=height),
                age_widget,
            ],
            [
                cw.GraphWidget(title="Run duration (seconds)", left=per_interval("RunDurationSeconds", "Maximum"),
                               width=width, height=height),
                cw.GraphWidget(title="Bytes transferred per run", left=per_interval("BytesTransferred", "Sum"),
                               width=width, height=height),
                cw.GraphWidget(title="Files scanned / transferred per run",
                               left=per_interval("FilesScanned", "Sum"),
                               right=per_interval("FilesTransferred", "Sum"), width=width, height=height),
            ],
            [
                cw.GraphWidget(title="Warnings and failed parts per run",
                               left=per_interval("Warnings", "Sum") + per_interval("FailedParts", "Sum"),
                               width=width, height=height),
                cw.GraphWidget(
                    title="Part duration (seconds: average, maximum)",
                    left=[self._run_metric("PartDurationSeconds", interval, statistic,
                                           f"{interval} part {statistic.lower()}")
                          for interval in used for statistic in ("Average", "Maximum")],
                    width=width, height=height),
                cw.GraphWidget(
                    title="Parts per run; largest part (files scanned, bytes transferred)",
                    left=[self._run_metric("PartDurationSeconds", interval, "SampleCount", f"{interval} parts")
                          for interval in used]
                    + [self._run_metric("PartFilesScanned", interval, "Maximum", f"{interval} most files in a part")
                       for interval in used],
                    right=[self._run_metric("PartBytesTransferred", interval, "Maximum",
                                            f"{interval} most bytes in a part") for interval in used],
                    width=width, height=height),
            ],
            [
                cw.GraphWidget(title="File system throughput (MiB/s)", left=file_systems, width=width,
                               height=height),
                cw.GraphWidget(
                    title="Burst credit balance (GiB, bursting mode only)",
                    left=[credits(source_file_system_id, "production")]
                    + ([credits(backup_file_system_id, "backup")] if fs.throughput_mode == "bursting" else []),
                    width=width, height=height),
                # The alarms by ARN built from their names (not GetAtt): the same ARNs, and the dashboard does not
                # depend on the alarm resources (moto's CloudFormation, which skips alarms, can deploy it).
                cw.AlarmStatusWidget(title="Alarms", width=width, height=height, alarms=[
                    cw.Alarm.from_alarm_arn(self, f"Status{construct_id}", Stack.of(self).format_arn(
                        service="cloudwatch", resource="alarm", resource_name=full_name,
                        arn_format=_colon_resource_name()))
                    for construct_id, full_name in self.alarm_names.items()
                ]),
            ],
        ]
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=self.name_prefix,
            widgets=rows,
            default_interval=Duration.days(14),
        )


def _colon_resource_name():
    from aws_cdk import ArnFormat

    return ArnFormat.COLON_RESOURCE_NAME
