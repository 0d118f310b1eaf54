#!/usr/bin/env python3
"""Acceptance test in a real AWS account (issue 11): deploy, back up twice, restore, compare, tear down.

Run it in an account (README "Acceptance test in your account"):

    tools/acceptance-test.sh      # bootstrap, deploy every stack (the assertions run during the deploy), destroy

The test is an integ-tests IntegTest, so `npx integ-runner` can run it too once integ-runner reads the cloud
assembly of aws-cdk-lib 2.275 (schema 55; integ-runner 2.197.10, the newest, stops at 53: see README). Offline,
tests/integ/test_integ_snapshot.py synthesizes it as integ-runner does (placeholder environment), runs cdk-nag and
compares every template with its committed snapshot.

Stacks, all in the account and region of the caller's credentials:

* ``EfsBackupAcceptanceEnv``: a VPC of its own (two isolated private subnets: no NAT, no internet), the production
  stand-in (an encrypted EFS with one mount target per subnet) and the function that seeds, changes and compares
  trees on it (tests/integ/acceptance_functions/tree.py: awkward names, hard links, symlinks, modes, owners), and the
  region's S3 prefix list id (looked up, for the workers' HTTPS egress to the S3 gateway endpoint).
* ``EfsBackupAcceptanceApp``: this app's stack (stacks/efs_backup_stack.py), configured through the same typed
  configuration the CLI builds, with the recommended network mode: its own S3 gateway endpoint and Step Functions
  and CloudWatch Logs interface endpoints, workers' HTTPS only to the VPC and the S3 prefix list. Every resource the
  app retains on delete (backup file system, buckets, log groups, run table) is set to DESTROY here.
  A custom resource added to it empties the app's versioned buckets when the stack is deleted, before the buckets.

Reviewed against the docs it relies on:
* integ-tests (IntegTest, assertionStack, invokeFunction with ExpectedResult/Match.serializedJson on the decoded
  Payload, awsApiCall + getAttString, waitForAssertions, next):
  https://docs.aws.amazon.com/cdk/api/v2/python/aws_cdk.integ_tests_alpha/README.html
* Lambda with EFS (an access point is required, the mount path starts with /mnt/, the function needs a route to a
  mount target in its VPC): https://docs.aws.amazon.com/lambda/latest/dg/configuration-filesystem.html
* S3 gateway endpoints are reached through the managed prefix list com.amazonaws.<region>.s3 in security-group
  rules: https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html
* StartExecution names are unique per state machine (each test deploys new state machines):
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
* CloudFormation deletes a resource before the resources it references (the bucket-emptying custom resource
  before the buckets): https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html

Assertions (the DeployAssert stack, in order): seed the tree; backup 1 (2 workers) SUCCEEDED; change the tree;
backup 2 SUCCEEDED; restore dry run of data/restore-me SUCCEEDED and nothing written; real restore of it into
/acceptance-restore SUCCEEDED; the restored tree equals the source (content, modes, owners, mtimes, symlinks, hard
links). Each execution is awaited with waitForAssertions (up to 45 minutes each).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# integ-runner runs this file with `python3`; the app needs the repository's virtualenv (aws-cdk-lib, cdk-nag).
if importlib.util.find_spec("aws_cdk") is None and (REPO_ROOT / ".venv" / "bin" / "python").exists():
    os.execv(str(REPO_ROOT / ".venv" / "bin" / "python"), [str(REPO_ROOT / ".venv" / "bin" / "python"), *sys.argv])
# Run by path (integ-runner, the snapshot test), so only this folder is on sys.path: the app's modules (stacks/,
# constructs/) are found from the repository root, as app.py finds them when `npx cdk` runs it from there.
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations  # noqa: E402
from aws_cdk import aws_ec2 as ec2  # noqa: E402
from aws_cdk import aws_efs as efs  # noqa: E402
from aws_cdk import aws_iam as iam  # noqa: E402
from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk import custom_resources as cr  # noqa: E402
from constructs import Construct  # noqa: E402
from aws_cdk.integ_tests_alpha import ExpectedResult, IntegTest, Match  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from constructs.nag import nag_resource  # noqa: E402
from settings.load import load_config  # noqa: E402
from settings.model import SubnetPlacement, VpcEndpointSettings  # noqa: E402
from stacks.efs_backup_stack import EfsBackupStack  # noqa: E402

FUNCTIONS = Path(__file__).resolve().parent / "acceptance_functions"
NAG = "AwsSolutions::"
# integ-runner synthesizes snapshots with the placeholder environment 12345678 / test-region; the app needs a real
# shape, so those (and a missing environment) map to fixed placeholders and the snapshot stays deterministic.
PLACEHOLDER_ACCOUNT, PLACEHOLDER_REGION = "111111111111", "us-east-1"
BACKUP_TIMEOUT = Duration.minutes(45)
RESTORE_PATH = "data/restore-me"
RESTORE_TARGET = "/acceptance-restore"


def environment():
    account = os.environ.get("CDK_INTEG_ACCOUNT") or os.environ.get("CDK_DEFAULT_ACCOUNT") or ""
    region = os.environ.get("CDK_INTEG_REGION") or os.environ.get("CDK_DEFAULT_REGION") or ""
    if not re.match(r"^[0-9]{12}$", account) or not re.match(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]+$", region):
        return PLACEHOLDER_ACCOUNT, PLACEHOLDER_REGION
    return account, region


def acknowledge(scope, reasons):
    Validations.of(scope).acknowledge(*(Acknowledgment(id=f"{NAG}AwsSolutions-{rule}", reason=reason)
                                        for rule, reason in reasons.items()))


class AcceptanceEnvironment(cdk.Stack):
    """The VPC, the production stand-in and its tree function."""

    def __init__(self, scope, construct_id, *, env):
        super().__init__(scope, construct_id, env=env,
                         description="efs-backup acceptance test: VPC, production EFS stand-in, tree function")
        zones = [f"{env.region}a", f"{env.region}b"]
        self.vpc = ec2.Vpc(
            self, "Vpc", ip_addresses=ec2.IpAddresses.cidr("10.80.0.0/16"), availability_zones=zones,
            nat_gateways=0, restrict_default_security_group=False,
            subnet_configuration=[ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                                          cidr_mask=24)])
        acknowledge(self.vpc, {"VPC7": "A throwaway test VPC without internet access that lives for one test run; "
                                       "flow logs would outlive it and add cost without a reader."})
        self.subnets = self.vpc.isolated_subnets
        self.source = efs.FileSystem(
            self, "Production", vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnets=self.subnets), encrypted=True,
            removal_policy=RemovalPolicy.DESTROY, throughput_mode=efs.ThroughputMode.ELASTIC)
        self.source_mount_target_group = self.source.connections.security_groups[0]
        access_point = self.source.add_access_point(
            "TreeAccess", path="/", posix_user=efs.PosixUser(uid="0", gid="0"))
        tree_group = ec2.SecurityGroup(self, "TreeGroup", vpc=self.vpc, allow_all_outbound=False,
                                       description="efs-backup acceptance test: the tree function (NFS only)")
        self.tree = lambda_.Function(
            self, "Tree", runtime=lambda_.Runtime.PYTHON_3_14, handler="tree.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS)), timeout=Duration.minutes(5), memory_size=512,
            vpc=self.vpc, vpc_subnets=ec2.SubnetSelection(subnets=self.subnets), security_groups=[tree_group],
            filesystem=lambda_.FileSystem.from_efs_access_point(access_point, "/mnt/source"),
            description="efs-backup acceptance test: seed, change and compare trees on the production stand-in")
        self.source.connections.allow_default_port_from(self.tree)
        # The region's S3 prefix list: the workers reach the S3 gateway endpoint through it.
        lookup = cr.AwsCustomResource(
            self, "S3PrefixList",
            on_update=cr.AwsSdkCall(
                service="EC2", action="describeManagedPrefixLists",
                parameters={"Filters": [{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{env.region}.s3"]}]},
                physical_resource_id=cr.PhysicalResourceId.of(f"s3-prefix-list-{env.region}"),
                output_paths=["PrefixLists.0.PrefixListId"]),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE),
            install_latest_aws_sdk=False)
        self.s3_prefix_list_id = lookup.get_response_field("PrefixLists.0.PrefixListId")
        acknowledge(self, {
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]":
                "Test-only functions (the tree function, the prefix-list lookup) write their own logs.",
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]":
                "The tree function runs in the test VPC to mount the production stand-in.",
            "IAM5[Resource::*]": "ec2:DescribeManagedPrefixLists and the network-interface calls of a function in "
                                 "a VPC have no resource-level permissions.",
        })


def app_config(env_stack, account, region):
    """The app's typed configuration, as the CLI would build it, with the environment stack's resources."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context.update({
        "env": "acceptance",
        "environments": {"acceptance": {
            "account": account, "region": region, "stack_name": "EfsBackupAcceptanceApp",
            "backup_id": "acceptance",
            # Placeholders that pass validation; the resource ids come from the environment stack below.
            "vpc_id": "vpc-00000000", "vpc_cidr": "10.80.0.0/16",
            "subnets": {"subnet-0000000a": f"{region}a", "subnet-0000000b": f"{region}b"},
            "source_file_system_id": "fs-00000000", "source_mount_target_security_group_id": "sg-00000000",
            "source_client_security_group": "create",
            "vpc_endpoints": ["s3", "states", "logs"], "route_table_ids": ["rtb-0000000a", "rtb-0000000b"],
            "worker_https_egress": ["10.80.0.0/16", "pl-00000000"],
            "retain_daily": 2, "retain_weekly": 0, "retain_monthly": 0, "schedules_enabled": False,
            "worker_count": 2, "worker_instance_type": "m7g.medium", "worker_heartbeat_timeout_seconds": 600,
            "worker_timeout_hours": 2,
        }},
        f"availability-zones:account={account}:region={region}": [f"{region}a", f"{region}b", f"{region}c"],
    })
    config = load_config(context)
    subnets = env_stack.subnets
    return dataclasses.replace(
        config,
        vpc_id=env_stack.vpc.vpc_id,
        subnets=tuple(SubnetPlacement(s.subnet_id, s.availability_zone) for s in subnets),
        source_file_system_id=env_stack.source.file_system_id,
        source_mount_target_security_group_id=env_stack.source_mount_target_group.security_group_id,
        vpc_endpoints=VpcEndpointSettings(("s3", "states", "logs"), tuple(s.route_table.route_table_id for s in subnets)),
        # The S3 prefix list is added by build() (a token here: NetworkAccess tells prefix lists from CIDRs by "pl-").
        worker_https_egress=(config.vpc_cidr,),
    )


