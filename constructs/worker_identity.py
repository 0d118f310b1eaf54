"""The identity of worker instances (one for backup workers, one for restore workers): an IAM role and its instance
profile.

The role starts with no policies. The backup file system's policy names it as the only principal it grants
mount/write/root access to; the orchestration adds the rest (reading its script objects, Step Functions task
callbacks, logs, SSM) with ``add_to_policy`` or ``iam.Policy(...).attach_to_role(worker.role)``, one statement per
need, so every permission stays next to the reason it exists.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from constructs import Construct


class WorkerIdentity(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, backup_id: str,
                 duty: str = "mount both file systems, run the engine", kind: str = "") -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"efs-backup {kind + ' ' if kind else ''}workers of backup-id {backup_id}: {duty}",
        )
        self.instance_profile = iam.InstanceProfile(self, "InstanceProfile", role=self.role)

    def add_to_policy(self, statement: iam.PolicyStatement) -> None:
        """Add one statement to the worker role's own (inline, default) policy."""
        self.role.add_to_principal_policy(statement)
