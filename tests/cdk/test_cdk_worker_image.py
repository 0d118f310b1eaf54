"""worker_image: workers that need no package repository at run time (issue 11, item 7)."""

from __future__ import annotations

import pytest

from cdk_helpers import context_for, synthesize
from settings.load import load_config
from settings.model import ConfigError, WorkerImage


def run_instances_statements(synth):
    policies = [r["Properties"] for r in synth.template_json["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"] if "Sid" in s}


def test_default_is_amazon_linux_with_dnf():
    assert load_config(context_for("example")).workers.image is None


@pytest.mark.parametrize("value, expected", [
    ("ami-0123456789abcdef0", WorkerImage(ami_id="ami-0123456789abcdef0")),
    ("ssm:/golden/efs-backup-worker", WorkerImage(ssm_parameter="/golden/efs-backup-worker")),
])
def test_an_image_is_an_ami_or_a_parameter(value, expected):
    assert load_config(context_for("example", worker_image=value)).workers.image == expected


@pytest.mark.parametrize("value", ["ami-123", "/golden/x", "resolve:ssm:/x", "ubuntu"])
def test_bad_images_are_refused(value):
    with pytest.raises(ConfigError) as raised:
        load_config(context_for("example", worker_image=value))
    assert raised.value.problems[0].startswith(f"worker_image: {value!r} is not a worker image")


def test_without_dnf_an_s3_interface_endpoint_serves_the_scripts():
    # An existing S3 endpoint reached inside the VPC (no prefix list): refused with dnf, accepted without it.
    overrides = dict(worker_https_egress="172.31.0.0/16")
    with pytest.raises(ConfigError) as raised:
        load_config(context_for("example", **overrides))
    assert "cannot reach s3" in raised.value.problems[0] and "or worker_image" in raised.value.problems[0]
    load_config(context_for("example", worker_image="ami-0123456789abcdef0", **overrides))


def test_default_template_resolves_amazon_linux_and_installs_packages(tmp_path):
    synth = synthesize("example", tmp_path)
    template = synth.stack.launch_template
    assert template.image_id == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    assert "EFS_BACKUP_PACKAGES" not in template.bootstrap_pieces()["head"]
    statements = run_instances_statements(synth)
    assert statements["RunWorkersFromAmazonImages"]["Condition"] == {"StringEquals": {"ec2:Owner": "amazon"}}
    assert "ResolveTheAmazonLinuxImageAtLaunch" in statements


def test_an_ami_id_is_launched_as_is_and_is_the_only_image_allowed(tmp_path):
    synth = synthesize("example", tmp_path, worker_image="ami-0123456789abcdef0")
    data = [r for r in synth.template_json["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"]
    assert {d["Properties"]["LaunchTemplateData"]["ImageId"] for d in data} == {"ami-0123456789abcdef0"}
    assert "export EFS_BACKUP_PACKAGES=preinstalled" in synth.stack.launch_template.bootstrap_pieces()["head"]
    statements = run_instances_statements(synth)
    image = statements["RunWorkersFromTheConfiguredImage"]
    assert "Condition" not in image
    assert ":ec2:us-east-1::image/ami-0123456789abcdef0" in str(image["Resource"])
    assert "RunWorkersFromAmazonImages" not in statements
    assert not [sid for sid in statements if sid.startswith("Resolve")]


def test_a_parameter_is_resolved_at_launch_from_this_accounts_images(tmp_path):
    synth = synthesize("example", tmp_path, worker_image="ssm:/golden/efs-backup-worker")
    assert synth.stack.launch_template.image_id == "resolve:ssm:/golden/efs-backup-worker"
    statements = run_instances_statements(synth)
    assert statements["RunWorkersFromThisAccountsImages"]["Condition"] == {
        "StringEquals": {"ec2:Owner": {"Ref": "AWS::AccountId"}}}
    assert "parameter/golden/efs-backup-worker" in str(statements["ResolveTheWorkerImageAtLaunch"]["Resource"])
    assert ":ssm:us-east-1:111111111111:parameter/golden/efs-backup-worker" in str(
        statements["ResolveTheWorkerImageAtLaunch"]["Resource"])
