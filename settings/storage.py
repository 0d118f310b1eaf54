"""Parsers of the backup file system's keys: lifecycle transitions and the encryption key."""

from __future__ import annotations

from typing import Any, Optional

from settings.identifiers import KMS_KEY_ARN
from settings.model import EFS_LIFECYCLE_DAYS, KMS_AWS_MANAGED, KMS_CREATE, KmsKeyChoice
from settings.parsers import Invalid, describe, is_none


def lifecycle_days(value: Any) -> Optional[int]:
    if is_none(value):
        return None
    listed = ", ".join(str(d) for d in EFS_LIFECYCLE_DAYS)
    expectation = f"none or one of {listed} (days)"
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise Invalid(f"{describe(value)} is not a number of days; expected {expectation}")
    days = int(value)
    if days not in EFS_LIFECYCLE_DAYS:
        raise Invalid(f"{describe(value)} is not a transition EFS supports; expected {expectation}")
    return days


def kms_key(value: Any) -> KmsKeyChoice:
    expectation = f"{KMS_AWS_MANAGED!r}, {KMS_CREATE!r} or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    if value == KMS_AWS_MANAGED:
        return KmsKeyChoice(KMS_AWS_MANAGED)
    if value == KMS_CREATE:
        return KmsKeyChoice(KMS_CREATE)
    if isinstance(value, str) and KMS_KEY_ARN.fullmatch(value):
        return KmsKeyChoice("existing", value)
    raise Invalid(f"{describe(value)} is not a key choice; expected {expectation}")
