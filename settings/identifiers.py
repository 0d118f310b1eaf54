"""The shapes of names and AWS identifiers the configuration accepts, and the parsers of the deployment's identity
(account, region, stack name, backup-id)."""

from __future__ import annotations

import re
from typing import Any, Callable

from settings.parsers import Invalid, describe, pattern

HEX_ID = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"
EFS_ID = re.compile(rf"^fs-{HEX_ID}$")
VPC_ID = re.compile(rf"^vpc-{HEX_ID}$")
SUBNET_ID = re.compile(rf"^subnet-{HEX_ID}$")
SG_ID = re.compile(rf"^sg-{HEX_ID}$")
PREFIX_LIST_ID = re.compile(rf"^pl-{HEX_ID}$")
ROUTE_TABLE_ID = re.compile(rf"^rtb-{HEX_ID}$")
ACCOUNT = re.compile(r"^[0-9]{12}$")
REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
AZ_SUFFIX = re.compile(r"^[a-z]$")
KMS_KEY_ARN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"key/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
AMI_ID = re.compile(rf"^ami-{HEX_ID}$")
SSM_PARAMETER = re.compile(r"^ssm:(/[A-Za-z0-9_.\-/]{1,1010})$")

# The backup-id names a directory on the backup file system (``<backup-root>/<backup-id>/<interval>.<n>``) and
# appears in tags, resource names and descriptions, metric dimensions, run-history keys and notification subjects.
# The engine (efs_backup_engine.layout.BACKUP_ID_RE) accepts the same characters up to 128: it needs only a safe
# directory name (one path component, not starting with '.' or '-') and must operate any tree within that limit.
# The stack keeps 64 for the deployments it creates, because the subjects of its notifications carry the id and SNS
# takes a Subject of less than 100 characters (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html):
# "efs-backup <id> restore: INPUT REFUSED" is 98 characters at 64. Every id the stack accepts, the engine accepts.
BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BACKUP_ID_MAX_LENGTH = 64


def region_of_key(key_arn: str) -> str:
    """The region of a KMS key ARN that matched KMS_KEY_ARN."""
    return KMS_KEY_ARN.fullmatch(key_arn).group("region")


def account(value: Any) -> str:
    expectation = "12 digits, as a string"
    if isinstance(value, int) and not isinstance(value, bool):
        raise Invalid(
            f"{describe(value)} is a number; expected {expectation} (quote it in cdk.json so leading zeros survive)"
        )
    return pattern(ACCOUNT, "an AWS account id", expectation)(value)


region = pattern(REGION, "an AWS region", "e.g. us-east-1")
stack_name = pattern(STACK_NAME, "a stack name", "a letter, then letters, digits or hyphens, at most 128")
backup_id: Callable[[Any], str] = pattern(
    BACKUP_ID, "a backup id",
    f"a letter or digit, then letters, digits, '.', '_' or '-', at most {BACKUP_ID_MAX_LENGTH} characters")