class EmptyBucketsOnDelete(Construct):
    """Added to the app stack: a custom resource that references the app's versioned buckets, so CloudFormation
    deletes it before them, and its handler then empties them (every version), so that they can be deleted."""

    def __init__(self, scope, construct_id, *, buckets):
        super().__init__(scope, construct_id)
        handler = lambda_.Function(
            self, "EmptyBuckets", runtime=lambda_.Runtime.PYTHON_3_14, handler="empty_buckets.on_event",
            code=lambda_.Code.from_asset(str(FUNCTIONS)), timeout=Duration.minutes(10),
            description="efs-backup acceptance test: empty the app's buckets on delete")
        for bucket in buckets:
            handler.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:ListBucketVersions", "s3:ListBucket"], resources=[bucket.bucket_arn]))
            handler.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:DeleteObject", "s3:DeleteObjectVersion"], resources=[bucket.arn_for_objects("*")]))
        provider = cr.Provider(self, "Provider", on_event_handler=handler)
        cdk.CustomResource(self, "EmptyOnDelete", service_token=provider.service_token,
                           properties={"Buckets": [bucket.bucket_name for bucket in buckets]})
        stack = cdk.Stack.of(self)
        acknowledge(self, {
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]":
                "The teardown function and the provider framework write their own logs.",
            f"IAM5[Resource::{nag_resource(stack, handler.function_arn)}:*]":
                "The provider framework invokes its handler's versions.",
            **{f"IAM5[Resource::{nag_resource(stack, bucket.arn_for_objects('*'))}]":
               "Emptying a bucket deletes every object version in it." for bucket in buckets},
            "L1": "The custom-resource provider framework's runtime is chosen by the CDK.",
        })


