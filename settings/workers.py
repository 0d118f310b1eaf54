"""Parsers of the workers' keys: instance types, image, root-volume key and the heartbeat timeout (with the one
emulator seam that relaxes its lower bound for tests)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Optional

from settings.identifiers import AMI_ID, INSTANCE_TYPE, KMS_KEY_ARN, SSM_PARAMETER
from settings.model import MAX_HEARTBEAT_TIMEOUT_SECONDS, WORKER_FIRST_HEARTBEAT_SECONDS, WorkerImage
from settings.parsers import Invalid, describe, integer, is_none, list_of, matches, string

_emulated_first_heartbeat: Optional[int] = None


@contextmanager
def emulated_worker_boot(first_heartbeat_seconds: int):
    """THE EMULATOR SEAM for the heartbeat bound, for tests only: moto's simulated workers "boot" in well under a
    second, so the end-to-end tests may use heartbeat timeouts of seconds. Real deployments never pass through it."""
    global _emulated_first_heartbeat
    previous, _emulated_first_heartbeat = _emulated_first_heartbeat, first_heartbeat_seconds
    try:
        yield
    finally:
        _emulated_first_heartbeat = previous


def heartbeat_timeout(value: Any) -> int:
    first = _emulated_first_heartbeat if _emulated_first_heartbeat is not None else WORKER_FIRST_HEARTBEAT_SECONDS
    low = 2 * first
    try:
        return integer(value, low, MAX_HEARTBEAT_TIMEOUT_SECONDS)
    except Invalid as invalid:
        raise Invalid(f"{invalid} (a worker's first heartbeat comes only after boot, cloud-init and the script "
                      f"download, up to {first} s on EC2, so the timeout must be at least twice that)") from None


instance_types = list_of(
    matches(INSTANCE_TYPE), not_a="an instance type",
    expectation="a list of instance types such as m6a.large, comma-separated with -c, or none",
    twice=("an instance type", "type"))


def ebs_kms_key(value: Any) -> Optional[str]:
    expectation = "'default' (the account's EBS default key) or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    if value == "default":
        return None
    if isinstance(value, str) and KMS_KEY_ARN.fullmatch(value):
        return value
    raise Invalid(f"{describe(value)} is not a key choice; expected {expectation}")


def worker_image(value: Any) -> Optional[WorkerImage]:
    if is_none(value):
        return None
    expectation = ("none, an AMI id (ami- followed by 8 or 17 hex digits) or ssm:/<parameter name> holding one, "
                   "of an image with amazon-efs-utils, nfs-utils and rsync installed")
    text = string(value, expectation)
    if AMI_ID.fullmatch(text):
        return WorkerImage(ami_id=text)
    match = SSM_PARAMETER.fullmatch(text)
    if match:
        return WorkerImage(ssm_parameter=match.group(1))
    raise Invalid(f"{describe(value)} is not a worker image; expected {expectation}")
