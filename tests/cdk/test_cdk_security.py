"""Fine-grained template assertions for every security-relevant property, on every shipped environment."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from aws_cdk.assertions import Match

from cdk_helpers import shipped_environments

NFS = 2049
HTTPS = 443
CLIENT_ACTIONS = [
    "elasticfilesystem:ClientMount",
    "elasticfilesystem:ClientRootAccess",
    "elasticfilesystem:ClientWrite",
]
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


@pytest.fixture(scope="module", params=shipped_environments())
def env(request, synthesized):
    return synthesized(request.param)


def resources(env, type_name) -> Dict[str, Dict[str, Any]]:
    return {k: v for k, v in env.template_json["Resources"].items() if v["Type"] == type_name}


def only(env, type_name):
    found = resources(env, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


def logical_id_of(env, construct) -> str:
    return env.stack.resolve(env.stack.get_logical_id(construct.node.default_child))


def group_id(env, security_group) -> Any:
    """How the template refers to a security group's id (GetAtt for created groups, a literal for imported ones)."""
    return env.stack.resolve(security_group.security_group_id)


# -------------------------------------------------------------------------------------------- backup file system


def test_backup_file_system_is_encrypted_and_retained(env):
    logical_id, fs = only(env, "AWS::EFS::FileSystem")
    assert fs["Properties"]["Encrypted"] is True
    assert fs["DeletionPolicy"] == "Retain" and fs["UpdateReplacePolicy"] == "Retain"


def test_backup_file_system_key_matches_config(env):
    _, fs = only(env, "AWS::EFS::FileSystem")
    mode = env.config.backup_file_system.kms_key.mode
    alarm_key = logical_id_of(env, env.stack.monitoring.alarm_key)  # the alarm topic's own key (monitoring.py)
    keys = {k: v for k, v in resources(env, "AWS::KMS::Key").items() if k != alarm_key}
    if mode == "aws-managed":
        assert "KmsKeyId" not in fs["Properties"] and not keys
    elif mode == "create":
        (key_id, key), = keys.items()
        assert fs["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        assert key["Properties"]["EnableKeyRotation"] is True
        assert key["DeletionPolicy"] == "Retain" and key["UpdateReplacePolicy"] == "Retain"
    else:
        assert fs["Properties"]["KmsKeyId"] == env.config.backup_file_system.kms_key.key_arn


def test_backup_file_system_modes_lifecycle_and_backups_match_config(env):
    _, fs = only(env, "AWS::EFS::FileSystem")
    props = fs["Properties"]
    settings = env.config.backup_file_system
    assert props["PerformanceMode"] == settings.performance_mode
    assert props["ThroughputMode"] == settings.throughput_mode
    expected_lifecycle = []
    if settings.transition_to_ia_days:
        expected_lifecycle.append({"TransitionToIA": f"AFTER_{settings.transition_to_ia_days}_DAYS"})
    if settings.transition_to_archive_days:
        expected_lifecycle.append({"TransitionToArchive": f"AFTER_{settings.transition_to_archive_days}_DAYS"})
    assert props.get("LifecyclePolicies", []) == expected_lifecycle
    assert props["BackupPolicy"] == {"Status": "ENABLED" if settings.automatic_backups else "DISABLED"}


def test_file_system_policy_denies_non_tls_and_grants_only_the_worker_roles(env):
    _, fs = only(env, "AWS::EFS::FileSystem")
    role_ids = [logical_id_of(env, env.stack.worker.role), logical_id_of(env, env.stack.restore_worker.role)]
    statements = fs["Properties"]["FileSystemPolicy"]["Statement"]
    assert statements == [
        {
            "Sid": "DenyClientAccessWithoutTls",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": CLIENT_ACTIONS,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "AllowBackupWorkersThroughMountTargets",
            "Effect": "Allow",
            "Principal": {"AWS": sorted(({"Fn::GetAtt": [role_id, "Arn"]} for role_id in role_ids), key=str)},
            "Action": CLIENT_ACTIONS,
            "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
        },
    ]


def test_one_mount_target_per_configured_subnet_behind_the_backup_mount_target_group(env):
    mount_targets = resources(env, "AWS::EFS::MountTarget")
    fs_id, _ = only(env, "AWS::EFS::FileSystem")
    mt_group = group_id(env, env.stack.network.backup_mount_target_security_group)
    assert sorted(mt["Properties"]["SubnetId"] for mt in mount_targets.values()) == sorted(env.config.subnet_ids)
    for mt in mount_targets.values():
        assert mt["Properties"]["FileSystemId"] == {"Ref": fs_id}
        assert mt["Properties"]["SecurityGroups"] == [mt_group]


# ----------------------------------------------------------------------------------------------- security groups


def all_rules(env) -> List[Dict[str, Any]]:
    """Every ingress/egress rule, inline or standalone, with its direction and owning group."""
    rules = []
    for logical_id, sg in resources(env, "AWS::EC2::SecurityGroup").items():
        owner = {"Fn::GetAtt": [logical_id, "GroupId"]}
        for rule in sg["Properties"].get("SecurityGroupIngress", []):
            rules.append({"direction": "ingress", "GroupId": owner, **rule})
        for rule in sg["Properties"].get("SecurityGroupEgress", []):
            rules.append({"direction": "egress", "GroupId": owner, **rule})
    for rule in resources(env, "AWS::EC2::SecurityGroupIngress").values():
        rules.append({"direction": "ingress", **rule["Properties"]})
    for rule in resources(env, "AWS::EC2::SecurityGroupEgress").values():
        rules.append({"direction": "egress", **rule["Properties"]})
    return rules


def test_every_group_and_rule_has_a_description(env):
    for sg in resources(env, "AWS::EC2::SecurityGroup").values():
        assert sg["Properties"]["GroupDescription"].strip()
    for rule in all_rules(env):
        assert rule.get("Description", "").strip(), rule


def test_no_rule_is_open_to_the_internet(env):
    for rule in all_rules(env):
        assert rule.get("CidrIp") not in OPEN_CIDRS and rule.get("CidrIpv6") not in OPEN_CIDRS, rule


def real_rules(env, direction, owner):
    """Rules of one group in one direction, without CDK's 'Disallow all traffic' placeholder."""
    return [
        r for r in all_rules(env)
        if r["direction"] == direction and r["GroupId"] == owner and r.get("Description") != "Disallow all traffic"
    ]


def rule_target(rule):
    for key in ("SourceSecurityGroupId", "DestinationSecurityGroupId", "CidrIp", "DestinationPrefixListId"):
        if key in rule:
            return rule[key]
    raise AssertionError(rule)


def test_backup_mount_targets_admit_nfs_only_from_the_backup_client_group(env):
    network = env.stack.network
    mt_group = group_id(env, network.backup_mount_target_security_group)
    client_group = group_id(env, network.backup_client_security_group)
    ingress = real_rules(env, "ingress", mt_group)
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], rule_target(r)) for r in ingress] == [
        ("tcp", NFS, NFS, client_group)
    ]
    assert real_rules(env, "egress", mt_group) == []