def give_every_function_a_log_group(stack):
    functions = [c for c in stack.node.find_all() if isinstance(c, lambda_.CfnFunction) and c.logging_config is None]
    for function in functions:
        group = logs.LogGroup(function.node.scope, "TestLogGroup", retention=logs.RetentionDays.ONE_WEEK,
                              removal_policy=RemovalPolicy.DESTROY)
        function.logging_config = lambda_.CfnFunction.LoggingConfigProperty(log_group=group.log_group_name)


def build(app):
    account, region = environment()
    env = cdk.Environment(account=account, region=region)
    env_stack = AcceptanceEnvironment(app, "EfsBackupAcceptanceEnv", env=env)
    app_stack = EfsBackupStack(app, app_config(env_stack, account, region))
    # The workers' HTTPS to the S3 gateway endpoint, as worker_https_egress would add it with a literal pl- id.
    app_stack.network.backup_client_security_group.add_egress_rule(
        ec2.Peer.prefix_list(env_stack.s3_prefix_list_id), ec2.Port.tcp(443),
        "HTTPS to AWS APIs and package repositories via the S3 prefix list")
    # The app's own description names the production file system id, a token here.
    app_stack.template_options.description = "efs-backup acceptance test: the app under test"
    acknowledge(app_stack.network.node.find_child("SourceClientSecurityGroup"), {
        "EC27": "The group has a description; it names the production file system, whose id is only known when "
                "the test's environment stack is deployed (cdk-nag cannot read a token)."})
    # Everything the app keeps on delete goes with the test (backup EFS, buckets, log groups, run table).
    cdk.RemovalPolicies.of(app_stack).destroy()
    EmptyBucketsOnDelete(app_stack, "AcceptanceTeardown",
                         buckets=[app_stack.scripts.bucket, app_stack.scripts.access_log_bucket])
    # The assertions live in the test's account and region too (they call the app's state machines).
    assertion_stack = cdk.Stack(app, "EfsBackupAcceptanceAssertions", env=env,
                                description="efs-backup acceptance test: the assertions (integ-tests)")

    # Nothing may outlive the test: every function logs to a log group of its stack (Lambda would otherwise create
    # /aws/lambda/<name> itself, which no stack deletes), and every removal policy is destroy.
    for stack in (env_stack, app_stack):
        give_every_function_a_log_group(stack)
    for stack in (env_stack, assertion_stack):
        cdk.RemovalPolicies.of(stack).destroy()

    integ = IntegTest(app, "EfsBackupAcceptance", test_cases=[env_stack, app_stack],
                      assertion_stack=assertion_stack, diff_assets=False, stack_update_workflow=False)
    assertions = integ.assertions

    # Every expectation is awaited (waitForAssertions): a waiter that never sees its expected result fails its
    # custom resource, so a failed assertion fails the deployment under integ-runner and plain `cdk deploy` alike.
    def tree(event, expected):
        call = assertions.invoke_function(function_name=env_stack.tree.function_name, payload=json.dumps(event))
        call.expect(ExpectedResult.object_like({"Payload": Match.serialized_json(Match.object_like(expected))}))
        call.wait_for_assertions(total_timeout=Duration.minutes(5), interval=Duration.seconds(30), backoff_rate=1)
        return call

    def execution(state_machine, name, run_input):
        start = assertions.aws_api_call("StepFunctions", "startExecution", {
            "stateMachineArn": state_machine.state_machine_arn, "name": name, "input": json.dumps(run_input)})
        done = assertions.aws_api_call("StepFunctions", "describeExecution",
                                       {"executionArn": start.get_att_string("executionArn")})
        done.expect(ExpectedResult.object_like({"status": "SUCCEEDED"}))
        done.wait_for_assertions(total_timeout=BACKUP_TIMEOUT, interval=Duration.minutes(1),
                                 backoff_rate=1)
        start.next(done)
        return start, done

    backup, restore = app_stack.workflow.state_machine, app_stack.restore_workflow.state_machine
    # A backup execution's input is the interval (and optionally workers) only: retention is the deployment's
    # (issue 11, item 1). Restore inputs as in README "The restore workflow".
    seed = tree({"action": "seed"}, {"status": "seeded"})
    backup1 = execution(backup, "acceptance-backup-1", {"interval": "daily", "workers": 2})
    change = tree({"action": "change"}, {"status": "changed"})
    backup2 = execution(backup, "acceptance-backup-2", {"interval": "daily", "workers": 2})
    dry_run = execution(restore, "acceptance-restore-dry-run", {
        "snapshot": "latest", "paths": [RESTORE_PATH], "target_path": RESTORE_TARGET, "dry_run": True})
    nothing_written = tree({"action": "absent", "path": RESTORE_TARGET.lstrip("/")}, {"absent": True})
    real = execution(restore, "acceptance-restore", {
        "snapshot": "latest", "paths": [RESTORE_PATH], "target_path": RESTORE_TARGET, "workers": 2})
    equal = tree({"action": "compare", "left": RESTORE_PATH, "right": f"{RESTORE_TARGET.lstrip('/')}/{RESTORE_PATH}"},
                 {"equal": True})
    steps = [seed, *backup1, change, *backup2, *dry_run, nothing_written, *real, equal]
    for earlier, later in zip(steps, steps[1:]):
        if later not in (backup1[1], backup2[1], dry_run[1], real[1]):  # start -> describe is chained already
            earlier.next(later)

    return integ


def main():
    app = cdk.App()
    build(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
