"""Every AWS call the state machines and the workers make, against what the Service Authorization Reference says it
needs, evaluated on the synthesized policies (moto evaluates no IAM: this is the offline proof).

The calls are read from the artefacts, not listed by hand: every Task state of both definitions (Map item processors
included) and every ``aws``/``sfn`` command and EFS mount in worker.sh and the bootstrap. Each kind of call must
have an entry in REFERENCE, which gives the IAM requests AWS authorizes for it: action, resource ARN (built from the
call's own parameters) and the request's condition-key values. A small policy evaluator (Allow statements with
Action/Resource globs and the condition operators the policies use; any matching Deny refuses) then checks the role
that makes the call. A new call without an entry, or a policy that stops granting one, fails here.

Sources (Service Authorization Reference, "Actions, resources, and condition keys for ..."):
- EC2 RunInstances (image, instance, network-interface, security-group, subnet, volume, launch-template,
  spot-instances-request; ec2:Subnet, ec2:Owner, aws:RequestTag), CreateTags (ec2:CreateAction), TerminateInstances
  (ec2:ResourceTag), DescribeInstances (no resource types):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
- IAM PassRole (iam:PassedToService), CreateServiceLinkedRole (iam:AWSServiceName):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
- SSM GetParameters (parameter; the launch template's resolve:ssm image):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html
- KMS for an encrypted root volume (key; kms:ViaService, kms:GrantIsForAWSResource):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awskeymanagementservice.html and
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption-requirements.html#ebs-encryption-permissions
- S3 PutObject/GetObject/DeleteObject/DeleteObjectVersion (object), ListBucket (bucket; s3:prefix):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
- Step Functions ListExecutions, SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat (stateMachine):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
- DynamoDB PutItem (table; dynamodb:LeadingKeys):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
- SNS Publish (topic): https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
- CloudWatch PutMetricData (no resource types; cloudwatch:namespace):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html
- CloudWatch Logs CreateLogStream/PutLogEvents (log-group / log-stream):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
- EFS ClientMount/ClientWrite/ClientRootAccess (file-system; elasticfilesystem:AccessedViaMountTarget):
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticfilesystem.html
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Tuple

import pytest

from orchestration_helpers import REPO_ROOT, resolve_intrinsic

WORKER_SH = REPO_ROOT / "assets" / "scripts" / "worker.sh"
RUN_ID = "run-1"


@dataclass(frozen=True)
class Access:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- template resolution


class Resolver:
    """Tokens of the template as the ARNs AWS would see, so that request ARNs and policy resources compare."""

    ARNS = {
        "AWS::DynamoDB::Table": "arn:aws:dynamodb:{r}:{a}:table/{name}",
        "AWS::S3::Bucket": "arn:aws:s3:::{name}",
        "AWS::Logs::LogGroup": "arn:aws:logs:{r}:{a}:log-group:{name}:*",
        "AWS::IAM::Role": "arn:aws:iam::{a}:role/{name}",
        "AWS::IAM::InstanceProfile": "arn:aws:iam::{a}:instance-profile/{name}",
        "AWS::KMS::Key": "arn:aws:kms:{r}:{a}:key/{name}",
        "AWS::SNS::Topic": "arn:aws:sns:{r}:{a}:{name}",
        "AWS::StepFunctions::StateMachine": "arn:aws:states:{r}:{a}:stateMachine:{name}",
    }

    def __init__(self, synth) -> None:
        self.resources = synth.template_json["Resources"]
        self.account, self.region = synth.config.account, synth.config.region

    def name(self, logical_id: str) -> str:
        return f"REF-{logical_id}"

    def __call__(self, value: Mapping[str, Any]) -> str:
        (function, argument), = value.items()
        if function == "Ref":
            pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account,
                      "AWS::URLSuffix": "amazonaws.com"}
            if argument in pseudo:
                return pseudo[argument]
            kind = self.resources[argument]["Type"]
            if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):  # Ref is the ARN
                return self.ARNS[kind].format(r=self.region, a=self.account, name=self.name(argument))
            return self.name(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument
            kind = self.resources[logical_id]["Type"]
            if attribute == "Arn":
                return self.ARNS[kind].format(r=self.region, a=self.account, name=self.name(logical_id))
            if attribute == "LatestVersionNumber":
                return "1"
            if attribute == "GroupId":
                return self.name(logical_id)
        raise ValueError(f"cannot resolve {value!r}")

    def resolve(self, value: Any) -> Any:
        """Every intrinsic inside value resolved (strings, lists and dicts)."""
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Join"):
            return resolve_intrinsic(value, self)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def policy_statements(synth, role) -> List[Dict[str, Any]]:
    resolver = Resolver(synth)
    role_id = synth.stack.get_logical_id(role.node.default_child)
    role_props = synth.template_json["Resources"][role_id]["Properties"]
    assert not role_props.get("ManagedPolicyArns"), "no managed policies: every right is in the synthesized policies"
    statements = [s for p in role_props.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    for resource in synth.template_json["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]:
            statements.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return [resolver.resolve(statement) for statement in statements]


# ------------------------------------------------------------------------------------------------ evaluation


def _listed(value) -> List[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(operator: str, key: str, expected, context: Mapping[str, Any]) -> bool:
    if operator.startswith("ForAllValues:"):
        values = _listed(context.get(key, []))
        return all(_condition_holds(operator.split(":", 1)[1], key, expected, {key: v}) for v in values)
    if key not in context:
        return False  # a condition on a key the request does not carry does not match (IAM)
    actual = str(context[key]).lower() if operator == "Bool" else context[key]
    wanted = [str(e).lower() for e in _listed(expected)] if operator == "Bool" else _listed(expected)
    if operator in ("StringEquals", "ArnEquals", "Bool"):
        return actual in wanted
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, pattern) for pattern in wanted)
    raise AssertionError(f"the evaluator does not know the condition operator {operator}")


def _statement_matches(statement, access: Access) -> bool:
    assert "NotAction" not in statement and "NotResource" not in statement
    actions = _listed(statement["Action"])
    if not any(fnmatch.fnmatchcase(access.action.lower(), a.lower()) for a in actions):
        return False
    if not any(fnmatch.fnmatchcase(access.resource, r) for r in _listed(statement["Resource"])):
        return False
    return all(_condition_holds(operator, key, expected, access.context)
               for operator, conditions in statement.get("Condition", {}).items()
               for key, expected in conditions.items())


def allowed(statements, access: Access) -> bool:
    if any(_statement_matches(s, access) for s in statements if s["Effect"] == "Deny"):
        return False
    return any(_statement_matches(s, access) for s in statements if s["Effect"] == "Allow")


def test_the_evaluator_refuses_what_it_should():
    statements = [{"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "arn:aws:ec2:*:*:instance/*",
                   "Condition": {"StringEquals": {"ec2:ResourceTag/id": "a"}}}]
    instance = "arn:aws:ec2:us-east-1:1:instance/i-1"
    assert allowed(statements, Access("ec2:TerminateInstances", instance, {"ec2:ResourceTag/id": "a"}))
    assert not allowed(statements, Access("ec2:TerminateInstances", instance, {"ec2:ResourceTag/id": "b"}))
    assert not allowed(statements, Access("ec2:TerminateInstances", instance, {})), "missing key: no match"
    assert not allowed(statements, Access("ec2:StopInstances", instance, {"ec2:ResourceTag/id": "a"}))
    assert not allowed(statements + [{"Effect": "Deny", "Action": "ec2:*", "Resource": "*"}],
                       Access("ec2:TerminateInstances", instance, {"ec2:ResourceTag/id": "a"}))


# ------------------------------------------------------------------------------- the state machines' calls


def arn(synth, service: str, resource: str, *, region: str = None, account: str = None) -> str:
    region = synth.config.region if region is None else region
    account = synth.config.account if account is None else account
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def launch_template_data(synth, launch_template_id: str) -> Dict[str, Any]:
    logical_id = launch_template_id[len("REF-"):]
    return Resolver(synth).resolve(
        synth.template_json["Resources"][logical_id]["Properties"]["LaunchTemplateData"])


def run_instances(synth, workflow, parameters, plan) -> List[Access]:
    backup_id = synth.config.backup_id
    template_id = parameters["LaunchTemplate"]["LaunchTemplateId"]
    data = launch_template_data(synth, template_id)
    tags = {tag["Key"]: tag.get("Value", "from-the-execution")
            for spec in parameters["TagSpecifications"] for tag in spec["Tags"]}
    request_tags = {f"aws:RequestTag/{key}": value for key, value in tags.items()}
    accesses = [Access("ec2:RunInstances", arn(synth, "ec2", f"launch-template/{template_id}")),
                Access("ec2:RunInstances", arn(synth, "ec2", "image/ami-0123456789abcdef0", account=""),
                       {"ec2:Owner": "amazon"})]
    for subnet in sorted(set(plan["subnets"])):
        subnet_arn = arn(synth, "ec2", f"subnet/{subnet}")
        accesses += [Access("ec2:RunInstances", subnet_arn),
                     Access("ec2:RunInstances", arn(synth, "ec2", "network-interface/*"), {"ec2:Subnet": subnet_arn})]
    accesses += [Access("ec2:RunInstances", arn(synth, "ec2", f"security-group/{group}"))
                 for group in parameters["NetworkInterfaces"][0]["Groups"]]
    for kind in ("instance", "volume"):
        accesses += [Access("ec2:RunInstances", arn(synth, "ec2", f"{kind}/*"), request_tags),
                     Access("ec2:CreateTags", arn(synth, "ec2", f"{kind}/*"),
                            dict(request_tags, **{"ec2:CreateAction": "RunInstances"}))]
    assert tags["efs-backup:backup-id"] == backup_id
    if data.get("InstanceMarketOptions", {}).get("MarketType") == "spot":
        accesses += [Access("ec2:RunInstances", arn(synth, "ec2", "spot-instances-request/*")),
                     Access("iam:CreateServiceLinkedRole",
                            f"arn:aws:iam::{synth.config.account}:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot",
                            {"iam:AWSServiceName": "spot.amazonaws.com"})]
    # the launch template's instance profile: its role is passed to EC2
    profile_id = data["IamInstanceProfile"]["Arn"].rsplit("/REF-", 1)[1]
    (role_ref,) = synth.template_json["Resources"][profile_id]["Properties"]["Roles"]
    accesses.append(Access("iam:PassRole", f"arn:aws:iam::{synth.config.account}:role/REF-{role_ref['Ref']}",
                           {"iam:PassedToService": "ec2.amazonaws.com"}))
    image = data["ImageId"]
    assert image.startswith("resolve:ssm:/")
    accesses.append(Access("ssm:GetParameters", arn(synth, "ssm", "parameter" + image[len("resolve:ssm:"):], account="")))
    key = data["BlockDeviceMappings"][0]["Ebs"].get("KmsKeyId") or arn(synth, "kms", "key/the-accounts-ebs-default-key")
    via = {"kms:ViaService": f"ec2.{synth.config.region}.amazonaws.com"}
    accesses += [Access(action, key, via) for action in ("kms:Decrypt", "kms:DescribeKey",
                                                          "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                                                          "kms:ReEncryptTo")]
    accesses.append(Access("kms:CreateGrant", key, dict(via, **{"kms:GrantIsForAWSResource": "true"})))
    return accesses


def put_task_object(synth, workflow, parameters, plan) -> List[Access]:
    prefix = parameters["Key.$"].split("'")[1].split("{}")[0]
    return [Access("s3:PutObject", f"arn:aws:s3:::{parameters['Bucket']}/{prefix}{RUN_ID}/Worker-0.json")]


def describe_instances(synth, workflow, parameters, plan) -> List[Access]:
    return [Access("ec2:DescribeInstances", "*")]


def terminate_instances(synth, workflow, parameters, plan) -> List[Access]:
    return [Access("ec2:TerminateInstances", arn(synth, "ec2", "instance/i-0123456789abcdef0"),
                   {"ec2:ResourceTag/efs-backup:backup-id": synth.config.backup_id})]


def list_executions(synth, workflow, parameters, plan) -> List[Access]:
    assert parameters["StateMachineArn.$"] == "$$.StateMachine.Id"
    return [Access("states:ListExecutions", workflow.state_machine_arn_literal_resolved)]


def put_item(synth, workflow, parameters, plan) -> List[Access]:
    table = Resolver.ARNS["AWS::DynamoDB::Table"].format(r=synth.config.region, a=synth.config.account,
                                                  name=parameters["TableName"])
    key = parameters["Item"]["backup_id"]
    leading = key.get("S") or synth.config.backup_id
    return [Access("dynamodb:PutItem", table, {"dynamodb:LeadingKeys": [leading]})]


def publish(synth, workflow, parameters, plan) -> List[Access]:
    return [Access("sns:Publish", parameters["TopicArn"])]


def put_metric_data(synth, workflow, parameters, plan) -> List[Access]:
    return [Access("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": parameters["Namespace"]})]


REFERENCE: Dict[str, Callable[..., List[Access]]] = {
    "arn:aws:states:::aws-sdk:ec2:runInstances": run_instances,
    "arn:aws:states:::aws-sdk:s3:putObject.waitForTaskToken": put_task_object,
    "arn:aws:states:::aws-sdk:ec2:describeInstances": describe_instances,
    "arn:aws:states:::aws-sdk:ec2:terminateInstances": terminate_instances,
    "arn:aws:states:::aws-sdk:sfn:listExecutions": list_executions,
    "arn:aws:states:::dynamodb:putItem": put_item,
    "arn:aws:states:::sns:publish": publish,
    "arn:aws:states:::aws-sdk:cloudwatch:putMetricData": put_metric_data,
}


def task_states(states: Mapping[str, Any]) -> Iterable[Tuple[str, Dict[str, Any]]]:
    for name, state in states.items():
        if state["Type"] == "Task":
            yield name, state
        if "ItemProcessor" in state:
            yield from task_states(state["ItemProcessor"]["States"])


def definition(synth, workflow) -> Dict[str, Any]:
    resource = synth.template_json["Resources"][synth.stack.get_logical_id(workflow.state_machine.node.default_child)]
    return json.loads(resolve_intrinsic(resource["Properties"]["DefinitionString"], Resolver(synth)))


VARIANTS = {
    "example": ("example", {}),
    "production-eu": ("production-eu", {}),
    "spot-and-own-key": ("example", {"worker_spot": "true", "worker_ebs_kms_key":
                                     "arn:aws:kms:us-east-1:222222222222:key/0123abcd-0123-4567-89ab-0123456789ab"}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("attribute", ("workflow", "restore_workflow"))
def test_every_call_of_the_state_machines_is_granted_as_the_reference_requires(variant, attribute, synthesized):
    env, overrides = VARIANTS[variant]
    synth = synthesized(env, **overrides)
    workflow = getattr(synth.stack, attribute)
    workflow.state_machine_arn_literal_resolved = Resolver(synth).resolve(
        synth.stack.resolve(workflow.state_machine_arn_literal))
    states = definition(synth, workflow)["States"]
    plan = states["PlanWorkers"]["Parameters"]
    statements = policy_statements(synth, workflow.role)
    calls = list(task_states(states))
    assert {state["Resource"] for _, state in calls} <= set(REFERENCE), "a call without a reference entry"
    checked = 0
    for name, state in calls:
        for access in REFERENCE[state["Resource"]](synth, workflow, state["Parameters"], plan):
            assert allowed(statements, access), f"{name}: {access} is not granted"
            checked += 1
    assert checked > 30


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_launching_role_cannot_do_more_than_that(variant, synthesized):
    """Negative checks: the same evaluator refuses what the workflows must not be able to do."""
    env, overrides = VARIANTS[variant]
    synth = synthesized(env, **overrides)
    statements = policy_statements(synth, synth.stack.workflow.role)
    other_id = {"ec2:ResourceTag/efs-backup:backup-id": "someone-else"}
    assert not allowed(statements, Access("ec2:TerminateInstances", arn(synth, "ec2", "instance/i-1"), other_id))
    assert not allowed(statements, Access("ec2:RunInstances", arn(synth, "ec2", "instance/*"),
                                          {"aws:RequestTag/efs-backup:backup-id": "someone-else"}))
    assert not allowed(statements, Access("iam:PassRole", f"arn:aws:iam::{synth.config.account}:role/Admin",
                                          {"iam:PassedToService": "ec2.amazonaws.com"}))
    efs_linked_role = (f"arn:aws:iam::{synth.config.account}:role/aws-service-role/elasticfilesystem.amazonaws.com/"
                       "AWSServiceRoleForAmazonElasticFileSystem")
    assert not allowed(statements, Access("iam:CreateServiceLinkedRole", efs_linked_role,
                                          {"iam:AWSServiceName": "elasticfilesystem.amazonaws.com"}))
    assert not allowed(statements, Access("kms:Decrypt", arn(synth, "kms", "key/k"))), "keys only through EC2"
    bucket = synth.stack.resolve(synth.stack.scripts.bucket.bucket_name)
    bucket_name = Resolver(synth).resolve(bucket)
    assert not allowed(statements, Access("s3:PutObject", f"arn:aws:s3:::{bucket_name}/scripts/x/worker.sh")), \
        "the state machine cannot change the engine the workers run"


# ----------------------------------------------------------------------------------------- the workers' calls

# Endpoint service (com.amazonaws.<region>.<name>) -> the IAM service prefix of the calls that go through it.
ENDPOINT_ACTION_PREFIX = {"s3": "s3", "states": "states", "logs": "logs", "dynamodb": "dynamodb"}


def endpoint_policies(synth) -> Dict[str, List[Dict[str, Any]]]:
    """Service name -> statements of the VPC endpoints the stack creates (resolved)."""
    found = {}
    for resource in synth.template_json["Resources"].values():
        if resource["Type"] == "AWS::EC2::VPCEndpoint" and "PolicyDocument" in resource["Properties"]:
            service = Resolver(synth).resolve(resource["Properties"]["ServiceName"]).rsplit(".", 1)[1]
            found[service] = Resolver(synth).resolve(resource["Properties"]["PolicyDocument"])["Statement"]
    return found


def allowed_for(statements, principal_arn: str, access: Access) -> bool:
    """``allowed`` for a resource policy: only statements whose Principal names principal_arn (or everyone)."""
    def names(statement) -> bool:
        principal = statement.get("Principal", {})
        if principal == "*" or principal == {"AWS": "*"}:
            return True
        return principal_arn in _listed(principal.get("AWS", []))
    return allowed([s for s in statements if names(s)], access)


def worker_commands() -> List[Tuple[str, str]]:
    """(service, command) of every AWS CLI call in worker.sh and the bootstrap, and ("efs", "mount")."""
    text = WORKER_SH.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = set(re.findall(r"\baws (s3api|s3|logs|stepfunctions) ([a-z-]+)", code))
    found |= {("stepfunctions", command) for command in re.findall(r"\bsfn (send-task-[a-z]+)", code)}
    found.discard(("stepfunctions", "--region"))  # the sfn wrapper itself
    if re.search(r"mount -t efs", code):
        found.add(("efs", "mount"))
    return sorted(found)


def bootstrap_commands(synth) -> List[Tuple[str, str]]:
    """(service, command) of every AWS CLI call in the user data's bootstrap (rendered by the launch template)."""
    pieces = synth.stack.launch_template.bootstrap_pieces()
    text = Resolver(synth).resolve(synth.stack.resolve(pieces["head"] + pieces["tail"]))
    return sorted(set(re.findall(r"\baws (s3api|s3|logs|stepfunctions) ([a-z-]+)", text)))