def test_worker_egress_is_nfs_to_both_mount_target_groups_and_https_only(env):
    network = env.stack.network
    client_group = group_id(env, network.backup_client_security_group)
    egress = {(r["IpProtocol"], r["FromPort"], r["ToPort"], str(rule_target(r))) for r in real_rules(env, "egress", client_group)}
    expected = {
        ("tcp", NFS, NFS, str(group_id(env, network.backup_mount_target_security_group))),
        ("tcp", NFS, NFS, env.config.source_mount_target_security_group_id),
        *{("tcp", HTTPS, HTTPS, destination) for destination in env.config.worker_https_egress},
    }
    if env.stack.endpoints is not None and env.stack.endpoints.security_group is not None:
        expected.add(("tcp", HTTPS, HTTPS, str(group_id(env, env.stack.endpoints.security_group))))
    assert egress == expected
    assert real_rules(env, "ingress", client_group) == []


def test_groups_are_created_without_default_egress(env):
    for sg in resources(env, "AWS::EC2::SecurityGroup").values():
        # An absent SecurityGroupEgress would leave EC2's allow-all rule in place (unless a standalone rule
        # replaces it); every group either lists its egress or carries CDK's no-traffic placeholder.
        assert sg["Properties"].get("SecurityGroupEgress"), sg


def test_production_side_matches_the_client_group_choice(env):
    network = env.stack.network
    production_mt = env.config.source_mount_target_security_group_id
    touching_production = [r for r in all_rules(env) if r["GroupId"] == production_mt]
    if env.config.creates_source_client_security_group:
        created = group_id(env, network.source_client_security_group)
        assert [(r["direction"], r["IpProtocol"], r["FromPort"], r["ToPort"], rule_target(r)) for r in touching_production] == [
            ("ingress", "tcp", NFS, NFS, created)
        ]
        assert real_rules(env, "egress", created) == [] and real_rules(env, "ingress", created) == []
    else:
        # Existing production groups are never modified.
        assert touching_production == []
        assert all(r["GroupId"] != env.config.source_client_security_group_id for r in all_rules(env))
        assert group_id(env, network.source_client_security_group) == env.config.source_client_security_group_id
    worker_groups = [group_id(env, g) for g in network.worker_security_groups]
    assert worker_groups == [group_id(env, network.backup_client_security_group),
                             group_id(env, network.source_client_security_group)]


def test_groups_live_in_the_configured_vpc(env):
    for sg in resources(env, "AWS::EC2::SecurityGroup").values():
        assert sg["Properties"]["VpcId"] == env.config.vpc_id


# ----------------------------------------------------------------------------------------------------- buckets


def bucket_ids(env):
    scripts = env.stack.scripts
    return logical_id_of(env, scripts.bucket), logical_id_of(env, scripts.access_log_bucket)


