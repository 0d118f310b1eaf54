"""What the definitions and the launching role promise about inputs and launches, on the synthesized template
(moto runs them in test_launch_moto.py and test_orchestration_moto.py): retention from the deployment, whole worker
counts, retried launches with full jitter that move on to other zones and instance types, constant-size user data,
Spot and root-volume key rights. The launching role's rights are also checked against the service authorization
reference in test_iam_reference.py."""

from __future__ import annotations

import json
import re

import pytest
from cdk_nag import AwsSolutionsChecks

from constructs.fleet_workflow import LAUNCH_RETRY, launch_placements
from efs_backup_contract.limits import MAX_WORKERS
from orchestration_helpers import definition_of
from test_cdk_nag import NAG_PREFIX, acknowledgments
from test_orchestration_template import statements_by_sid

KINDS = ("backup", "restore")


def all_states(definition):
    """Every state, those inside Map item processors included."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        if "ItemProcessor" in state:
            found.update(all_states(state["ItemProcessor"]))
    return found


@pytest.mark.parametrize("env", ("example", "production-eu"))
def test_retention_is_written_into_the_definition_and_never_taken_from_the_input(env, synthesized):
    synth = synthesized(env)
    states = definition_of(synth.template_json)["States"]
    choices = states["ValidateInput"]["Choices"]
    assert choices[0] == {"Variable": "$.retain", "IsPresent": True, "Next": "RefuseRetain"}, "checked first"
    used = [policy for policy in synth.config.retention if policy.enabled]
    assert [choice["Next"] for choice in choices[1:]] == [f"Retain{p.interval.capitalize()}" for p in used]
    for policy in used:
        retain = states[f"Retain{policy.interval.capitalize()}"]
        assert (retain["Result"], retain["ResultPath"]) == (policy.retain, "$.retain")
    unused = [p.interval for p in synth.config.retention if not p.enabled]
    assert all(f'"{interval}"' not in json.dumps(choices) for interval in unused), "an unused interval is refused"
    assert states["RefuseRetain"]["Next"] == "RecordRefusedInput"
    assert "retain_<interval>" in states["RefuseRetain"]["Parameters"]["error"]["Cause"]
    # the worker's task takes retain from the definition's state, never from the raw input
    assert states["PlanWorkers"]["Parameters"]["retain.$"] == "$.retain"
    # a lower retention is a deploy
    lowered = definition_of(synthesized(env, retain_daily="2").template_json)["States"]
    assert lowered["RetainDaily"]["Result"] == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_count_must_be_a_whole_number_and_every_refusal_is_recorded_and_notified(kind, synthesized):
    states = definition_of(synthesized("example").template_json, kind=kind)["States"]
    check = states["CheckWorkerCount"]
    (allowed,) = [c for c in check["Choices"] if "And" in c]
    listed = allowed["And"][1]["Or"]
    assert [rule["NumericEquals"] for rule in listed] == list(range(1, MAX_WORKERS + 1))
    assert check["Default"] == "RefuseWorkerCount"
    for refusal in ("InvalidInput", "RefuseWorkerCount"):
        assert states[refusal]["Type"] == "Pass" and states[refusal]["Next"] == "RecordRefusedInput"
    assert states["RecordRefusedInput"]["Next"] == "NotifyRefusedInput"
    assert states["NotifyRefusedInput"]["Next"] == "InputRefused"
    assert states["InputRefused"] == {"Type": "Fail", "Error": "InvalidInput", "CausePath": "$.error.Cause"}
    # no Pass state evaluates an intrinsic on the raw workers value without a Catch behind it any more: the only
    # use of $.workers after the check is PlanWorkers (States.ArrayRange over a listed whole number)
    assert "States.MathAdd($.workers, -1)" in states["PlanWorkers"]["Parameters"]["indexes.$"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_launch_retries_with_full_jitter_then_moves_on_to_the_next_placement(kind, synthesized):
    states = all_states(definition_of(synthesized("production-eu").template_json, kind=kind))
    launches = {name: state for name, state in states.items()
                if state.get("Resource", "").startswith("arn:aws:states:::aws-sdk:ec2:runInstances")}
    assert set(launches) == {"StartWorker", "StartFinalize", "StartRecordFailedRun", "StartReleaseLock"}
    for name, launch in launches.items():
        step = name[len("Start"):]
        assert launch["Resource"] == "arn:aws:states:::aws-sdk:ec2:runInstances", "never a callback task"
        (retry,) = launch["Retry"]
        assert retry == LAUNCH_RETRY and retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] == 2
        assert {"Ec2.InsufficientInstanceCapacityException", "Ec2.RequestLimitExceededException",
                "Ec2.InvalidParameterValueException", "Ec2.Ec2Exception"} == set(retry["ErrorEquals"])
        assert launch["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.launch_error",
                                    "Next": f"{step}LaunchRetryable"}]
        retryable = json.dumps(states[f"{step}LaunchRetryable"])
        for pattern in ("*sufficient*capacity*", "*InsufficientInstanceCapacity*", "*Request limit exceeded*",
                        "*Invalid IAM Instance Profile*", "*no Spot capacity*"):
            assert pattern in retryable, pattern
        assert states[f"{step}LaunchRetryable"]["Choices"][0]["Next"] == f"{step}NextLaunch"
        following = states[f"{step}NextLaunch"]["Parameters"]
        assert following["attempt.$"] == "States.MathAdd($.launch.attempt, 1)"
        assert following["delay.$"].startswith("States.MathRandom(1, "), "full jitter between attempts too"
        assert states[f"{step}LaunchBackoff"] == {"Type": "Wait", "SecondsPath": "$.launch.delay",
                                                  "Next": name}
        parameters = launch["Parameters"]
        assert parameters["InstanceType.$"] == "States.ArrayGetItem($.instance_types, $.launch.attempt)"
        assert parameters["NetworkInterfaces"][0]["SubnetId.$"] == (
            "States.ArrayGetItem($.subnets, States.MathAdd($.launch.index, $.launch.attempt))")


def test_placements_go_through_every_zone_before_the_next_instance_type():
    placed = launch_placements(["subnet-a", "subnet-b", "subnet-c"], ["m6i.large", "m6a.large"])
    assert placed["instance_types"] == ["m6i.large"] * 3 + ["m6a.large"] * 5
    assert len(placed["subnets"]) == MAX_WORKERS + 8
    # worker i, attempt a: subnets[i + a]; the first three attempts of every worker see all three zones
    for worker in range(MAX_WORKERS):
        assert set(placed["subnets"][worker:worker + 3]) == {"subnet-a", "subnet-b", "subnet-c"}
    assert max(placed["backoff_seconds"]) == 60 and placed["backoff_seconds"][:3] == [5, 10, 20]
    single = launch_placements(["subnet-a"], ["m6i.large"])
    assert single["instance_types"] == ["m6i.large"] * 3, "one placement still gets throttling retries"


@pytest.mark.parametrize("kind", KINDS)
def test_user_data_is_a_constant_size_pointer_and_the_task_travels_in_s3(kind, synthesized):
    synth = synthesized("example")
    states = all_states(definition_of(synth.template_json, kind=kind))
    bootstrap = definition_of(synth.template_json, kind=kind)["States"]["PlanWorkers"]["Parameters"]["bootstrap"]
    user_data = states["StartWorker"]["Parameters"]["UserData.$"]
    key = f"States.Format('tasks/{kind}/{{}}/Worker-{{}}.json', $.run_id, $.launch.index)"
    assert user_data == f"States.Base64Encode(States.Format('{{}}{{}}{{}}', $.bootstrap.head, {key}, $.bootstrap.tail))"
    # the largest pointer: an 80-character execution name, worker index 31
    rendered = bootstrap["head"] + f"tasks/{kind}/{'x' * 80}/RecordFailedRun-31.json" + bootstrap["tail"]
    assert len(rendered) < 2048 and "Task.Token" not in rendered
    assert re.search(r"<<'EFS_BACKUP_TASK'\n\{\"region\": \"us-east-1\", \"bucket\": \"REF-ScriptsBucket[^\"]*\", "
                     r"\"key\": \"$", bootstrap["head"]), "the pointer sits in a quoted heredoc"
    wait = states["LaunchWorker"]
    assert wait["Parameters"]["Key.$"] == key and wait["Parameters"]["Bucket"].startswith("REF-ScriptsBucket")
    assert "States.JsonToString($.launch.task)" in wait["Parameters"]["Body.$"]


def test_spot_workers_get_the_spot_request_and_the_service_linked_role(synthesized):
    plain = synthesized("example")
    for workflow in (plain.stack.workflow, plain.stack.restore_workflow):
        statements = statements_by_sid(plain, workflow.role)
        assert "RunWorkersAsSpotInstances" not in statements and "CreateTheSpotServiceLinkedRoleOnce" not in statements
    spot = synthesized("example", worker_spot="true")
    for workflow in (spot.stack.workflow, spot.stack.restore_workflow):
        statements = statements_by_sid(spot, workflow.role)
        assert statements["RunWorkersAsSpotInstances"]["Action"] == "ec2:RunInstances"
        assert "spot-instances-request/*" in json.dumps(statements["RunWorkersAsSpotInstances"]["Resource"])
        linked = statements["CreateTheSpotServiceLinkedRoleOnce"]
        assert linked["Action"] == "iam:CreateServiceLinkedRole"
        assert linked["Condition"] == {"StringLike": {"iam:AWSServiceName": "spot.amazonaws.com"}}
        assert "role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot" in json.dumps(linked["Resource"])


def test_root_volume_key_rights_default_and_explicit(synthesized):
    plain = synthesized("example")
    statements = statements_by_sid(plain, plain.stack.workflow.role)
    use, grant = statements["UseTheRootVolumeKeyThroughEc2"], statements["LetEc2GrantItselfTheRootVolumeKey"]
    assert ":key/*" in json.dumps(use["Resource"])
    assert use["Condition"] == {"StringEquals": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}}
    assert grant["Action"] == "kms:CreateGrant"
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert set(use["Action"]) == {"kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
                                  "kms:ReEncryptFrom", "kms:ReEncryptTo"}
    key = "arn:aws:kms:us-east-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab"
    explicit = synthesized("example", worker_ebs_kms_key=key)
    for workflow, template in ((explicit.stack.workflow, explicit.stack.launch_template),
                               (explicit.stack.restore_workflow, explicit.stack.restore_launch_template)):
        statements = statements_by_sid(explicit, workflow.role)
        assert statements["UseTheRootVolumeKeyThroughEc2"]["Resource"] == key
        assert statements["LetEc2GrantItselfTheRootVolumeKey"]["Resource"] == key
        data = explicit.template_json["Resources"][explicit.stack.get_logical_id(template.launch_template)][
            "Properties"]["LaunchTemplateData"]
        assert data["BlockDeviceMappings"][0]["Ebs"]["KmsKeyId"] == key


@pytest.mark.parametrize("overrides", [
    {"worker_spot": "true"},
    {"worker_ebs_kms_key": "arn:aws:kms:us-east-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab",
     "worker_fallback_instance_types": "m6a.large,m5.large"},
])
def test_launch_variants_are_nag_clean_with_every_acknowledgment_earned(overrides, synthesized):
    app = synthesized("example", **overrides).app  # synth raised on any unacknowledged finding
    acked = {(path, rule[len(NAG_PREFIX):]) for (path, rule) in acknowledgments(app) if rule.startswith(NAG_PREFIX)}
    report = AwsSolutionsChecks().validate_scope(app)
    findings = {(resource.construct_path, violation.rule_name) for violation in report.violations
                for resource in violation.violating_resources}
    assert findings == acked