def worker_accesses(synth, kind: str, service: str, command: str) -> List[Access]:
    resolver = Resolver(synth)
    stack = synth.stack
    bucket = resolver.resolve(stack.resolve(stack.scripts.bucket.bucket_name))
    prefix = stack.scripts.script_key_prefix
    workflow = stack.workflow if kind == "backup" else stack.restore_workflow
    machine = resolver.resolve(stack.resolve(workflow.state_machine.state_machine_arn))
    group = resolver.resolve(stack.resolve(stack.launch_template.log_group.log_group_name))
    task = f"arn:aws:s3:::{bucket}/tasks/{kind}/{RUN_ID}/Worker-0.json"
    stream = arn(synth, "logs", f"log-group:{group}:log-stream:{RUN_ID}/work-0")
    if (service, command) == ("s3", "cp"):  # the bootstrap: aws s3 cp --recursive s3://bucket/prefix
        return [Access("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": prefix}),
                Access("s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}worker.sh")]
    if (service, command) == ("s3api", "get-object"):
        return [Access("s3:GetObject", task)]
    if (service, command) == ("s3api", "delete-object"):  # with --version-id: DeleteObjectVersion
        return [Access("s3:DeleteObject", task), Access("s3:DeleteObjectVersion", task)]
    if service == "stepfunctions":
        action = "states:" + "".join(part.capitalize() for part in command.split("-"))
        return [Access(action, machine)]
    if (service, command) == ("logs", "create-log-stream"):
        return [Access("logs:CreateLogStream", stream)]
    if (service, command) == ("logs", "put-log-events"):
        return [Access("logs:PutLogEvents", stream)]
    if (service, command) == ("efs", "mount"):
        via = {"elasticfilesystem:AccessedViaMountTarget": "true"}
        backup_fs = arn(synth, "elasticfilesystem", "file-system/" + resolver.resolve(
            stack.resolve(stack.backup_file_system.file_system_id)))
        source_fs = arn(synth, "elasticfilesystem", f"file-system/{synth.config.source_file_system_id}")
        targets = [arn(synth, "elasticfilesystem", f"file-system/{t.file_system_id}") for t in synth.config.restore_targets]
        if kind == "backup":  # production read-only, the backup read-write, as root (no squashing)
            mounts = [(source_fs, False), (backup_fs, True)]
        else:  # the snapshots (and the state directory read-write), production and every restore target
            mounts = [(backup_fs, True), (source_fs, True)] + [(t, True) for t in targets]
        accesses = []
        for file_system, write in mounts:
            actions = ["ClientMount", "ClientRootAccess"] + (["ClientWrite"] if write else [])
            accesses += [Access(f"elasticfilesystem:{a}", file_system, via) for a in actions]
        return accesses
    raise AssertionError(f"worker call {service} {command} has no reference entry: add it here")


