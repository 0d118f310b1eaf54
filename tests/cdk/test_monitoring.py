"""Monitoring in the synthesized template: the alarm topic, the newest-snapshot publisher and its schedule, every
alarm (metric, dimensions, statistic, period, threshold, comparison, missing data, actions), the throughput-mode
dependent file system alarms, the dashboard, the run-metrics grant, and CloudWatch's evaluation-range limits.
The publisher and the run-metrics states are executed in moto in tests/orchestration/test_monitoring_moto.py."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from cdk_helpers import synthesize
from constructs.run_metrics import NAMESPACE, PART_METRIC_NAMES, RUN_METRIC_NAMES, RunMetrics
from efs_backup_contract.intervals import INTERVAL_SECONDS

GIB = 1024 ** 3
VARIANTS = {
    # bursting throughput, custom thresholds, an hourly schedule, e-mail subscriptions
    "bursting": ("example", dict(backup_throughput_mode="bursting", alarm_stale_multiple="3.5",
                                 alarm_burst_credit_minimum_gib="100", alarm_utilization_percent="75",
                                 retain_hourly="24", schedule_hourly="rate(1 hour)",
                                 notification_emails="ops@example.com,backup@example.com")),
    "provisioned": ("example", dict(backup_performance_mode="maxIO", backup_throughput_mode="provisioned",
                                    backup_provisioned_throughput_mibps="128")),
    "disabled": ("example", dict(schedules_enabled="false")),
    "manual": ("example", dict(schedule_daily="none", schedule_weekly="none", schedule_monthly="none",
                               dashboard="true")),
}


@pytest.fixture(scope="module")
def synth(synthesized, tmp_path_factory):
    """``synth(name)``: a shipped environment (session cache) or one of VARIANTS (built once per module)."""
    cache = {}

    def get(name: str):
        if name not in VARIANTS:
            return synthesized(name)
        if name not in cache:
            env, overrides = VARIANTS[name]
            cache[name] = synthesize(env, tmp_path_factory.mktemp(f"monitoring-{name}"), **overrides)
        return cache[name]

    return get


def resources(s, kind: str) -> Dict[str, Dict[str, Any]]:
    return {k: v for k, v in s.template_json["Resources"].items() if v["Type"] == kind}


def logical_id(s, construct) -> str:
    return s.stack.get_logical_id(construct.node.default_child)


def alarms(s) -> Dict[str, Dict[str, Any]]:
    """Alarm properties by alarm name without the stack-name prefix."""
    prefix = f"{s.config.stack_name}-"
    found = {}
    for alarm in resources(s, "AWS::CloudWatch::Alarm").values():
        name = alarm["Properties"]["AlarmName"]
        assert name.startswith(prefix), name  # the alarm topic's key and policy admit only <prefix>-* alarms
        found[name[len(prefix):]] = alarm["Properties"]
    return found


def metric_stats(props) -> Dict[str, Dict[str, Any]]:
    """Id -> {Metric: {Namespace, MetricName, Dimensions}, Stat, Period}, for metric-math and single-metric alarms."""
    if "Metrics" not in props:
        return {"m": {"Metric": {"Namespace": props["Namespace"], "MetricName": props["MetricName"],
                                 "Dimensions": props["Dimensions"]},
                      "Stat": props["Statistic"], "Period": props["Period"]}}
    return {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}


def expression(props) -> str:
    (returned,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    return returned["Expression"]


def render(value: Any) -> str:
    """Join an Fn::Join, rendering tokens as readable placeholders (Ref:X, GetAtt:X.Y)."""
    if isinstance(value, str):
        return value
    (name, argument), = value.items()
    if name == "Fn::Join":
        return argument[0].join(render(part) for part in argument[1])
    if name == "Ref":
        return f"Ref:{argument}"
    if name == "Fn::GetAtt":
        return f"GetAtt:{argument[0]}.{argument[1]}"
    raise ValueError(value)


def scheduled(s) -> List[str]:
    return [p.interval for p in s.config.retention if p.enabled and p.schedule]


def state_machine_ids(s) -> Dict[str, str]:
    """Logical ids of the state machines the alarms watch (every state machine except the publisher)."""
    publisher = logical_id(s, s.stack.monitoring.publisher) if s.stack.monitoring.publisher else None
    return {k: v for k, v in resources(s, "AWS::StepFunctions::StateMachine").items() if k != publisher}


# ---------------------------------------------------------------------------------------------------- alarm topic


@pytest.mark.parametrize("name", ["example", "bursting"])
def test_alarm_topic_is_encrypted_with_a_rotated_key_that_only_our_alarms_may_use(name, synth):
    s = synth(name)
    topic_id = logical_id(s, s.stack.monitoring.alarm_topic)
    key_id = logical_id(s, s.stack.monitoring.alarm_key)
    topic = s.template_json["Resources"][topic_id]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = s.template_json["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    alarms_arn = f"arn:aws:cloudwatch:{s.config.region}:{s.config.account}:alarm:{s.config.stack_name}-*"
    only_ours = {"StringEquals": {"aws:SourceAccount": s.config.account}, "ArnLike": {"aws:SourceArn": alarms_arn}}
    (cloudwatch,) = [st for st in key["KeyPolicy"]["Statement"] if st.get("Sid") == "CloudWatchAlarmsPublishEncrypted"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == only_ours
    (policy,) = [p["Properties"] for p in resources(s, "AWS::SNS::TopicPolicy").values()
                 if p["Properties"]["Topics"] == [{"Ref": topic_id}]]
    statements = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    assert statements["AllowPublishThroughSSLOnly"]["Effect"] == "Deny"
    assert statements["CloudWatchAlarmsPublish"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statements["CloudWatchAlarmsPublish"]["Condition"] == only_ours
    emails = sorted(sub["Properties"]["Endpoint"] for sub in resources(s, "AWS::SNS::Subscription").values()
                    if sub["Properties"]["TopicArn"] == {"Ref": topic_id})
    assert emails == sorted(s.config.notifications.emails)
    assert s.template_json["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": topic_id}


@pytest.mark.parametrize("name", ["example", "production-eu", "bursting", "provisioned", "disabled", "manual"])
def test_every_alarm_notifies_the_alarm_topic_and_respects_the_evaluation_range_limit(name, synth):
    s = synth(name)
    topic = {"Ref": logical_id(s, s.stack.monitoring.alarm_topic)}
    found = alarms(s)
    assert found
    for alarm_name, props in found.items():
        assert props["AlarmActions"] == [topic], alarm_name
        if alarm_name.endswith("-failed"):
            assert "OKActions" not in props, "a failed run is news; the next period's OK is not"
        else:
            assert props["OKActions"] == [topic], alarm_name
        assert props["AlarmDescription"], alarm_name
        periods = {stat["Period"] for stat in metric_stats(props).values()}
        (period,) = periods  # metric math: every metric of an alarm has the alarm's period
        # CloudWatch: Period x EvaluationPeriods <= 7 days, and <= 1 day for periods under an hour.
        limit = 86400 if period < 3600 else 604800
        assert period * props["EvaluationPeriods"] <= limit, alarm_name
        assert props.get("DatapointsToAlarm", props["EvaluationPeriods"]) <= props["EvaluationPeriods"]


# ---------------------------------------------------------------------------------------------- run-failed alarms


@pytest.mark.parametrize("name", ["example", "production-eu"])
def test_each_state_machine_alarms_on_failed_timed_out_and_aborted_executions(name, synth):
    s = synth(name)
    found = alarms(s)
    failed = {alarm_name: props for alarm_name, props in found.items() if alarm_name.endswith("-failed")}
    watched = set()
    for props in failed.values():
        stats = metric_stats(props)
        assert {stat["Metric"]["MetricName"] for stat in stats.values()} == {
            "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
        for stat in stats.values():
            assert stat["Metric"]["Namespace"] == "AWS/States"
            assert stat["Stat"] == "Sum" and stat["Period"] == 300
            (dimension,) = stat["Metric"]["Dimensions"]
            assert dimension["Name"] == "StateMachineArn"
            watched.add(dimension["Value"]["Ref"])
        assert expression(props) == "FILL(m1, 0) + FILL(m2, 0) + FILL(m3, 0)"
        assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert props["EvaluationPeriods"] == 1 and props["TreatMissingData"] == "notBreaching"
    assert watched == set(state_machine_ids(s))
    assert "backup-failed" in failed
    backup = s.stack.workflow.state_machine
    assert metric_stats(failed["backup-failed"])["m1"]["Metric"]["Dimensions"][0]["Value"] == {
        "Ref": logical_id(s, backup)}


# ------------------------------------------------------------------------------------------ newest-snapshot age


@pytest.mark.parametrize("name", ["example", "production-eu", "bursting"])
def test_each_scheduled_interval_alarms_when_its_newest_snapshot_is_stale(name, synth):
    s = synth(name)
    multiple = s.config.monitoring.stale_multiple
    stale = {n[len("snapshot-stale-"):]: p for n, p in alarms(s).items() if n.startswith("snapshot-stale-")}
    assert sorted(stale) == sorted(scheduled(s))  # only intervals that have a schedule
    for interval, props in stale.items():
        assert expression(props) == "EPOCH(m1) - m1"
        (stat,) = metric_stats(props).values()
        assert stat["Metric"] == {
            "Namespace": NAMESPACE, "MetricName": "NewestSnapshotTimestamp",
            "Dimensions": [{"Name": "BackupId", "Value": s.config.backup_id}, {"Name": "Interval", "Value": interval}],
        }
        assert stat["Stat"] == "Maximum" and stat["Period"] == 3600
        assert props["Threshold"] == round(multiple * INTERVAL_SECONDS[interval])
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "breaching"  # a stopped publisher or schedule must alarm
        assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (4, 3)


def test_stale_thresholds_follow_the_configured_multiple(synth):
    stale = alarms(synth("bursting"))
    assert stale["snapshot-stale-hourly"]["Threshold"] == 3.5 * 3600
    assert stale["snapshot-stale-daily"]["Threshold"] == 3.5 * 86400
    assert stale["snapshot-stale-weekly"]["Threshold"] == 3.5 * 7 * 86400
    assert stale["snapshot-stale-monthly"]["Threshold"] == 3.5 * 31 * 86400
    assert "snapshot-stale-hourly" not in alarms(synth("production-eu")), "retained but not scheduled"


@pytest.mark.parametrize("name", ["example", "production-eu", "bursting"])
def test_publisher_reads_each_scheduled_intervals_newest_item_and_runs_hourly(name, synth):
    s = synth(name)
    monitoring = s.stack.monitoring
    publisher_id = logical_id(s, monitoring.publisher)
    machine = s.template_json["Resources"][publisher_id]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert machine["TracingConfiguration"] == {"Enabled": True}
    definition = json.loads(render(machine["DefinitionString"]))
    assert definition["States"]["ScheduledIntervals"]["Result"] == {"intervals": scheduled(s)}
    inner = definition["States"]["PublishEachInterval"]["ItemProcessor"]["States"]
    read = inner["ReadNewestSnapshot"]["Parameters"]
    assert read["TableName"] == f"Ref:{logical_id(s, s.stack.workflow.table)}"
    assert read["Key"] == {"backup_id": {"S": f"{s.config.backup_id}#latest"}, "run": {"S.$": "$.interval"}}
    for state in ("PublishNewestSnapshotTime", "PublishNoSnapshotYet"):
        (datum,) = inner[state]["Parameters"]["MetricData"]
        assert inner[state]["Parameters"]["Namespace"] == NAMESPACE
        assert datum["MetricName"] == "NewestSnapshotTimestamp"
        assert datum["Dimensions"] == [{"Name": "BackupId", "Value": s.config.backup_id},
                                       {"Name": "Interval", "Value.$": "$.interval"}]
    assert inner["PublishNoSnapshotYet"]["Parameters"]["MetricData"][0]["Value"] == 0

    (schedule,) = [r["Properties"] for r in resources(s, "AWS::Scheduler::Schedule").values()
                   if r["Properties"]["Target"]["Arn"] == {"Ref": publisher_id}]
    assert schedule["Name"] == f"{s.config.stack_name}-snapshot-age"
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ScheduleExpressionTimezone"] == s.config.schedule_timezone
    assert schedule["State"] == "ENABLED"
    schedule_role = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
    (start,) = [p["Properties"]["PolicyDocument"]["Statement"] for p in resources(s, "AWS::IAM::Policy").values()
                if p["Properties"]["Roles"] == [{"Ref": schedule_role}]]
    assert start == [{"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": publisher_id},
                      "Sid": "StartPublisher"}]

    role_id = logical_id(s, monitoring.publisher_role)
    (policy,) = [p["Properties"]["PolicyDocument"]["Statement"] for p in resources(s, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    by_sid = {st.get("Sid"): st for st in policy}
    assert by_sid["ReadNewestSnapshotItems"]["Action"] == "dynamodb:GetItem"
    assert by_sid["ReadNewestSnapshotItems"]["Resource"] == {"Fn::GetAtt": [logical_id(s, s.stack.workflow.table),
                                                                              "Arn"]}
    assert by_sid["ReadNewestSnapshotItems"]["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"{s.config.backup_id}#latest"]}}
    assert by_sid["PublishSnapshotAge"]["Action"] == "cloudwatch:PutMetricData"
    assert by_sid["PublishSnapshotAge"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_disabled_schedules_disable_the_publisher_and_drop_the_stale_alarms(synth):
    s = synth("disabled")
    (schedule,) = [r["Properties"] for r in resources(s, "AWS::Scheduler::Schedule").values()
                   if r["Properties"]["Name"].endswith("-snapshot-age")]
    assert schedule["State"] == "DISABLED"
    assert not [n for n in alarms(s) if n.startswith("snapshot-stale-")]


def test_without_scheduled_intervals_there_is_no_publisher(synth):
    s = synth("manual")
    assert s.stack.monitoring.publisher is None
    assert not [r for r in resources(s, "AWS::Scheduler::Schedule").values()]
    assert not [n for n in alarms(s) if n.startswith("snapshot-stale-")]
    assert "backup-failed" in alarms(s)


# ------------------------------------------------------------------------------------------- file system alarms


def fs_alarms(s) -> Dict[str, Dict[str, Any]]:
    return {n: p for n, p in alarms(s).items() if n.startswith("backup-fs-")}


def assert_on_backup_file_system(s, props):
    for stat in metric_stats(props).values():
        assert stat["Metric"]["Namespace"] == "AWS/EFS"
        assert stat["Metric"]["Dimensions"] == [
            {"Name": "FileSystemId", "Value": {"Ref": logical_id(s, s.stack.backup_file_system.file_system)}}]
        assert stat["Period"] == 300
    assert props["EvaluationPeriods"] == 3 and props["TreatMissingData"] == "notBreaching"


def test_general_purpose_elastic_alarms_on_io_limit_and_throughput_utilization(synth):
    s = synth("example")
    found = fs_alarms(s)
    assert sorted(found) == ["backup-fs-io-limit-high", "backup-fs-throughput-high"]
    io = found["backup-fs-io-limit-high"]
    assert_on_backup_file_system(s, io)
    (stat,) = metric_stats(io).values()
    assert (stat["Metric"]["MetricName"], stat["Stat"]) == ("PercentIOLimit", "Average")
    throughput = found["backup-fs-throughput-high"]
    assert_on_backup_file_system(s, throughput)
    assert expression(throughput) == "100 * (m1 / PERIOD(m1)) / m2"
    stats = metric_stats(throughput)
    assert (stats["m1"]["Metric"]["MetricName"], stats["m1"]["Stat"]) == ("MeteredIOBytes", "Sum")
    assert (stats["m2"]["Metric"]["MetricName"], stats["m2"]["Stat"]) == ("PermittedThroughput", "Average")
    for props in found.values():
        assert props["Threshold"] == 90 and props["ComparisonOperator"] == "GreaterThanThreshold"


def test_bursting_alarms_on_low_burst_credits(synth):
    s = synth("bursting")
    found = fs_alarms(s)
    assert sorted(found) == ["backup-fs-burst-credits-low", "backup-fs-io-limit-high"]
    credits = found["backup-fs-burst-credits-low"]
    assert_on_backup_file_system(s, credits)
    (stat,) = metric_stats(credits).values()
    assert (stat["Metric"]["MetricName"], stat["Stat"]) == ("BurstCreditBalance", "Minimum")
    assert credits["Threshold"] == 100 * GIB and credits["ComparisonOperator"] == "LessThanThreshold"
    assert found["backup-fs-io-limit-high"]["Threshold"] == 75


def test_max_io_provisioned_alarms_on_throughput_utilization_only(synth):
    found = fs_alarms(synth("provisioned"))
    assert sorted(found) == ["backup-fs-throughput-high"]


# ------------------------------------------------------------------------------------------------------ dashboard


def dashboard_body(s) -> Dict[str, Any]:
    (dashboard,) = resources(s, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == s.config.stack_name
    return json.loads(render(dashboard["Properties"]["DashboardBody"]))


def test_dashboard_only_when_enabled(synth):
    assert not resources(synth("example"), "AWS::CloudWatch::Dashboard")
    assert "DashboardName" not in synth("example").template_json["Outputs"]
    s = synth("production-eu")
    assert s.config.monitoring.dashboard is True
    assert s.template_json["Outputs"]["DashboardName"]["Value"] == {
        "Ref": logical_id(s, s.stack.monitoring.dashboard)}


def test_dashboard_shows_runs_age_throughput_credits_and_alarms(synth):
    s = synth("production-eu")
    widgets = dashboard_body(s)["widgets"]
    text = json.dumps(widgets)
    titles = [w["properties"].get("title") for w in widgets]
    assert "Newest snapshot age (hours)" in titles and "File system throughput (MiB/s)" in titles
    used = [p.interval for p in s.config.retention if p.enabled]
    metrics = [m for w in widgets for m in w["properties"].get("metrics", [])]
    named = {(m[0], m[1], m[5]) for m in metrics if len(m) > 5 and m[0] == NAMESPACE}  # namespace, name, interval
    for name in RUN_METRIC_NAMES + PART_METRIC_NAMES:
        assert {(NAMESPACE, name, interval) for interval in used} <= named, name
    for interval in scheduled(s):
        assert (NAMESPACE, "NewestSnapshotTimestamp", interval) in named
    assert text.count("(EPOCH(") == len(scheduled(s))
    source, backup = s.config.source_file_system_id, f"Ref:{logical_id(s, s.stack.backup_file_system.file_system)}"
    for fs in (source, backup):
        assert ["AWS/EFS", "TotalIOBytes", "FileSystemId", fs] in [m[:4] for m in metrics]
    assert ["AWS/EFS", "BurstCreditBalance", "FileSystemId", source] in [m[:4] for m in metrics]
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    region, account = s.config.region, s.config.account
    assert sorted(status["properties"]["alarms"]) == sorted(
        f"arn:aws:cloudwatch:{region}:{account}:alarm:{s.config.stack_name}-{name}" for name in alarms(s))


def test_dashboard_without_schedules_explains_the_missing_age(synth):
    widgets = dashboard_body(synth("manual"))["widgets"]
    assert any(w["type"] == "text" and "No interval has a schedule" in w["properties"]["markdown"] for w in widgets)
    assert "EPOCH" not in json.dumps(widgets)


# -------------------------------------------------------------------------------------------- run-metrics grant


def test_run_metrics_grant_is_exactly_what_the_states_call_and_nag_clean():
    app = cdk.App()
    stack = cdk.Stack(app, "Grant", env=cdk.Environment(account="111111111111", region="us-east-1"))
    table = dynamodb.Table(stack, "Runs", partition_key=dynamodb.Attribute(name="backup_id",
                                                                          type=dynamodb.AttributeType.STRING),
                           sort_key=dynamodb.Attribute(name="run", type=dynamodb.AttributeType.STRING),
                           point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                               point_in_time_recovery_enabled=True))
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
    metrics = RunMetrics(stack, "RunMetrics", backup_id="home", table=table)
    policy = metrics.grant(role)
    assert metrics.grant(role) is policy, "one policy however often it is granted"
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    template = app.synth().get_stack_by_name("Grant").template
    (document,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    assert document["Roles"] == [{"Ref": stack.get_logical_id(role.node.default_child)}]
    table_id = stack.get_logical_id(table.node.default_child)
    assert document["PolicyDocument"]["Statement"] == [
        {"Action": "cloudwatch:PutMetricData", "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
         "Effect": "Allow", "Resource": "*", "Sid": "PublishRunMetrics"},
        {"Action": "dynamodb:PutItem",
         "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["home#latest"]}},
         "Effect": "Allow", "Resource": {"Fn::GetAtt": [table_id, "Arn"]}, "Sid": "RecordNewestSnapshot"},
    ]
    report = AwsSolutionsChecks().validate_scope(app)
    findings = {(r.construct_path, v.rule_name) for v in report.violations for r in v.violating_resources}
    assert findings == {("Grant/RunMetrics/Policy/Resource", "AwsSolutions-IAM5[Resource::*]")}  # acknowledged


def test_fragment_states_write_the_newest_item_into_the_run_table(synth):
    s = synth("example")
    scratch = cdk.Stack(cdk.App(), "Scratch")
    metrics = RunMetrics(scratch, "RunMetrics", backup_id=s.config.backup_id,
                         table=dynamodb.Table.from_table_name(scratch, "Runs", "runs"))
    states = metrics.states("Publish", "Next", "success")
    item = states["PublishRecordLatest"]["Parameters"]["Item"]
    assert item["backup_id"] == {"S": f"{s.config.backup_id}#latest"} and item["run"] == {"S.$": "$.interval"}
    assert item["finished"] == {"N.$": "States.Format('{}', $.summary.finished_epoch)"}
    data = states["PublishPutRun"]["Parameters"]["MetricData"]
    assert [d["MetricName"] for d in data] == list(RUN_METRIC_NAMES)
    assert {json.dumps(d["Dimensions"]) for d in data} == {json.dumps([
        {"Name": "BackupId", "Value": s.config.backup_id}, {"Name": "Interval", "Value.$": "$.interval"}])}
    units = {d["MetricName"]: d["Unit"] for d in data + states["PublishPutParts"]["Parameters"]["MetricData"]}
    assert units == {"RunsSucceeded": "Count", "RunsFailed": "Count", "RunDurationSeconds": "Seconds",
                     "FilesScanned": "Count", "FilesTransferred": "Count", "BytesTransferred": "Bytes",
                     "Warnings": "Count", "FailedParts": "Count", "PartDurationSeconds": "Seconds",
                     "PartFilesScanned": "Count", "PartBytesTransferred": "Bytes"}
    assert "PublishRecordLatest" not in metrics.states("PublishFailed", "Next", "failure")
