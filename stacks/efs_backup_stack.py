"""The efs-backup stack: storage and network (backup EFS, security groups, script bucket) and the orchestration
(worker launch templates, the backup and restore Step Functions workflows, run history, notifications, schedules).

Composition only: each construct owns one responsibility, receives typed values from ``EfsBackupConfig`` and never
reads context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from constructs.backup_file_system import BackupFileSystem
from constructs.backup_workflow import BackupWorkflow
from constructs.monitoring import Monitoring
from constructs.network_access import NetworkAccess
from constructs.restore_workflow import RestoreWorkflow
from constructs.notifications import Notifications
from constructs.schedules import Schedules
from constructs.script_bucket import ScriptBucket
from constructs.vpc_endpoints import VpcEndpoints
from constructs.worker_identity import WorkerIdentity
from constructs.worker_launch_template import FileSystemAccess, WorkerLaunchTemplate
from efs_backup_contract.deployment import (
    OUTPUT_BACKUP_ID,
    OUTPUT_RESTORE_STATE_MACHINE,
    OUTPUT_RUN_HISTORY_TABLE,
    OUTPUT_STATE_MACHINE,
    OUTPUT_WORKER_LOG_GROUP,
    TAG_BACKUP_ID,
    TAG_ENVIRONMENT,
)
from settings.model import EfsBackupConfig

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
            # the stack itself (with @aws-cdk/core:explicitStackTags, Tags.of below tags only its resources): the
            # operator CLI finds a deployment by this tag (efs_backup_cli/discovery.py)
            tags={TAG_ENVIRONMENT: config.environment, TAG_BACKUP_ID: config.backup_id},
            **kwargs,
        )
        self.config = config
        Tags.of(self).add(TAG_ENVIRONMENT, config.environment)
        Tags.of(self).add(TAG_BACKUP_ID, config.backup_id)

        # The production file system is not part of this stack; workers need its ARN for their EFS client rights.
        self.source_file_system_arn = self.format_arn(
            service="elasticfilesystem", resource="file-system", resource_name=config.source_file_system_id
        )
        self.worker = WorkerIdentity(self, "Worker", backup_id=config.backup_id)
        self.restore_worker = WorkerIdentity(
            self, "RestoreWorker", backup_id=config.backup_id, kind="restore",
            duty="mount the snapshots read-only and the production file system read-write, restore",
        )
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
            restore_targets=config.restore_targets,
        )
        self.backup_file_system = BackupFileSystem(
            self,
            "BackupFileSystem",
            name=f"efs-backup-{config.environment}-{config.backup_id}",
            vpc=self.network.vpc,
            subnets=self.network.subnets,
            mount_target_security_group=self.network.backup_mount_target_security_group,
            settings=config.backup_file_system,
            client_roles=[self.worker.role, self.restore_worker.role],
        )
        self.scripts = ScriptBucket(
            self,
            "Scripts",
            scripts_path=str(SCRIPTS_PATH),
            noncurrent_version_expiration_days=config.script_noncurrent_version_expiration_days,
            access_log_retention_days=config.access_log_retention_days,
        )

        # Built from the id (Ref) rather than GetAtt Arn: the same ARN, and moto's CloudFormation can resolve it.
        backup_file_system_arn = self.format_arn(
            service="elasticfilesystem", resource="file-system", resource_name=self.backup_file_system.file_system_id
        )
        # Created only when configured (vpc_endpoints, existing_vpc_endpoint_security_groups): otherwise a NAT or
        # existing endpoints serve the workers.
        self.endpoints = None
        if config.vpc_endpoints.services or config.vpc_endpoints.existing_security_group_ids:
            self.endpoints = VpcEndpoints(
                self,
                "Endpoints",
                settings=config.vpc_endpoints,
                vpc=self.network.vpc,
                subnets=self.network.subnets,
                client_security_group=self.network.backup_client_security_group,
            )
        # Without private DNS the workers' user data points their AWS CLI at the created endpoints.
        worker_environment = self.endpoints.worker_environment if self.endpoints else {}
        self.launch_template = WorkerLaunchTemplate(
            self,
            "WorkerLaunchTemplate",
            settings=config.workers,
            worker=self.worker,
            security_groups=self.network.worker_security_groups,
            scripts=self.scripts,
            environment=worker_environment,
            purpose="backup",
            file_systems=[
                # No ClientWrite: production is mounted read-only, and with a production file-system policy EFS
                # refuses writes from this role too (without a policy EFS admits every client; see docs/deploy.md,
                # "Security properties").
                FileSystemAccess("MountProductionReadOnlyAsRoot", self.source_file_system_arn, write=False),
                FileSystemAccess("MountBackupReadWriteAsRoot", backup_file_system_arn, write=True),
            ],
        )
        self.notifications = Notifications(
            self,
            "Notifications",
            display_name=f"efs-backup {config.environment} {config.backup_id}",
            emails=config.notifications.emails,
        )
        self.workflow = BackupWorkflow(
            self,
            "Workflow",
            state_machine_name=f"{config.stack_name}-backup"[:80],
            backup_id=config.backup_id,
            source_file_system_id=config.source_file_system_id,
            backup_file_system_id=self.backup_file_system.file_system_id,
            subnet_ids=config.subnet_ids,
            workers=config.workers,
            launch_template=self.launch_template,
            worker=self.worker,
            topic=self.notifications.topic,
            notify_on_success=config.notifications.notify_on_success,
            retention=config.retention,
        )
        self.restore_launch_template = WorkerLaunchTemplate(
            self,
            "RestoreLaunchTemplate",
            settings=config.workers,
            worker=self.restore_worker,
            security_groups=self.network.worker_security_groups,
            scripts=self.scripts,
            environment=worker_environment,
            purpose="restore",
            file_systems=[
                # Write access on the backup file system serves the lock and the restore's bookkeeping only:
                # worker.sh mounts the snapshots read-only (and only the state directory read-write).
                FileSystemAccess("MountBackupForRestoreAsRoot", backup_file_system_arn, write=True),
                FileSystemAccess("RestoreIntoProductionAsRoot", self.source_file_system_arn, write=True),
            ] + [
                FileSystemAccess(f"RestoreInto{target.file_system_id.replace('-', '')}AsRoot", self.format_arn(
                    service="elasticfilesystem", resource="file-system", resource_name=target.file_system_id,
                ), write=True)
                for target in config.restore_targets
            ],
            log_group=self.launch_template.log_group,
        )
        self.restore_workflow = RestoreWorkflow(
            self,
            "RestoreWorkflow",
            state_machine_name=f"{config.stack_name}-restore"[:80],
            backup_id=config.backup_id,
            source_file_system_id=config.source_file_system_id,
            backup_file_system_id=self.backup_file_system.file_system_id,
            subnet_ids=config.subnet_ids,
            workers=config.workers,
            launch_template=self.restore_launch_template,
            worker=self.restore_worker,
            topic=self.notifications.topic,
            table=self.workflow.table,
            target_file_system_ids=[config.source_file_system_id]
            + [target.file_system_id for target in config.restore_targets],
        )
        self.schedules = Schedules(
            self,
            "Schedules",
            state_machine_arn=self.workflow.state_machine.state_machine_arn,
            policies=config.retention,
            workers=config.workers.count,
            timezone=config.schedule_timezone,
            enabled=config.schedules_enabled,
            name_prefix=config.stack_name,
        )
        # Monitoring (constructs/monitoring.py): the newest-snapshot publisher, alarms to their own topic (CloudWatch
        # cannot publish to the aws/sns-encrypted notification topic), the optional dashboard.
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            name_prefix=config.stack_name,
            backup_id=config.backup_id,
            settings=config.monitoring,
            policies=config.retention,
            schedules_enabled=config.schedules_enabled,
            timezone=config.schedule_timezone,
            run_table=self.workflow.table,
            state_machines={"backup": self.workflow.state_machine, "restore": self.restore_workflow.state_machine},
            source_file_system_id=config.source_file_system_id,
            backup_file_system_id=self.backup_file_system.file_system_id,
            backup_file_system=config.backup_file_system,
            emails=config.notifications.emails,
        )
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.alarm_topic.topic_arn,
                  description="Alarms: failed runs, stale snapshots, backup file system limits")
        if self.monitoring.dashboard is not None:
            CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name,
                      description="CloudWatch dashboard of the backups")

        # The outputs named by the contract are the ones the operator CLI reads (efs_backup_contract.deployment).
        outputs = {
            OUTPUT_BACKUP_ID: (config.backup_id, "The <backup-id> directory on the backup file system"),
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
            OUTPUT_STATE_MACHINE: (self.workflow.state_machine.state_machine_arn,
                                "Backup workflow: start-execution with {interval, workers?} (retention is deployed)"),
            OUTPUT_RESTORE_STATE_MACHINE: (
                self.restore_workflow.state_machine.state_machine_arn,
                "Restore workflow: start-execution with {snapshot|at, paths?, target_path?, mirror?, dry_run?}",
            ),
            "RestoreWorkerRoleArn": (self.restore_worker.role.role_arn, "Role of the restore worker instances"),
            "RestoreStateMachineLogGroupName": (self.restore_workflow.log_group.log_group_name,
                                                "Restore state machine logs (no data)"),
            "NotificationTopicArn": (self.notifications.topic.topic_arn, "Run outcomes (failures always)"),
            OUTPUT_RUN_HISTORY_TABLE: (self.workflow.table.table_name, "Run summaries: key backup_id, sort key run"),
            OUTPUT_WORKER_LOG_GROUP: (self.launch_template.log_group.log_group_name, "Worker logs, one stream per task"),
            "StateMachineLogGroupName": (self.workflow.log_group.log_group_name, "State machine logs (no data)"),
            "WorkerLaunchTemplateId": (self.launch_template.launch_template_id, "Launch template of the workers"),
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
