"""A launch template of workers (backup or restore), their bootstrap (user data) and the worker role's run-time rights.

Launch template: Amazon Linux 2023 resolved at every launch from AWS's public SSM parameter (``resolve:ssm:``, so
each run gets the current patched image without a stack update), IMDSv2 required, encrypted gp3 root volume, no
public IP, both worker security groups, the worker instance profile, shutdown behaviour terminate, optional Spot.
No key pair: operators use SSM Session Manager.

User data: the state machine builds it per launch from two fixed pieces rendered here, ``head`` + <key of the task
object> + ``tail``: a constant-size pointer (region, bucket, key) in a quoted heredoc, so nothing from the execution is
ever interpreted by the shell and no task (a restore of thousands of paths) can outgrow the user data. The task token
and the task itself are in that S3 object (see fleet_workflow.launch_states), which worker.sh reads and deletes. The
bootstrap fetches ``assets/scripts/`` from the script bucket at exactly the deployed ``scripts/<asset-hash>/`` prefix
(never from the internet), restores the execute bits S3 does not keep, and runs ``worker.sh`` (see its header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from aws_cdk import Acknowledgment, Aws, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from constructs.nag import NAG_PACK, nag_resource
from constructs.script_bucket import ScriptBucket
from constructs.worker_identity import WorkerIdentity
from efs_backup_contract.task import INSTALL_DIR
from settings.model import WorkerSettings

AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
# Marks the heredoc that carries the task pointer; JSON on one line can never be it as a line of its own.
TASK_HEREDOC = "EFS_BACKUP_TASK"


@dataclass(frozen=True)
class FileSystemAccess:
    """EFS client rights of a worker role on one file system, always through a mount target. ClientRootAccess keeps
    root from being squashed (files only their owners can read are copied too); without ``write`` EFS itself
    enforces read-only access."""

    sid: str
    arn: str
    write: bool


class WorkerLaunchTemplate(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: WorkerSettings,
        worker: WorkerIdentity,
        security_groups: Sequence[ec2.ISecurityGroup],
        scripts: ScriptBucket,
        file_systems: Sequence[FileSystemAccess],
        purpose: str,
        log_group: Optional[logs.ILogGroup] = None,
        environment: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.settings = settings
        self.scripts = scripts
        self.environment = dict(environment or {})  # exported by the user data (e.g. VPC endpoint URLs)
        self.security_group_ids: List[str] = [group.security_group_id for group in security_groups]
        # The image: AWS's Amazon Linux 2023 parameter (packages installed with dnf at boot), or worker_image (an
        # image with them preinstalled: an AMI id, or a parameter of this account resolved at each launch).
        image = settings.image
        self.image_parameter: Optional[str] = None if image and image.ami_id else (
            image.ssm_parameter if image else AL2023_PARAMETER.format(arch=settings.architecture))
        self.image_id = image.ami_id if image and image.ami_id else f"resolve:ssm:{self.image_parameter}"
        self.packages_preinstalled = image is not None

        # One log group for every kind of worker (streams are named <execution>/<role>-<index>).
        self.log_group = log_group or logs.LogGroup(
            self,
            "WorkerLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )

        data: Dict[str, object] = {
            "imageId": self.image_id,
            "instanceType": settings.instance_type,
            "iamInstanceProfile": {"arn": worker.instance_profile.instance_profile_arn},
            "metadataOptions": {
                "httpTokens": "required",
                "httpEndpoint": "enabled",
                "httpPutResponseHopLimit": 1,
                "instanceMetadataTags": "disabled",
            },
            "blockDeviceMappings": [
                {
                    "deviceName": "/dev/xvda",
                    "ebs": {
                        "volumeSize": settings.root_volume_gib,
                        "volumeType": "gp3",
                        "encrypted": True,
                        "deleteOnTermination": True,
                        # None: the account's EBS default key (the launching role's KMS rights: fleet_workflow).
                        **({"kmsKeyId": settings.ebs_kms_key_arn} if settings.ebs_kms_key_arn else {}),
                    },
                }
            ],
            "instanceInitiatedShutdownBehavior": "terminate",
            "networkInterfaces": [
                {
                    "deviceIndex": 0,
                    "associatePublicIpAddress": False,
                    "deleteOnTermination": True,
                    "groups": self.security_group_ids,
                }
            ],
            "monitoring": {"enabled": False},
        }
        if settings.spot:
            data["instanceMarketOptions"] = {
                "marketType": "spot",
                "spotOptions": {"spotInstanceType": "one-time", "instanceInterruptionBehavior": "terminate"},
            }
        self.launch_template = ec2.CfnLaunchTemplate(
            self,
            "LaunchTemplate",
            launch_template_data=data,
            tag_specifications=[
                ec2.CfnLaunchTemplate.LaunchTemplateTagSpecificationProperty(
                    resource_type="launch-template",
                    tags=[{"key": "efs-backup:purpose", "value": f"{purpose} workers"}],
                )
            ],
        )

        # --- the worker role's run-time rights, one statement per need -------------------------------------------
        role = worker.role
        prefix = scripts.script_key_prefix
        worker.add_to_policy(iam.PolicyStatement(
            sid="ReadThisEngineVersion",
            actions=["s3:GetObject"],
            resources=[scripts.bucket.arn_for_objects(f"{prefix}*")],
        ))
        worker.add_to_policy(iam.PolicyStatement(
            sid="ListThisEngineVersion",
            actions=["s3:ListBucket"],
            resources=[scripts.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
        ))
        worker.add_to_policy(iam.PolicyStatement(
            sid="WriteWorkerLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn],
        ))
        for access in file_systems:
            worker.add_to_policy(iam.PolicyStatement(
                sid=access.sid,
                actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientRootAccess"]
                + (["elasticfilesystem:ClientWrite"] if access.write else []),
                resources=[access.arn],
                conditions={"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
            ))
        worker.add_to_policy(iam.PolicyStatement(
            sid="SessionManager",
            actions=[
                "ssm:UpdateInstanceInformation",
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            resources=["*"],
        ))
        self._role = role
        self._stack = stack
        script_objects = nag_resource(stack, scripts.bucket.arn_for_objects(f"{prefix}*"))
        findings = {
            f"IAM5[Resource::{script_objects}]": (
                "Workers read the objects of exactly the engine version deployed (scripts/<asset-hash>/); the file "
                "names inside that version are not listed one by one."
            ),
            "IAM5[Resource::*]": (
                "The Session Manager agent's actions (ssm:UpdateInstanceInformation, ssmmessages:*Channel) have no "
                "resource-level permissions; they replace SSH keys for operator access."
            ),
        }
        policy = role.node.find_child("DefaultPolicy").node.default_child
        Validations.of(policy).acknowledge(
            *(Acknowledgment(id=f"{NAG_PACK}AwsSolutions-{rule}", reason=reason) for rule, reason in findings.items())
        )

    @property
    def launch_template_id(self) -> str:
        return self.launch_template.ref

    @property
    def launch_template_version(self) -> str:
        return self.launch_template.attr_latest_version_number

    def image_permissions(self, parameter_arn, image_arn) -> List[iam.PolicyStatement]:
        """What the launching role needs for this template's image (ec2:RunInstances on it, and ssm:GetParameters
        for a ``resolve:ssm:`` image id: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/
        using-systems-manager-parameter-to-find-AMI.html). parameter_arn(name, aws_owned) and image_arn(id) build
        the ARNs in the caller's partition and region."""
        statements = []
        if self.settings.image is None:
            statements.append(iam.PolicyStatement(
                sid="RunWorkersFromAmazonImages", actions=["ec2:RunInstances"], resources=[image_arn("*")],
                conditions={"StringEquals": {"ec2:Owner": "amazon"}}))
        elif self.settings.image.ami_id:
            statements.append(iam.PolicyStatement(
                sid="RunWorkersFromTheConfiguredImage", actions=["ec2:RunInstances"],
                resources=[image_arn(self.settings.image.ami_id)]))
        else:
            statements.append(iam.PolicyStatement(
                sid="RunWorkersFromThisAccountsImages", actions=["ec2:RunInstances"], resources=[image_arn("*")],
                conditions={"StringEquals": {"ec2:Owner": Aws.ACCOUNT_ID}}))
        if self.image_parameter:
            sid = "ResolveTheAmazonLinuxImageAtLaunch" if self.settings.image is None else "ResolveTheWorkerImageAtLaunch"
            statements.append(iam.PolicyStatement(
                sid=sid, actions=["ssm:GetParameters", "ssm:GetParameter"],
                resources=[parameter_arn(self.image_parameter.lstrip("/"), self.settings.image is None)]))
        return statements

    def launch_template_arn(self) -> str:
        return self._stack.format_arn(service="ec2", resource="launch-template", resource_name=self.launch_template.ref)

    def bootstrap_pieces(self) -> Dict[str, str]:
        """``head`` + the key of the task object + ``tail`` is the user data of every worker instance: a fixed
        script plus a pointer (region, bucket, key), so its size never depends on the task (see fleet_workflow)."""
        bucket = self.scripts.bucket.bucket_name
        prefix = self.scripts.script_key_prefix
        head = "\n".join([
            "#!/bin/bash",
            "# efs-backup worker bootstrap: fetch the deployed engine version, run worker.sh on the task object named"
            " below.",
            "set -euo pipefail",
            "umask 077",
            f'EFS_BACKUP_HOME="${{EFS_BACKUP_HOME:-{INSTALL_DIR}}}"',
            # worker.sh withholds heartbeats after this long without engine progress (worker_stall_seconds).
            f'export EFS_BACKUP_STALL_SECONDS="${{EFS_BACKUP_STALL_SECONDS:-{self.settings.stall_seconds}}}"',
            *(['export EFS_BACKUP_PACKAGES=preinstalled  # worker_image: never run dnf'] if self.packages_preinstalled
              else []),
            # VPC endpoints without private DNS (vpc_endpoint_private_dns false): where the AWS CLI finds them.
            *(f'export {name}="{value}"' for name, value in sorted(self.environment.items())),
            'mkdir -p "$EFS_BACKUP_HOME/scripts"',
            f'aws s3 cp --recursive --only-show-errors --region {Aws.REGION} "s3://{bucket}/{prefix}" '
            '"$EFS_BACKUP_HOME/scripts/"',
            'chmod +x "$EFS_BACKUP_HOME/scripts/worker.sh" "$EFS_BACKUP_HOME/scripts/efs-backup-engine"',
            'POINTER_FILE="$EFS_BACKUP_HOME/task-pointer.json"',
            f"cat > \"$POINTER_FILE\" <<'{TASK_HEREDOC}'",
            f'{{"region": "{Aws.REGION}", "bucket": "{bucket}", "key": "',
        ])
        tail = "\n".join([
            '"}',
            TASK_HEREDOC,
            'exec "$EFS_BACKUP_HOME/scripts/worker.sh" "$POINTER_FILE"',
            "",
        ])
        return {"head": head, "tail": tail}
