"""Network access of the backup workers: the imported VPC and subnets, and the two security-group pairs.

As in the old walkthrough, each file system has a mount-target group and a client group:

* backup file system: a new mount-target group that admits NFS (TCP 2049) only from a new backup-client group;
* production file system: its existing mount-target group (imported by id) and either an existing client group that
  those mount targets already admit (imported, attached to the workers, never modified) or a created client group
  plus one NFS ingress rule on the production mount-target group.

Workers carry ``worker_security_groups`` (the backup-client group and the production client group). All their
egress lives on the backup-client group: NFS to both mount-target groups and HTTPS to the configured destinations,
nothing else. Other file systems that restores may write to (``restore_target_file_systems``) get one NFS ingress
rule from the backup-client group on their mount-target group, and the backup-client group NFS egress to it.
Nothing is looked up at synth: VPC, subnets and groups are imported by id.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from settings.model import RestoreTarget

NFS_PORT = 2049
HTTPS_PORT = 443


class NetworkAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str,
        vpc_cidr: str,
        subnet_ids: Sequence[str],
        availability_zones: Sequence[str],
        source_file_system_id: str,
        source_mount_target_security_group_id: str,
        source_client_security_group_id: Optional[str],
        https_egress: Sequence[str],
        restore_targets: Sequence[RestoreTarget] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        if len(subnet_ids) != len(availability_zones) or not subnet_ids:
            raise ValueError("NetworkAccess needs one availability zone per subnet")

        self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=vpc_id,
            vpc_cidr_block=vpc_cidr,
            availability_zones=list(availability_zones),
            private_subnet_ids=list(subnet_ids),
        )
        # One imported private subnet per zone, in configuration order: the backup mount targets and the workers.
        self.subnets: List[ec2.ISubnet] = list(self.vpc.private_subnets)
        for subnet in self.subnets:
            Validations.of(subnet).acknowledge(
                Acknowledgment(
                    id="@aws-cdk/aws-ec2:noSubnetRouteTableId",
                    reason="Subnets are imported by id only to place mount targets and workers; nothing in this "
                    "app reads their route tables (a gateway endpoint would need them given in configuration).",
                )
            )

        self.backup_mount_target_security_group = ec2.SecurityGroup(
            self,
            "BackupMountTargetSecurityGroup",
            vpc=self.vpc,
            description="efs-backup: mount targets of the backup file system; NFS only from the backup-client group",
            allow_all_outbound=False,
        )
        self.backup_client_security_group = ec2.SecurityGroup(
            self,
            "BackupClientSecurityGroup",
            vpc=self.vpc,
            description="efs-backup workers: NFS to the backup and production mount targets, HTTPS to AWS APIs",
            allow_all_outbound=False,
        )
        self.backup_mount_target_security_group.add_ingress_rule(
            self.backup_client_security_group,
            ec2.Port.tcp(NFS_PORT),
            "NFS from efs-backup workers (backup-client group)",
        )
        self.backup_client_security_group.add_egress_rule(
            self.backup_mount_target_security_group,
            ec2.Port.tcp(NFS_PORT),
            "NFS to the backup file system's mount targets",
        )

        # Production side. The mount-target group is only modified when we create the client group it must admit.
        # A created client group is an identity only (no egress of its own): all worker egress is on the
        # backup-client group, so it is listed in one place.
        creates_client_group = source_client_security_group_id is None
        self.source_mount_target_security_group = ec2.SecurityGroup.from_security_group_id(
            self,
            "SourceMountTargetSecurityGroup",
            source_mount_target_security_group_id,
            allow_all_outbound=False,
            mutable=creates_client_group,
        )
        self.backup_client_security_group.add_egress_rule(
            self.source_mount_target_security_group,
            ec2.Port.tcp(NFS_PORT),
            f"NFS to the production file system's mount targets ({source_file_system_id})",
        )
        if creates_client_group:
            created = ec2.SecurityGroup(
                self,
                "SourceClientSecurityGroup",
                vpc=self.vpc,
                description=f"efs-backup workers as clients of the production file system {source_file_system_id}",
                allow_all_outbound=False,
            )
            self.source_mount_target_security_group.add_ingress_rule(
                created,
                ec2.Port.tcp(NFS_PORT),
                "NFS from efs-backup workers (created production client group)",
            )
            self.source_client_security_group: ec2.ISecurityGroup = created
        else:
            self.source_client_security_group = ec2.SecurityGroup.from_security_group_id(
                self,
                "SourceClientSecurityGroup",
                source_client_security_group_id,
                allow_all_outbound=False,
                mutable=False,
            )
        self.creates_source_client_security_group = creates_client_group
        # Other file systems restores may write to: NFS from the backup-client group to their mount targets (the
        # one rule added to each of their groups). Only the restore worker role has EFS rights on them.
        self.restore_target_security_groups: List[ec2.ISecurityGroup] = []
        for target in restore_targets:
            group = ec2.SecurityGroup.from_security_group_id(
                self, f"RestoreTarget{target.file_system_id}", target.mount_target_security_group_id,
                allow_all_outbound=False, mutable=True,
            )
            group.add_ingress_rule(self.backup_client_security_group, ec2.Port.tcp(NFS_PORT),
                                   f"NFS from efs-backup restore workers (backup-client group) to {target.file_system_id}")
            self.backup_client_security_group.add_egress_rule(
                group, ec2.Port.tcp(NFS_PORT), f"NFS to the mount targets of restore target {target.file_system_id}")
            self.restore_target_security_groups.append(group)

        for destination in https_egress:
            peer = ec2.Peer.prefix_list(destination) if destination.startswith("pl-") else ec2.Peer.ipv4(destination)
            self.backup_client_security_group.add_egress_rule(
                peer,
                ec2.Port.tcp(HTTPS_PORT),
                f"HTTPS to AWS APIs and package repositories via {destination}",
            )

    @property
    def worker_security_groups(self) -> List[ec2.ISecurityGroup]:
        """The groups every backup or restore worker instance carries."""
        return [self.backup_client_security_group, self.source_client_security_group]
