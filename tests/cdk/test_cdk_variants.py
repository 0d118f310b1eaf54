"""Variants the shipped environments do not cover, set the way an operator would: ``-c key=value`` strings."""

from __future__ import annotations

import pytest

from cdk_helpers import synthesize

KEY_ARN = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    return synthesize(
        "example",
        tmp_path_factory.mktemp("cdk-variant"),
        backup_kms_key=KEY_ARN,
        backup_performance_mode="maxIO",
        backup_throughput_mode="provisioned",
        backup_provisioned_throughput_mibps="256",
        backup_transition_to_ia_days="none",
        backup_automatic_backups="true",
        worker_https_egress="pl-63a5400a,0.0.0.0/0",
        subnets="subnet-abcd1234:us-east-1a,subnet-abcd5678:us-east-1c",
        source_client_security_group="create",
        stack_name="EfsBackupVariant",
    )


def fs_props(variant):
    (fs,) = [r for r in variant.template_json["Resources"].values() if r["Type"] == "AWS::EFS::FileSystem"]
    return fs["Properties"]


def test_existing_key_is_used_and_no_key_is_created(variant):
    assert fs_props(variant)["KmsKeyId"] == KEY_ARN
    alarm_key = variant.stack.get_logical_id(variant.stack.monitoring.alarm_key.node.default_child)
    assert not [k for k, r in variant.template_json["Resources"].items()
                if r["Type"] == "AWS::KMS::Key" and k != alarm_key]  # only the alarm topic's own key


def test_provisioned_max_io_without_lifecycle_with_automatic_backups(variant):
    props = fs_props(variant)
    assert props["PerformanceMode"] == "maxIO"
    assert props["ThroughputMode"] == "provisioned" and props["ProvisionedThroughputInMibps"] == 256
    assert "LifecyclePolicies" not in props
    assert props["BackupPolicy"] == {"Status": "ENABLED"}


def test_two_zones_give_two_mount_targets(variant):
    subnets = sorted(r["Properties"]["SubnetId"] for r in variant.template_json["Resources"].values()
                     if r["Type"] == "AWS::EFS::MountTarget")
    assert subnets == ["subnet-abcd1234", "subnet-abcd5678"]


def test_created_client_group_is_admitted_by_the_production_mount_targets(variant):
    ingress = [r["Properties"] for r in variant.template_json["Resources"].values()
               if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == "sg-1111111a"]
    assert len(ingress) == 1 and ingress[0]["FromPort"] == ingress[0]["ToPort"] == 2049
    assert variant.template_json["Outputs"]["SourceClientSecurityGroupId"]["Value"] != "sg-1111111b"


def test_https_egress_destinations_follow_the_configuration(variant):
    resources = variant.template_json["Resources"].values()
    prefix_lists = [r["Properties"] for r in resources if r["Type"] == "AWS::EC2::SecurityGroupEgress"
                    and r["Properties"].get("DestinationPrefixListId") == "pl-63a5400a"]
    assert [(p["FromPort"], p["ToPort"]) for p in prefix_lists] == [(443, 443)]
    inline = [rule for r in resources if r["Type"] == "AWS::EC2::SecurityGroup"
              for rule in r["Properties"].get("SecurityGroupEgress", []) if rule.get("CidrIp") == "0.0.0.0/0"]
    # The NAT case: HTTPS only, and only because the operator wrote 0.0.0.0/0 explicitly.
    assert [(rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) for rule in inline] == [("tcp", 443, 443)]


def test_stack_name_override(variant):
    assert variant.stack.stack_name == "EfsBackupVariant"
