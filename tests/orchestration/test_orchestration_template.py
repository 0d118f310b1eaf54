"""The orchestration in the synthesized template: launch template, IAM, state machine (asl-validator + structure),
schedules, topic, run history, log groups. The behaviour is proven end to end in test_orchestration_moto.py."""

from __future__ import annotations

import json
import re

import pytest

from orchestration_helpers import ASL_VALIDATOR, definition_of, state_machine_resource, validate_asl

ENVS = ("example", "production-eu")


def resources(synth, kind):
    return {k: v for k, v in synth.template_json["Resources"].items() if v["Type"] == kind}


def statements_by_sid(synth, role):
    role_id = synth.stack.get_logical_id(role.node.default_child)
    found = {}
    for policy in resources(synth, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                found[statement.get("Sid", json.dumps(statement["Action"]))] = statement
    return found


def launch_template_data(synth, construct):
    return synth.template_json["Resources"][synth.stack.get_logical_id(construct.launch_template)][
        "Properties"]["LaunchTemplateData"]


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("kind", ("backup", "restore"))
def test_launch_template(env, kind, synthesized):
    synth = synthesized(env)
    stack = synth.stack
    template, identity = {"backup": (stack.launch_template, stack.worker),
                          "restore": (stack.restore_launch_template, stack.restore_worker)}[kind]
    assert len(resources(synth, "AWS::EC2::LaunchTemplate")) == 2
    data = launch_template_data(synth, template)
    arch = synth.config.workers.architecture
    assert data["ImageId"] == f"resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert data["InstanceType"] == synth.config.workers.instance_type
    (volume,) = data["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True and volume["Ebs"]["DeleteOnTermination"] is True
    (interface,) = data["NetworkInterfaces"]
    assert interface["AssociatePublicIpAddress"] is False and len(interface["Groups"]) == 2
    assert "KeyName" not in data, "no SSH keys: Session Manager"
    assert "InstanceMarketOptions" not in data
    profile_id = stack.get_logical_id(identity.instance_profile.node.default_child)
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": [profile_id, "Arn"]}}, "each kind its own role"


def test_spot_from_config(synthesized):
    for template in resources(synthesized("example", worker_spot="true", worker_instance_type="m7g.large"),
                              "AWS::EC2::LaunchTemplate").values():
        data = template["Properties"]["LaunchTemplateData"]
        assert data["InstanceMarketOptions"]["MarketType"] == "spot"
        assert data["ImageId"].endswith("al2023-ami-kernel-default-arm64")


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("kind", ("backup", "restore"))
def test_state_machine_is_standard_logged_without_data_and_traced(env, kind, synthesized):
    synth = synthesized(env)
    props = state_machine_resource(synth.template_json, kind)["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert props["TracingConfiguration"] == {"Enabled": True}
    groups = resources(synth, "AWS::Logs::LogGroup")
    assert all(g["Properties"].get("RetentionInDays") for g in groups.values())


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("kind", ("backup", "restore"))
def test_definition_is_valid_asl(env, kind, synthesized, tmp_path):
    if not ASL_VALIDATOR.exists():
        pytest.fail("asl-validator is not installed: run tools/setup.sh (npm ci)")
    definition = definition_of(synthesized(env).template_json, kind=kind)
    result = validate_asl(definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = json.loads(json.dumps(definition))
    broken["States"]["PlanWorkers"]["Next"] = "NoSuchState"
    assert validate_asl(broken, tmp_path).returncode != 0, "the validator must catch a dangling Next"


def test_definition_structure(synthesized):
    synth = synthesized("example")
    definition = definition_of(synth.template_json)
    text = json.dumps(definition)
    assert "JSONata" not in text and "QueryLanguage" not in text
    states = definition["States"]
    assert definition["StartAt"] == "ValidateInput"
    running = states["FindRunningExecutions"]
    assert running["Resource"] == "arn:aws:states:::aws-sdk:sfn:listExecutions"
    assert running["Parameters"]["StateMachineArn.$"] == "$$.StateMachine.Id"
    assert list(running["ResultSelector"]) == ["count.$"], "SDK results are trimmed"
    assert states["AlreadyRunning"]["End"] is True
    workers = states["Workers"]
    assert workers["Type"] == "Map" and workers["Catch"][0]["ErrorEquals"] == ["States.ALL"]
    item_states = workers["ItemProcessor"]["States"]
    launch, wait = item_states["StartWorker"], item_states["LaunchWorker"]
    # The launch is a request-response call (retried), the wait a separate callback task (never retried).
    assert launch["Resource"] == "arn:aws:states:::aws-sdk:ec2:runInstances" and launch["Next"] == "LaunchWorker"
    assert wait["Resource"] == "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken"
    assert wait["HeartbeatSeconds"] == 600 and wait["TimeoutSeconds"] == 24 * 3600
    assert "Retry" not in wait, "no Retry on callback tasks"
    assert "$$.Task.Token" in wait["Parameters"]["Body.$"] and "$$.Task.Token" not in json.dumps(launch)
    # The waiting state outputs the worker's report (the CLI reads it from the state's exit); the iteration's output
    # is a mark, so 32 reports never meet the state size limit.
    assert wait["ResultPath"] == "$" and wait["Next"] == "WorkerReported"
    assert item_states["WorkerReported"] == {"Type": "Pass", "Result": {"reported": True}, "End": True}
    assert item_states["WorkerLaunchGivenUp"]["Type"] == "Fail", "the Map's Catch takes a launch given up"
    for name in ("Finalize", "RecordFailedRun", "ReleaseLock"):
        assert states[f"Start{name}"]["Resource"] == "arn:aws:states:::aws-sdk:ec2:runInstances"
        assert states[name]["Resource"].endswith("putObject.waitForTaskToken") and "Retry" not in states[name]
        assert states[f"{name}LaunchGivenUp"]["Next"] == states[name]["Catch"][0]["Next"], "same route as a failure"
        assert states[f"{name}Reported"]["Result"] == {}, "the task leaves the state once reported"
    assert states["Workers"]["Next"] == "FinalizeTask"
    assert states["FinalizeTask"]["Parameters"]["task"]["role"] == "finalize"
    assert states["ReleaseLockTask"]["Parameters"]["task"]["role"] == "abort"
    assert states["TerminateWorkers"]["Resource"] == "arn:aws:states:::aws-sdk:ec2:terminateInstances"
    assert states["RecordRun"]["Resource"] == "arn:aws:states:::dynamodb:putItem"
    assert states["NotifyFailure"]["Resource"] == "arn:aws:states:::sns:publish"
    assert "NotifySuccess" not in states, "successes notify only when configured"
    assert "NotifySuccess" in definition_of(synthesized("example", notify_on_success="true").template_json)["States"]
    bootstrap = states["PlanWorkers"]["Parameters"]["bootstrap"]
    head = bootstrap["head"]
    assert head.startswith("#!/bin/bash\n") and "s3://REF-ScriptsBucket" in head
    assert re.search(r"/scripts/[0-9a-f]{64}/\"", head), "scripts come from exactly the deployed version"
    assert "chmod +x" in head and "http" not in head.replace("s3://", "")


def test_every_instance_of_a_failed_run_is_terminated_and_a_success_stays_one(synthesized):
    for kind in ("backup", "restore"):
        states = definition_of(synthesized("example", notify_on_success="true").template_json, kind=kind)["States"]
        # the failure path's own instance (finalize or abort) timing out is cleaned up too
        for name in ("RecordFailedRun", "ReleaseLock"):
            assert states[name]["Catch"][0]["Next"] == "FindLeftoverInstances"
        assert states["AnyLeftoverInstances"]["Choices"][0]["Next"] == "TerminateLeftoverInstances"
        assert states["TerminateLeftoverInstances"]["Next"] == "RecordFailure"
        # instances are found by backup-id, execution and workflow (execution names are unique per state machine)
        filters = {f["Name"] for f in states["FindLeftoverInstances"]["Parameters"]["Filters"]}
        assert {"tag:efs-backup:execution", "tag:efs-backup:backup-id", "tag:efs-backup:workflow"} <= filters
        tags = states["Workers"]["ItemProcessor"]["States"]["StartWorker"]["Parameters"]["TagSpecifications"][0]
        assert {"Key": "efs-backup:workflow", "Value": kind} in tags["Tags"]
        # a notification that cannot be sent does not fail a run that succeeded
        assert states["NotifySuccess"]["Catch"][0]["Next"] == "Done"


def test_restore_definition_structure(synthesized):
    synth = synthesized("example")
    backup, restore = (definition_of(synth.template_json, kind=kind)["States"] for kind in ("backup", "restore"))
    # The fleet part is the same code: only the job's states and values differ.
    shared = set(backup) & set(restore)
    assert {"Workers", "Finalize", "FindWorkerInstances", "ReleaseLock", "RecordFailure", "NotifyFailure"} <= shared
    task = restore["Workers"]["ItemSelector"]["launch"]["task"]
    assert task["role"] == "restore-work" and task["request.$"] == "States.JsonToString($.request)"
    assert restore["FinalizeTask"]["Parameters"]["task"]["role"] == "restore-finalize"
    assert restore["ReleaseLockTask"]["Parameters"]["task"]["role"] == "restore-abort"
    assert restore["RecordRun"]["Parameters"]["Item"]["kind"] == {"S": "restore"}
    assert backup["RecordRun"]["Parameters"]["Item"]["kind"] == {"S": "backup"}
    # Only the production file system is an allowed target.
    options = json.dumps(restore["CheckRestoreOptions"])
    assert f'"StringEquals": "{synth.config.source_file_system_id}"' in options
    assert restore["CheckOutcome"]["Choices"][0]["Next"] == "CheckDryRun", "a dry run never notifies"
    assert restore["ValidateInput"] == {"Type": "Pass", "Comment": restore["ValidateInput"]["Comment"],
                                        "ResultPath": "$.request", "Next": "CheckSnapshotChoice"}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("workflow", ("workflow", "restore_workflow"))
def test_state_machine_role_is_least_privilege(env, workflow, synthesized):
    synth = synthesized(env)
    statements = statements_by_sid(synth, getattr(synth.stack, workflow).role)
    backup_id = synth.config.backup_id
    assert statements["PassOnlyTheWorkerRoleToEc2"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    assert statements["TerminateOnlyThisBackupIdsWorkers"]["Condition"] == {
        "StringEquals": {"ec2:ResourceTag/efs-backup:backup-id": backup_id}}
    assert statements["RunWorkersTaggedWithTheBackupId"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/efs-backup:backup-id": backup_id}}
    subnets = json.dumps(statements["RunWorkersFromTheTemplate"]["Resource"])
    for subnet in synth.config.subnet_ids:
        assert f"subnet/{subnet}" in subnets
    assert statements["RunWorkersFromAmazonImages"]["Condition"] == {"StringEquals": {"ec2:Owner": "amazon"}}
    # The only '*' resources: reads without resource-level permissions and the CDK's tracing/log-delivery actions,
    # each explained in the cdk-nag acknowledgment of this policy (tests/cdk audits that it matches the findings).
    for statement in statements.values():
        if statement["Resource"] == "*":
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                if action == "cloudwatch:PutMetricData":  # no resource-level permissions: limited to the namespace
                    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "EfsBackup"}}
                    continue
                assert action == "ec2:DescribeInstances" or action.startswith(("xray:", "logs:")), action
                assert action not in ("logs:PutLogEvents", "logs:CreateLogStream"), "log writes are never on *"


@pytest.mark.parametrize("env", ENVS)
def test_worker_role_rights(env, synthesized):
    synth = synthesized(env)
    statements = statements_by_sid(synth, synth.stack.worker.role)
    assert statements["MountProductionReadOnlyAsRoot"]["Action"] == [
        "elasticfilesystem:ClientMount", "elasticfilesystem:ClientRootAccess"]
    assert "elasticfilesystem:ClientWrite" in statements["MountBackupReadWriteAsRoot"]["Action"]
    assert statements["ReadThisEngineVersion"]["Action"] == "s3:GetObject"
    resource = json.dumps(statements["ReadThisEngineVersion"]["Resource"])
    assert re.search(r"/scripts/[0-9a-f]{64}/\*", resource)
    task_response = [s for s in statements.values() if "states:SendTaskSuccess" in s["Action"]]
    assert len(task_response) == 1 and task_response[0]["Resource"] != "*"
    assert set(statements) >= {"ListThisEngineVersion", "WriteWorkerLogs", "SessionManager"}


@pytest.mark.parametrize("env", ENVS)
def test_only_restore_workers_may_write_production(env, synthesized):
    synth = synthesized(env)
    production = f"file-system/{synth.config.source_file_system_id}"

    def writes(role):
        return [s for s in statements_by_sid(synth, role).values()
                if "elasticfilesystem:ClientWrite" in s["Action"] and production in json.dumps(s["Resource"])]

    assert writes(synth.stack.worker.role) == [], "backup workers never get write access to production"
    (restore,) = writes(synth.stack.restore_worker.role)
    assert restore["Condition"] == {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}
    restore_statements = statements_by_sid(synth, synth.stack.restore_worker.role)
    assert "elasticfilesystem:ClientWrite" in restore_statements["MountBackupForRestoreAsRoot"]["Action"]
    # Each worker role answers only its own state machine's task tokens.
    for role, workflow in ((synth.stack.worker.role, synth.stack.workflow),
                           (synth.stack.restore_worker.role, synth.stack.restore_workflow)):
        (response,) = [s for s in statements_by_sid(synth, role).values() if "states:SendTaskSuccess" in s["Action"]]
        assert response["Resource"] == {"Ref": synth.stack.get_logical_id(workflow.state_machine.node.default_child)}


@pytest.mark.parametrize("env", ENVS)
def test_schedules(env, synthesized):
    synth = synthesized(env)
    backup = {"Ref": synth.stack.get_logical_id(synth.stack.workflow.state_machine.node.default_child)}
    # The backup runs' schedules (the monitoring publisher's own schedule is tested in tests/cdk/test_monitoring.py).
    schedules = {s["Properties"]["Name"]: s["Properties"] for s in resources(synth, "AWS::Scheduler::Schedule").values()
                 if s["Properties"]["Target"]["Arn"] == backup}
    expected = {p.interval: p for p in synth.config.retention if p.enabled and p.schedule}
    assert len(schedules) == len(expected)
    for interval, policy in expected.items():
        props = schedules[f"{synth.config.stack_name}-{interval}"]
        assert props["ScheduleExpression"] == policy.schedule
        assert props["ScheduleExpressionTimezone"] == "UTC"
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["State"] == "ENABLED"
        assert json.loads(props["Target"]["Input"]) == {"interval": interval,
                                                         "workers": synth.config.workers.count}, "no retain"


def test_schedules_can_be_disabled(synthesized):
    synth = synthesized("example", schedules_enabled="false", schedule_timezone="Europe/Dublin")
    for schedule in resources(synth, "AWS::Scheduler::Schedule").values():
        assert schedule["Properties"]["State"] == "DISABLED"
        assert schedule["Properties"]["ScheduleExpressionTimezone"] == "Europe/Dublin"


def test_topic_run_history_and_outputs(synthesized):
    synth = synthesized("example", notification_emails="ops@example.com")
    # The run-notification topic (the alarm topic is tested in tests/cdk/test_monitoring.py).
    topic_id = synth.stack.get_logical_id(synth.stack.notifications.topic.node.default_child)
    topic = resources(synth, "AWS::SNS::Topic")[topic_id]
    assert topic["Properties"]["KmsMasterKeyId"]
    (subscription,) = [s for s in resources(synth, "AWS::SNS::Subscription").values()
                       if s["Properties"]["TopicArn"] == {"Ref": topic_id}]
    assert subscription["Properties"]["Protocol"] == "email"
    (table,) = resources(synth, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"
    outputs = synth.template_json["Outputs"]
    assert {"StateMachineArn", "NotificationTopicArn", "RunHistoryTableName", "WorkerLogGroupName"} <= set(outputs)


def test_restore_targets_beyond_production_from_config(synthesized):
    synth = synthesized("example", restore_target_file_systems="fs-89abcdef:sg-89abcdef")
    other = "file-system/fs-89abcdef"
    restore = statements_by_sid(synth, synth.stack.restore_worker.role)["RestoreIntofs89abcdefAsRoot"]
    assert "elasticfilesystem:ClientWrite" in restore["Action"] and other in json.dumps(restore["Resource"])
    assert other not in json.dumps(statements_by_sid(synth, synth.stack.worker.role)), "backup workers: no rights"
    client = synth.stack.resolve(synth.stack.network.backup_client_security_group.security_group_id)
    ingress = [r["Properties"] for r in resources(synth, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"] == "sg-89abcdef"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in ingress] == [(2049, client)]
    options = json.dumps(definition_of(synth.template_json, kind="restore")["States"]["CheckRestoreOptions"])
    assert '"StringEquals": "fs-89abcdef"' in options and '"StringEquals": "fs-12345678"' in options
