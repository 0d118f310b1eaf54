"""The efs-backup stack: storage and network half (this issue); orchestration joins it later.

Composition only: each construct owns one responsibility, receives typed values from ``EfsBackupConfig`` and never
reads context. Issue 4 adds the Step Functions workflow, launch template, schedules and notifications here, using
``worker``, ``network``, ``backup_file_system`` and ``scripts``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from constructs.backup_file_system import BackupFileSystem
from constructs.network_access import NetworkAccess
from constructs.script_bucket import ScriptBucket
from constructs.worker_identity import WorkerIdentity
from stacks.config import EfsBackupConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_PATH = REPO_ROOT / "assets" / "scripts"


class EfsBackupStack(Stack):
    def __init__(self, scope: Construct, config: EfsBackupConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            config.stack_name,
            env=Environment(account=config.account, region=config.region),
            description=(
                f"efs-backup ({config.environment}): incremental hard-link snapshots of "
                f"{config.source_file_system_id} onto a backup EFS, backup-id {config.backup_id}"
            ),
            **kwargs,
        )
        self.config = config
        Tags.of(self).add("efs-backup:environment", config.environment)
        Tags.of(self).add("efs-backup:backup-id", config.backup_id)

        # The production file system is not part of this stack; workers need its ARN for their EFS client rights.
        self.source_file_system_arn = self.format_arn(
            service="elasticfilesystem", resource="file-system", resource_name=config.source_file_system_id
        )
        self.worker = WorkerIdentity(self, "Worker", backup_id=config.backup_id)
        self.network = NetworkAccess(
            self,
            "Network",
            vpc_id=config.vpc_id,
            vpc_cidr=config.vpc_cidr,
            subnet_ids=config.subnet_ids,
            availability_zones=config.availability_zones,
            source_file_system_id=config.source_file_system_id,
            source_mount_target_security_group_id=config.source_mount_target_security_group_id,
            source_client_security_group_id=config.source_client_security_group_id,
            https_egress=config.worker_https_egress,
        )
        self.backup_file_system = BackupFileSystem(
            self,
            "BackupFileSystem",
            name=f"efs-backup-{config.environment}-{config.backup_id}",
            vpc=self.network.vpc,
            subnets=self.network.subnets,
            mount_target_security_group=self.network.backup_mount_target_security_group,
            settings=config.backup_file_system,
            client_role=self.worker.role,
        )
        self.scripts = ScriptBucket(
            self,
            "Scripts",
            scripts_path=str(SCRIPTS_PATH),
            noncurrent_version_expiration_days=config.script_noncurrent_version_expiration_days,
            access_log_retention_days=config.access_log_retention_days,
        )

        outputs = {
            "BackupId": (config.backup_id, "The <backup-id> directory on the backup file system"),
            "SourceFileSystemId": (config.source_file_system_id, "Production file system being backed up"),
            "BackupFileSystemId": (self.backup_file_system.file_system_id, "Backup file system id"),
            "BackupMountTargetSecurityGroupId": (
                self.network.backup_mount_target_security_group.security_group_id,
                "Security group of the backup file system's mount targets",
            ),
            "BackupClientSecurityGroupId": (
                self.network.backup_client_security_group.security_group_id,
                "Security group of the workers (NFS to both file systems, HTTPS)",
            ),
            "SourceClientSecurityGroupId": (
                self.network.source_client_security_group.security_group_id,
                "Client security group the production mount targets admit, carried by the workers",
            ),
            "ScriptBucketName": (self.scripts.bucket.bucket_name, "Bucket holding the deployed engine versions"),
            "ScriptKeyPrefix": (self.scripts.script_key_prefix, "Key prefix of the engine version deployed now"),
            "AccessLogBucketName": (self.scripts.access_log_bucket.bucket_name, "Server access logs of the bucket"),
            "WorkerRoleArn": (self.worker.role.role_arn, "Role of the worker instances"),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