def test_both_buckets_block_public_access_encrypt_and_are_retained(env):
    buckets = resources(env, "AWS::S3::Bucket")
    assert set(buckets) == set(bucket_ids(env))
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"
        }
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"


def test_both_buckets_accept_tls_1_2_only(env):
    policies = resources(env, "AWS::S3::BucketPolicy")
    for bucket_id in bucket_ids(env):
        (policy,) = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        arns = [{"Fn::GetAtt": [bucket_id, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}]
        assert {"Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Effect": "Deny",
                "Principal": {"AWS": "*"}, "Resource": arns} in statements
        assert {"Action": "s3:*", "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}}, "Effect": "Deny",
                "Principal": {"AWS": "*"}, "Resource": arns} in statements
        for statement in statements:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] != {"AWS": "*"} and statement["Principal"] != "*", statement


def test_script_bucket_is_versioned_logged_and_expires_old_versions(env):
    script_id, log_id = bucket_ids(env)
    env.template.has_resource_properties("AWS::S3::Bucket", {
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": {"DestinationBucketName": {"Ref": log_id}, "LogFilePrefix": "script-bucket/"},
        "LifecycleConfiguration": {"Rules": [Match.object_like({
            "NoncurrentVersionExpiration": {"NoncurrentDays": env.config.script_noncurrent_version_expiration_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            "Status": "Enabled",
        })]},
    })
    log_bucket = env.template_json["Resources"][log_id]["Properties"]
    assert log_bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == env.config.access_log_retention_days


def test_access_logs_may_only_be_delivered_by_the_logging_service_for_this_bucket(env):
    script_id, log_id = bucket_ids(env)
    policies = resources(env, "AWS::S3::BucketPolicy")
    (policy,) = [p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": log_id}]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [{
        "Action": "s3:PutObject",
        "Condition": {"ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [script_id, "Arn"]}},
                      "StringEquals": {"aws:SourceAccount": env.config.account}},
        "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [log_id, "Arn"]}, "/script-bucket/*"]]},
    }]


def test_scripts_are_deployed_under_a_prefix_pinned_by_the_asset_hash(env):
    scripts = env.stack.scripts
    asset_hash = scripts.asset_hash
    assert len(asset_hash) == 64
    assert scripts.script_key_prefix == f"scripts/{asset_hash}/"
    _, deployment = only(env, "Custom::CDKBucketDeployment")
    props = deployment["Properties"]
    assert props["SourceObjectKeys"] == [f"{asset_hash}.zip"]
    assert props["DestinationBucketKeyPrefix"] == scripts.script_key_prefix
    assert props["DestinationBucketName"] == {"Ref": bucket_ids(env)[0]}
    assert props["RetainOnDelete"] is True and props["Prune"] is True
    assert env.template_json["Outputs"]["ScriptKeyPrefix"]["Value"] == scripts.script_key_prefix


# -------------------------------------------------------------------------------------------------------- IAM


def test_worker_role_is_for_ec2_only_with_one_inline_policy_of_run_time_rights(env):
    # What each statement allows is asserted in tests/orchestration/test_orchestration_template.py.
    role_id = logical_id_of(env, env.stack.worker.role)
    role = env.template_json["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}
    ]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    attached = [p for p in resources(env, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]]
    assert len(attached) == 1
    env.template.has_resource_properties("AWS::IAM::InstanceProfile", {"Roles": [{"Ref": role_id}]})


def test_no_iam_policy_allows_every_action(env):
    for policy in resources(env, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement


def test_deployment_handler_has_its_own_role_without_managed_policies(env):
    role_id = logical_id_of(env, env.stack.scripts.deployment_role)
    role = env.template_json["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    env.template.has_resource_properties("AWS::Lambda::Function", {"Role": {"Fn::GetAtt": [role_id, "Arn"]}})


# ---------------------------------------------------------------------------------------------- outputs, tags


def test_operator_outputs(env):
    outputs = env.template_json["Outputs"]
    for name in ("BackupId", "SourceFileSystemId", "BackupFileSystemId", "BackupMountTargetSecurityGroupId",
                 "BackupClientSecurityGroupId", "SourceClientSecurityGroupId", "ScriptBucketName", "ScriptKeyPrefix",
                 "AccessLogBucketName", "WorkerRoleArn"):
        assert outputs[name]["Description"], name
    fs_id, _ = only(env, "AWS::EFS::FileSystem")
    assert outputs["BackupFileSystemId"]["Value"] == {"Ref": fs_id}
    assert outputs["BackupId"]["Value"] == env.config.backup_id


def test_stack_is_pinned_to_the_configured_account_and_region(env):
    assert env.stack.account == env.config.account and env.stack.region == env.config.region
    assert env.stack.stack_name == env.config.stack_name


def test_resources_are_tagged_with_the_backup_id(env):
    _, fs = only(env, "AWS::EFS::FileSystem")
    assert {"Key": "efs-backup:backup-id", "Value": env.config.backup_id} in fs["Properties"]["FileSystemTags"]
