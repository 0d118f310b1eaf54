"""The backup file system: the second EFS that holds ``<backup-id>/<interval>.<n>`` snapshots.

Always encrypted at rest (AWS-managed key, a created customer key, or an existing key), retained when the stack is
deleted, one mount target per configured subnet behind the backup mount-target security group, and a file-system
policy that

* denies every client action over a connection without TLS, and
* grants mount, write and root access to the worker roles only (backup and restore workers), and only through a
  mount target (restore workers mount the snapshots read-only and write only their lock and bookkeeping).

Anonymous NFS clients (no IAM authorization) get nothing: once a file-system policy exists they are evaluated
against it, and it grants nothing to anonymous principals. Same-account IAM principals whose own identity policies
grant ``elasticfilesystem:Client*`` on this file system can still use it (IAM's usual same-account rule); EFS
client authorization supports no condition key that could single out the worker role in a Deny.
"""

from __future__ import annotations

from typing import Sequence

from aws_cdk import RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from settings.model import KMS_CREATE, BackupFileSystemSettings

CLIENT_ACTIONS = (
    "elasticfilesystem:ClientMount",
    "elasticfilesystem:ClientWrite",
    "elasticfilesystem:ClientRootAccess",
)


def _lifecycle(days):
    return None if days is None else efs.LifecyclePolicy[f"AFTER_{days}_DAY{'S' if days > 1 else ''}"]


class BackupFileSystem(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        mount_target_security_group: ec2.ISecurityGroup,
        settings: BackupFileSystemSettings,
        client_roles: Sequence[iam.IRole],
    ) -> None:
        super().__init__(scope, construct_id)

        self.kms_key = None
        if settings.kms_key.mode == KMS_CREATE:
            self.kms_key = kms.Key(
                self,
                "Key",
                description=f"efs-backup: encryption at rest of the backup file system {name}",
                enable_key_rotation=True,
                removal_policy=RemovalPolicy.RETAIN,
            )
        elif settings.kms_key.key_arn:
            self.kms_key = kms.Key.from_key_arn(self, "Key", settings.kms_key.key_arn)

        policy = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="DenyClientAccessWithoutTls",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=list(CLIENT_ACTIONS),
                    conditions={"Bool": {"aws:SecureTransport": "false"}},
                ),
                iam.PolicyStatement(
                    sid="AllowBackupWorkersThroughMountTargets",
                    effect=iam.Effect.ALLOW,
                    principals=[iam.ArnPrincipal(role.role_arn) for role in client_roles],
                    actions=list(CLIENT_ACTIONS),
                    conditions={"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
                ),
            ]
        )

        performance = efs.PerformanceMode.MAX_IO if settings.performance_mode == "maxIO" else efs.PerformanceMode.GENERAL_PURPOSE
        throughput = {
            "elastic": efs.ThroughputMode.ELASTIC,
            "bursting": efs.ThroughputMode.BURSTING,
            "provisioned": efs.ThroughputMode.PROVISIONED,
        }[settings.throughput_mode]

        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            file_system_name=name,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=list(subnets)),
            security_group=mount_target_security_group,
            encrypted=True,
            kms_key=self.kms_key,
            performance_mode=performance,
            throughput_mode=throughput,
            provisioned_throughput_per_second=(
                Size.mebibytes(settings.provisioned_throughput_mibps)
                if settings.provisioned_throughput_mibps is not None
                else None
            ),
            lifecycle_policy=_lifecycle(settings.transition_to_ia_days),
            transition_to_archive_policy=_lifecycle(settings.transition_to_archive_days),
            enable_automatic_backups=settings.automatic_backups,
            removal_policy=RemovalPolicy.RETAIN,
            file_system_policy=policy,
            # Only stops the L2 construct from appending its own statement, which would grant ClientWrite and
            # ClientRootAccess to *any* principal reaching a mount target. Our policy above grants nothing to
            # anonymous clients, so they stay denied.
            allow_anonymous_access=True,
        )

        if not settings.automatic_backups:
            # The L2 only renders the policy when enabled; say DISABLED explicitly so the state never depends on
            # how EFS defaults a file system created through CloudFormation.
            cfn_file_system: efs.CfnFileSystem = self.file_system.node.default_child
            cfn_file_system.backup_policy = efs.CfnFileSystem.BackupPolicyProperty(status="DISABLED")

    @property
    def file_system_id(self) -> str:
        return self.file_system.file_system_id

    @property
    def file_system_arn(self) -> str:
        return self.file_system.file_system_arn