@pytest.mark.parametrize("env", ("example", "production-eu"))
@pytest.mark.parametrize("kind", ("backup", "restore"))
def test_every_call_of_the_workers_is_granted_as_the_reference_requires(env, kind, synthesized):
    synth = synthesized(env)
    identity = synth.stack.worker if kind == "backup" else synth.stack.restore_worker
    statements = policy_statements(synth, identity.role)
    commands = sorted(set(worker_commands()) | set(bootstrap_commands(synth)))
    assert ("s3", "cp") in bootstrap_commands(synth)
    assert {("s3api", "get-object"), ("s3api", "delete-object"), ("stepfunctions", "send-task-success"),
            ("stepfunctions", "send-task-failure"), ("stepfunctions", "send-task-heartbeat"),
            ("logs", "put-log-events"), ("efs", "mount")} <= set(commands), commands
    for service, command in commands:
        for access in worker_accesses(synth, kind, service, command):
            assert allowed(statements, access), f"{kind} worker: {service} {command}: {access} is not granted"
    # the VPC endpoints the stack creates must let those calls through too (their policies name the worker roles)
    role_arn = Resolver(synth).resolve(synth.stack.resolve(identity.role.role_arn))
    for service, endpoint_statements in endpoint_policies(synth).items():
        for service_name, command in commands:
            for access in worker_accesses(synth, kind, service_name, command):
                if access.action.split(":")[0] == ENDPOINT_ACTION_PREFIX.get(service):
                    assert allowed_for(endpoint_statements, role_arn, access), \
                        f"{kind} worker: the {service} endpoint's policy refuses {access}"
    # and not the other workflow's tasks, nor another prefix, nor production writes for backup workers
    other = "restore" if kind == "backup" else "backup"
    bucket = Resolver(synth).resolve(synth.stack.resolve(synth.stack.scripts.bucket.bucket_name))
    assert not allowed(statements, Access("s3:GetObject", f"arn:aws:s3:::{bucket}/tasks/{other}/{RUN_ID}/Worker-0.json"))
    if kind == "backup":
        production = arn(synth, "elasticfilesystem", f"file-system/{synth.config.source_file_system_id}")
        assert not allowed(statements, Access("elasticfilesystem:ClientWrite", production,
                                              {"elasticfilesystem:AccessedViaMountTarget": "true"}))
