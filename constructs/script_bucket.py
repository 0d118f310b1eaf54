"""The script bucket: where workers fetch the backup engine from, pinned to the exact version deployed.

The contents of ``assets/scripts/`` become one CDK asset (bytecode and caches excluded, so running the engine's tests
does not change its hash) and are copied by a BucketDeployment to ``scripts/<asset-hash>/`` in a private bucket.
``script_key_prefix`` is that prefix: user data fetches exactly this version, an older execution keeps the version
it started with, and a changed script gets a new prefix rather than overwriting a running one.

The bucket blocks public access, accepts only TLS (1.2+), is versioned and encrypted (SSE-S3), expires replaced
versions after a configurable time and writes server access logs to a separate log bucket. Both are retained when
the stack is deleted. Workers never download code from the internet at run time.
"""

from __future__ import annotations

import os
from typing import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from constructs.nag import NAG_PACK, nag_resource

# Never part of the deployed engine: bytecode and tool caches appear whenever tests import the engine in place.
ASSET_EXCLUDES: Sequence[str] = ("__pycache__", "*.py[cod]", ".pytest_cache", ".mypy_cache", ".ruff_cache")
SCRIPT_KEY_ROOT = "scripts"
ACCESS_LOG_PREFIX = "script-bucket/"


class ScriptBucket(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        scripts_path: str,
        noncurrent_version_expiration_days: int,
        access_log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        if not os.path.isdir(scripts_path):
            raise ValueError(f"script directory {scripts_path!r} does not exist")
        # Access logs are delivered through a bucket policy (logging.s3.amazonaws.com, this bucket as source), not
        # the legacy LogDeliveryWrite ACL, which BucketOwnerEnforced forbids. cdk.json enables this flag for the
        # whole app; setting it here keeps the construct correct in any app.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)

        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access log delivery does not support SSE-KMS
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(access_log_retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix=ACCESS_LOG_PREFIX,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireReplacedVersions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_expiration_days),
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
        )

        self.asset = s3_assets.Asset(self, "ScriptsAsset", path=scripts_path, exclude=list(ASSET_EXCLUDES))
        self.script_key_prefix: str = f"{SCRIPT_KEY_ROOT}/{self.asset.asset_hash}/"

        # The deployment Lambda runs only during CloudFormation deploys. It gets its own role (no AWS managed
        # policy) so that the wildcards BucketDeployment's grants add sit on a construct of ours, acknowledged below.
        self.deployment_role = iam.Role(
            self,
            "DeploymentRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="efs-backup: copies the engine version into the script bucket during deployments",
        )
        deployment_logs = logs.LogGroup(
            self,
            "DeploymentLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY,
        )
        deployment_logs.grant_write(self.deployment_role)
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deployment",
            sources=[s3deploy.Source.bucket(self.asset.bucket, self.asset.s3_object_key)],
            destination_bucket=self.bucket,
            destination_key_prefix=self.script_key_prefix,
            # prune only acts inside this version's prefix; older versions stay for executions still using them.
            prune=True,
            retain_on_delete=True,
            memory_limit=256,
            role=self.deployment_role,
            log_group=deployment_logs,
        )
        self._acknowledge_deployment_findings()

    def _acknowledge_deployment_findings(self) -> None:
        """Acknowledge, finding by finding, what aws-cdk-lib's BucketDeployment grants its deploy-time handler."""
        stack = Stack.of(self)
        granted_by_cdk = (
            "Granted by aws-cdk-lib's BucketDeployment to its handler, which runs only during deployments; scoped "
            "to the CDK asset bucket (read) and to this script bucket (sync and prune)."
        )
        asset_objects = nag_resource(stack, self.asset.bucket.arn_for_objects("*"))
        script_objects = nag_resource(stack, self.bucket.arn_for_objects("*"))
        findings = {
            "IAM5[Action::s3:GetObject*]": granted_by_cdk,
            "IAM5[Action::s3:GetBucket*]": granted_by_cdk,
            "IAM5[Action::s3:List*]": granted_by_cdk,
            "IAM5[Action::s3:DeleteObject*]": granted_by_cdk + " Deletes prune stale files inside the version prefix.",
            "IAM5[Action::s3:Abort*]": granted_by_cdk + " Abort cleans up failed multipart uploads.",
            f"IAM5[Resource::{asset_objects}]": (
                "The CDK bootstrap asset bucket is content-addressed and the asset's key is only fixed when it is "
                "published, so the handler reads objects of that one bucket."
            ),
            f"IAM5[Resource::{script_objects}]": "The handler syncs and prunes objects of this one script bucket.",
        }
        policy = self.deployment_role.node.find_child("DefaultPolicy").node.default_child
        Validations.of(policy).acknowledge(
            *(Acknowledgment(id=f"{NAG_PACK}AwsSolutions-{rule}", reason=reason) for rule, reason in findings.items())
        )
        # The handler function is a stack-level singleton that BucketDeployment creates beside the stack's
        # top-level constructs (one per memory size), so it is found there.
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                Validations.of(child.node.default_child).acknowledge(
                    Acknowledgment(
                        id=f"{NAG_PACK}AwsSolutions-L1",
                        reason="The runtime of BucketDeployment's handler is pinned by aws-cdk-lib and moves with "
                        "its upgrades; the function runs only during deployments, never on workers.",
                    )
                )

    @property
    def asset_hash(self) -> str:
        return self.asset.asset_hash

    def script_objects_arn(self) -> str:
        """ARN pattern of exactly this version's script objects."""
        return self.bucket.arn_for_objects(f"{self.script_key_prefix}*")

    def grant_read_scripts(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` (the worker role) read this version's script objects and nothing else in the bucket."""
        return self.bucket.grant_read(grantee, f"{self.script_key_prefix}*")
