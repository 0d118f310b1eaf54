"""The efs-backup configuration: CDK context in, one frozen, validated object out.

This is the only module that reads CDK context. ``cdk.json`` holds named environments under the context key
``environments``; ``-c env=<name>`` selects one, and any configuration key can be overridden for a single run with
``-c key=value`` (such values always arrive as strings, so integers and booleans are coerced from strings strictly).

Every problem is collected before anything is raised, so one failed synth reports all of them; each message names
the key, the bad value and what is expected. Stacks and constructs receive the typed values and never read context.

The table in README.md ("Configuration reference") documents the keys of ``KEYS`` below; a test keeps the two in
step.
"""

from __future__ import annotations

import ipaddress
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# Context keys that are not configuration keys.
ENV_CONTEXT_KEY = "env"
ENVIRONMENTS_CONTEXT_KEY = "environments"
RESERVED_CONTEXT_KEYS = frozenset({ENV_CONTEXT_KEY, ENVIRONMENTS_CONTEXT_KEY})

# The snapshot intervals of the engine's layout ``<backup-root>/<backup-id>/<interval>.<n>``, in rotation order.
INTERVALS: Tuple[str, ...] = ("hourly", "daily", "weekly", "monthly")

# EFS allows 177 hard links per file. The engine keeps ``retain + 1`` trees per used interval (the promoted
# snapshots plus the one being built), and an unchanged file is one inode linked from every tree, so the sum over
# the used intervals must stay well below that limit.
EFS_HARD_LINK_LIMIT = 177
MAX_LINKED_TREES = 170
MAX_RETAIN = MAX_LINKED_TREES - 1
# Workers per run. The state machine spreads workers over the subnets from a list of this length.
MAX_WORKERS = 32
MAX_FALLBACK_INSTANCE_TYPES = 4

# --- worker heartbeats and progress (issue 11, item 4) -----------------------------------------------------------
# A worker's first heartbeat comes only after the instance booted, cloud-init ran the user data and the scripts were
# downloaded: 45-90 s on EC2 (user data runs at the end of boot: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/
# user-data.html). The heartbeat timeout must leave room for that twice over. The States Language requires
# HeartbeatSeconds to be smaller than TimeoutSeconds (https://states-language.net/spec.html#task-state; the task
# timeout bounds a task "regardless of the number of SendTaskHeartbeat requests received":
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html); this app asks for at
# most half, so a lost worker is always noticed by its heartbeat, long before the task timeout.
WORKER_FIRST_HEARTBEAT_SECONDS = 90
MIN_HEARTBEAT_TIMEOUT_SECONDS = 2 * WORKER_FIRST_HEARTBEAT_SECONDS
MAX_HEARTBEAT_TIMEOUT_SECONDS = 3600
# worker.sh withholds heartbeats once the engine has shown no progress for worker_stall_seconds; the engine proves
# progress every ENGINE_PROGRESS_SECONDS (a round trip to each mounted file system), so the limit must cover several
# of those plus an NFS retry (timeo=600 is 60 s per try).
ENGINE_PROGRESS_SECONDS = 15
MIN_STALL_SECONDS = 120
MAX_STALL_SECONDS = 3600
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


def _heartbeat_timeout(value: Any) -> int:
    first = _emulated_first_heartbeat if _emulated_first_heartbeat is not None else WORKER_FIRST_HEARTBEAT_SECONDS
    low = 2 * first
    try:
        return _integer(value, low, MAX_HEARTBEAT_TIMEOUT_SECONDS)
    except _Invalid as invalid:
        raise _Invalid(f"{invalid} (a worker's first heartbeat comes only after boot, cloud-init and the script "
                       f"download, up to {first} s on EC2, so the timeout must be at least twice that)") from None

# The lifecycle transitions EFS accepts (LifecyclePolicy AFTER_<n>_DAY[S]).
EFS_LIFECYCLE_DAYS: Tuple[int, ...] = (1, 7, 14, 30, 60, 90, 180, 270, 365)

PERFORMANCE_MODES: Tuple[str, ...] = ("generalPurpose", "maxIO")
THROUGHPUT_MODES: Tuple[str, ...] = ("elastic", "bursting", "provisioned")

# VPC endpoints the stack can create for the workers (the service part of com.amazonaws.<region>.<service>).
# Gateway endpoints attach to route tables; interface endpoints get an ENI in every configured subnet.
GATEWAY_ENDPOINTS: Tuple[str, ...] = ("s3", "dynamodb")
INTERFACE_ENDPOINTS: Tuple[str, ...] = ("states", "logs", "monitoring", "ssm", "ssmmessages", "ec2messages", "sns")
VPC_ENDPOINTS: Tuple[str, ...] = ("s3", "states", "logs", "monitoring", "ssm", "ssmmessages", "ec2messages",
                                  "dynamodb", "sns")
# Without private DNS, the workers' AWS CLI reaches an interface endpoint through its service-specific endpoint
# variable (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html; identifiers:
# https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html).
ENDPOINT_URL_VARIABLES: Dict[str, str] = {"states": "AWS_ENDPOINT_URL_SFN", "logs": "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"}

KMS_AWS_MANAGED = "aws-managed"
KMS_CREATE = "create"
CREATE_CLIENT_SECURITY_GROUP = "create"

_HEX_ID = r"(?:[0-9a-f]{8}|[0-9a-f]{17})"
_EFS_ID = re.compile(rf"^fs-{_HEX_ID}$")
_VPC_ID = re.compile(rf"^vpc-{_HEX_ID}$")
_SUBNET_ID = re.compile(rf"^subnet-{_HEX_ID}$")
_SG_ID = re.compile(rf"^sg-{_HEX_ID}$")
_PREFIX_LIST_ID = re.compile(rf"^pl-{_HEX_ID}$")
_ROUTE_TABLE_ID = re.compile(rf"^rtb-{_HEX_ID}$")
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
_AZ_SUFFIX = re.compile(r"^[a-z]$")
_KMS_KEY_ARN = re.compile(
    r"^arn:aws(?:-[a-z]+)*:kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"key/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
# The backup-id names a directory on the backup file system and appears in tags and execution names.
_BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_GRAVITON_FAMILY = re.compile(r"^[a-z]+[0-9]+[a-z]*g[a-z]*$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_SCHEDULE = re.compile(
    r"^(?:cron\((?:\S+ ){5}\S+\)|rate\((?:1 (?:minute|hour|day)|[1-9][0-9]* (?:minutes|hours|days))\))$"
)
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_TIMEZONE = re.compile(r"^(?:UTC|[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+)$")
_INTEGER_STRING = re.compile(r"^-?[0-9]+$")
_NUMBER_STRING = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
# Context keys in the shape of configuration keys; anything else (feature flags, lookup caches, CLI settings such
# as "cli-telemetry") belongs to the CDK and is ignored here.
_CONFIG_KEY_SHAPE = re.compile(r"^[a-z][a-z0-9_]*$")


class ConfigError(ValueError):
    """Raised with every problem of a configuration at once."""

    def __init__(self, problems: Sequence[str], environment: Optional[str] = None) -> None:
        self.problems: Tuple[str, ...] = tuple(problems)
        self.environment = environment
        where = f" for environment '{environment}'" if environment else ""
        count = len(self.problems)
        header = f"Invalid efs-backup configuration{where} ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {problem}" for problem in self.problems)]))


# --------------------------------------------------------------------------------------------- typed configuration


@dataclass(frozen=True)
class SubnetPlacement:
    """A private subnet of the VPC and its availability zone: one backup mount target (and worker slot) each."""

    subnet_id: str
    availability_zone: str


@dataclass(frozen=True)
class KmsKeyChoice:
    """How the backup file system is encrypted at rest (always encrypted; only the key differs)."""

    mode: str  # "aws-managed" | "create" | "existing"
    key_arn: Optional[str] = None  # set when mode == "existing"


@dataclass(frozen=True)
class BackupFileSystemSettings:
    performance_mode: str
    throughput_mode: str
    provisioned_throughput_mibps: Optional[int]
    kms_key: KmsKeyChoice
    transition_to_ia_days: Optional[int]
    transition_to_archive_days: Optional[int]
    automatic_backups: bool


@dataclass(frozen=True)
class IntervalPolicy:
    """One snapshot interval (``<interval>.0`` … ``<interval>.<retain-1>``). retain 0 means the interval is unused.

    The orchestration adds the interval's schedule here, so an interval's schedule and retention live in one place
    and a schedule can never start a run with another interval's label.
    """

    interval: str
    retain: int
    schedule: Optional[str] = None  # an EventBridge Scheduler expression (cron(...) / rate(...)), None = manual only

    @property
    def enabled(self) -> bool:
        return self.retain > 0

    @property
    def linked_trees(self) -> int:
        """Snapshot trees that share an unchanged file's inode for this interval (see MAX_LINKED_TREES)."""
        return self.retain + 1 if self.enabled else 0


def instance_architecture(instance_type: str) -> str:
    """arm64 for Graviton families (a 'g' after the generation digit: m7g, c6gn, t4g), else x86_64."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _GRAVITON_FAMILY.match(family) else "x86_64"


@dataclass(frozen=True)
class WorkerImage:
    """A worker image with amazon-efs-utils, nfs-utils and rsync preinstalled (``worker_image``): workers then need
    no package repository at run time. Exactly one of ami_id and ssm_parameter is set."""

    ami_id: Optional[str] = None
    ssm_parameter: Optional[str] = None  # a parameter of this account holding the AMI id, resolved at each launch


@dataclass(frozen=True)
class WorkerSettings:
    """The EC2 workers an execution launches."""

    count: int
    instance_type: str
    spot: bool
    heartbeat_timeout_seconds: int
    timeout_hours: int
    root_volume_gib: int
    stall_seconds: int = 300  # worker.sh withholds heartbeats after this long without engine progress
    image: Optional["WorkerImage"] = None  # None: Amazon Linux 2023 (latest), packages installed with dnf at boot
    # Tried in this order after instance_type when EC2 has no capacity for it in any subnet (same architecture).
    fallback_instance_types: Tuple[str, ...] = ()
    # The key that encrypts the workers' root volumes; None: the account's EBS default key for the region.
    ebs_kms_key_arn: Optional[str] = None

    @property
    def instance_types(self) -> Tuple[str, ...]:
        return (self.instance_type,) + self.fallback_instance_types

    @property
    def architecture(self) -> str:
        return instance_architecture(self.instance_type)

    @property
    def heartbeat_interval_seconds(self) -> int:
        """How often a worker sends a heartbeat: five chances before the task's heartbeat timeout."""
        return max(1, self.heartbeat_timeout_seconds // 5)


@dataclass(frozen=True)
class VpcEndpointSettings:
    """VPC endpoints created for the workers (none by default: an existing NAT or existing endpoints serve them)."""

    services: Tuple[str, ...] = ()
    route_table_ids: Tuple[str, ...] = ()  # where the gateway endpoints (s3, dynamodb) are routed
    existing: Tuple[str, ...] = ()  # services whose endpoints already exist in the VPC (never created here)
    existing_security_group_ids: Tuple[str, ...] = ()  # their groups: HTTPS from the backup-client group
    private_dns: bool = True  # False: workers are pointed at the created endpoints by AWS_ENDPOINT_URL_<SERVICE>

    @property
    def gateway_services(self) -> Tuple[str, ...]:
        return tuple(s for s in self.services if s in GATEWAY_ENDPOINTS)

    @property
    def interface_services(self) -> Tuple[str, ...]:
        return tuple(s for s in self.services if s in INTERFACE_ENDPOINTS)


@dataclass(frozen=True)
class NotificationSettings:
    emails: Tuple[str, ...]
    notify_on_success: bool


# Nominal length of each interval: a scheduled interval's newest snapshot is stale after a multiple of it.
INTERVAL_SECONDS: Dict[str, int] = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400, "monthly": 31 * 86400}
STALE_MULTIPLE_RANGE = (1.5, 10.0)


@dataclass(frozen=True)
class MonitoringSettings:
    """Alarms (always) and the dashboard (optional): see constructs/monitoring.py."""

    dashboard: bool = False
    stale_multiple: float = 2.0  # a scheduled interval alarms when its newest snapshot is older than this many lengths
    burst_credit_minimum_gib: int = 256  # bursting backup file system: alarm below this burst credit balance
    utilization_percent: int = 90  # PercentIOLimit / permitted-throughput utilization alarm threshold

    def stale_after_seconds(self, interval: str) -> int:
        return int(round(self.stale_multiple * INTERVAL_SECONDS[interval]))


@dataclass(frozen=True)
class RestoreTarget:
    """A file system restores may write to besides the production one, and its mount targets' security group."""

    file_system_id: str
    mount_target_security_group_id: str


@dataclass(frozen=True)
class EfsBackupConfig:
    environment: str
    account: str
    region: str
    stack_name: str
    backup_id: str
    vpc_id: str
    vpc_cidr: str
    subnets: Tuple[SubnetPlacement, ...]
    source_file_system_id: str
    source_mount_target_security_group_id: str
    # None means: create a client security group and let the production mount targets admit it.
    source_client_security_group_id: Optional[str]
    backup_file_system: BackupFileSystemSettings
    worker_https_egress: Tuple[str, ...]
    vpc_endpoints: VpcEndpointSettings
    script_noncurrent_version_expiration_days: int
    access_log_retention_days: int
    retention: Tuple[IntervalPolicy, ...]
    workers: WorkerSettings
    notifications: NotificationSettings
    schedule_timezone: str
    schedules_enabled: bool
    monitoring: MonitoringSettings = MonitoringSettings()
    restore_targets: Tuple[RestoreTarget, ...] = ()

    @property
    def availability_zones(self) -> Tuple[str, ...]:
        return tuple(s.availability_zone for s in self.subnets)

    @property
    def subnet_ids(self) -> Tuple[str, ...]:
        return tuple(s.subnet_id for s in self.subnets)

    @property
    def creates_source_client_security_group(self) -> bool:
        return self.source_client_security_group_id is None

    def retention_for(self, interval: str) -> IntervalPolicy:
        for policy in self.retention:
            if policy.interval == interval:
                return policy
        raise KeyError(interval)


# ---------------------------------------------------------------------------------------------------- key catalog


class _Invalid(Exception):
    """One problem with one value; the message follows ``<key>: <value> ...``."""


_MISSING = object()


@dataclass(frozen=True)
class KeySpec:
    name: str
    type_doc: str
    default: Any  # _MISSING when required; a callable of the environment name for derived defaults
    default_doc: str
    meaning: str
    parse: Callable[[Any], Any]

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def _describe(value: Any) -> str:
    return repr(value)


def _string(value: Any, expectation: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{_describe(value)} is not a string; expected {expectation}")
    return value


def _pattern(regex: re.Pattern, what: str, expectation: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _string(value, expectation)
        if not regex.match(text):
            raise _Invalid(f"{_describe(value)} is not {what} ({expectation})")
        return text

    return parse


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def _integer(value: Any, low: int, high: int) -> int:
    expectation = f"a whole number from {low} to {high}"
    if isinstance(value, bool):
        raise _Invalid(f"{_describe(value)} is a boolean; expected {expectation}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER_STRING.match(value):
        number = int(value)
    else:
        raise _Invalid(f"{_describe(value)} is not a whole number; expected {expectation}")
    if not low <= number <= high:
        raise _Invalid(f"{_describe(value)} is out of range; expected {expectation}")
    return number


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    return lambda value: _integer(value, low, high)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _Invalid(f"{_describe(value)} is not a boolean; expected true or false")


def _choice(choices: Sequence[str]) -> Callable[[Any], str]:
    listed = ", ".join(choices)

    def parse(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"{_describe(value)} is not a valid choice; expected one of {listed}")
        return value

    return parse


def _lifecycle_days(value: Any) -> Optional[int]:
    if _is_none(value):
        return None
    listed = ", ".join(str(d) for d in EFS_LIFECYCLE_DAYS)
    expectation = f"none or one of {listed} (days)"
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise _Invalid(f"{_describe(value)} is not a number of days; expected {expectation}")
    days = int(value)
    if days not in EFS_LIFECYCLE_DAYS:
        raise _Invalid(f"{_describe(value)} is not a transition EFS supports; expected {expectation}")
    return days


def _optional_int(low: int, high: int) -> Callable[[Any], Optional[int]]:
    def parse(value: Any) -> Optional[int]:
        if _is_none(value):
            return None
        return _integer(value, low, high)

    return parse


def _account(value: Any) -> str:
    expectation = "12 digits, as a string"
    if isinstance(value, int) and not isinstance(value, bool):
        raise _Invalid(
            f"{_describe(value)} is a number; expected {expectation} (quote it in cdk.json so leading zeros survive)"
        )
    return _pattern(_ACCOUNT, "an AWS account id", expectation)(value)


def _cidr(value: Any) -> str:
    expectation = "an IPv4 network in CIDR notation such as 10.0.0.0/16"
    text = _string(value, expectation)
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise _Invalid(f"{_describe(value)} is not a CIDR block ({expectation})") from None
    if "/" not in text:
        raise _Invalid(f"{_describe(value)} has no prefix length ({expectation})")
    return str(network)


def _restore_targets(value: Any) -> Tuple[RestoreTarget, ...]:
    expectation = (
        'a mapping of EFS id to its mount targets\' security group id, e.g. {"fs-0123abcd": "sg-0123abcd"} in '
        "cdk.json or fs-0123abcd:sg-0123abcd,fs-4567cdef:sg-4567cdef with -c, or none"
    )
    if _is_none(value) or value == {}:
        return ()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            fs_id, sep, group = item.strip().partition(":")
            if not sep:
                raise _Invalid(f"{_describe(value)} is not a file-system mapping; expected {expectation}")
            pairs.append((fs_id.strip(), group.strip()))
    else:
        raise _Invalid(f"{_describe(value)} is not a file-system mapping; expected {expectation}")
    problems = []
    for fs_id, group in pairs:
        if not isinstance(fs_id, str) or not _EFS_ID.match(fs_id):
            problems.append(f"{_describe(fs_id)} is not an EFS id (fs- followed by 8 or 17 hex digits)")
        if not isinstance(group, str) or not _SG_ID.match(group):
            problems.append(f"file system {fs_id!r} has security group {_describe(group)}; expected sg- followed by "
                            "8 or 17 hex digits")
    ids = [fs_id for fs_id, _group in pairs]
    problems += [f"{fs_id!r} is listed more than once" for fs_id in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise _Invalid("; ".join(problems))
    return tuple(RestoreTarget(fs_id, group) for fs_id, group in pairs)


def _subnets(value: Any) -> Tuple[SubnetPlacement, ...]:
    expectation = (
        'a mapping of subnet id to availability zone, e.g. {"subnet-0123abcd": "us-east-1a"} in cdk.json or '
        "subnet-0123abcd:us-east-1a,subnet-4567cdef:us-east-1b with -c"
    )
    pairs: List[Tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            subnet, sep, zone = item.strip().partition(":")
            if not sep:
                raise _Invalid(f"{_describe(value)} is not a subnet mapping; expected {expectation}")
            pairs.append((subnet.strip(), zone.strip()))
    else:
        raise _Invalid(f"{_describe(value)} is not a subnet mapping; expected {expectation}")
    if not pairs:
        raise _Invalid(f"{_describe(value)} names no subnet; expected at least one ({expectation})")
    problems = []
    placements = []
    for subnet, zone in pairs:
        if not isinstance(subnet, str) or not _SUBNET_ID.match(subnet):
            problems.append(f"{_describe(subnet)} is not a subnet id (subnet- followed by 8 or 17 hex digits)")
        if not isinstance(zone, str) or not zone:
            problems.append(f"subnet {subnet!r} has availability zone {_describe(zone)}; expected a zone name")
        placements.append(SubnetPlacement(str(subnet), str(zone)))
    zones = [p.availability_zone for p in placements]
    duplicates = sorted({z for z in zones if zones.count(z) > 1})
    if duplicates:
        problems.append(
            f"more than one subnet in {', '.join(duplicates)}; expected one subnet per availability zone "
            "(EFS allows one mount target per zone)"
        )
    if problems:
        raise _Invalid("; ".join(problems))
    return tuple(placements)


def _source_client_sg(value: Any) -> Optional[str]:
    expectation = f"an existing security group id (sg- followed by 8 or 17 hex digits) or {CREATE_CLIENT_SECURITY_GROUP!r}"
    if value == CREATE_CLIENT_SECURITY_GROUP:
        return None
    if not isinstance(value, str) or not _SG_ID.match(value):
        raise _Invalid(f"{_describe(value)} is not a security group id or 'create'; expected {expectation}")
    return value


def _kms_key(value: Any) -> KmsKeyChoice:
    expectation = f"{KMS_AWS_MANAGED!r}, {KMS_CREATE!r} or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    if value == KMS_AWS_MANAGED:
        return KmsKeyChoice(KMS_AWS_MANAGED)
    if value == KMS_CREATE:
        return KmsKeyChoice(KMS_CREATE)
    if isinstance(value, str) and _KMS_KEY_ARN.match(value):
        return KmsKeyChoice("existing", value)
    raise _Invalid(f"{_describe(value)} is not a key choice; expected {expectation}")


def _instance_types(value: Any) -> Tuple[str, ...]:
    expectation = "a list of instance types such as m6a.large, comma-separated with -c, or none"
    if _is_none(value) or value == "":
        return ()
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid(f"{_describe(value)} is not a list; expected {expectation}")
    bad = [item for item in items if not isinstance(item, str) or not _INSTANCE_TYPE.match(item)]
    if bad:
        raise _Invalid(f"{', '.join(map(_describe, bad))} is not an instance type; expected {expectation}")
    if len(set(items)) != len(items):
        raise _Invalid(f"{_describe(value)} lists an instance type twice; expected each type once")
    return tuple(items)


def _ebs_kms_key(value: Any) -> Optional[str]:
    expectation = "'default' (the account's EBS default key) or a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    if value == "default":
        return None
    if isinstance(value, str) and _KMS_KEY_ARN.match(value):
        return value
    raise _Invalid(f"{_describe(value)} is not a key choice; expected {expectation}")


def _https_egress(value: Any) -> Tuple[str, ...]:
    expectation = "a list of IPv4 CIDR blocks and managed prefix list ids (pl-…), comma-separated with -c"
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid(f"{_describe(value)} is not a list; expected {expectation}")
    if not items or items == [""]:
        raise _Invalid(f"{_describe(value)} is empty; expected at least one destination ({expectation})")
    destinations = []
    problems = []
    for item in items:
        if isinstance(item, str) and _PREFIX_LIST_ID.match(item):
            destinations.append(item)
            continue
        try:
            destinations.append(_cidr(item))
        except _Invalid:
            problems.append(f"{_describe(item)} is neither a CIDR block nor a prefix list id")
    if problems:
        raise _Invalid("; ".join(problems) + f" (expected {expectation})")
    if len(set(destinations)) != len(destinations):
        raise _Invalid(f"{_describe(value)} lists a destination twice; expected each destination once")
    return tuple(destinations)


def _id_list(value: Any, expectation: str) -> List[Any]:
    """A list from cdk.json, or a comma-separated string from -c; ``none``/empty is the empty list."""
    if _is_none(value) or value == "":
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise _Invalid(f"{_describe(value)} is not a list; expected {expectation}")


def _vpc_endpoints(value: Any) -> Tuple[str, ...]:
    expectation = f"none, or a list of {', '.join(VPC_ENDPOINTS)} (comma-separated with -c)"
    items = _id_list(value, expectation)
    bad = [item for item in items if item not in VPC_ENDPOINTS]
    if bad:
        raise _Invalid(f"{', '.join(map(_describe, bad))} is not an endpoint this stack creates; expected {expectation}")
    if len(set(items)) != len(items):
        raise _Invalid(f"{_describe(value)} lists an endpoint twice; expected each endpoint once")
    return tuple(items)


def _id_list_of(pattern: "re.Pattern[str]", noun: str, form: str, plural: str) -> Callable[[Any], Tuple[str, ...]]:
    """A parser of a list of resource ids of one kind: each must match pattern, none twice."""
    expectation = f"none, or a list of {plural} ({form}; comma-separated with -c)"

    def parse(value: Any) -> Tuple[str, ...]:
        items = _id_list(value, expectation)
        bad = [item for item in items if not isinstance(item, str) or not pattern.match(item)]
        if bad:
            raise _Invalid(f"{', '.join(map(_describe, bad))} is not a {noun}; expected {expectation}")
        if len(set(items)) != len(items):
            raise _Invalid(f"{_describe(value)} lists a {noun.split(' id')[0]} twice; expected each "
                           f"{noun.split(' id')[0]} once")
        return tuple(items)

    return parse


_security_group_ids = _id_list_of(_SG_ID, "security group id", "sg- followed by 8 or 17 hex digits",
                                  "security group ids")


_AMI_ID = re.compile(rf"^ami-{_HEX_ID}$")
_SSM_PARAMETER = re.compile(r"^ssm:(/[A-Za-z0-9_.\-/]{1,1010})$")


def _worker_image(value: Any) -> Optional[WorkerImage]:
    if _is_none(value):
        return None
    expectation = ("none, an AMI id (ami- followed by 8 or 17 hex digits) or ssm:/<parameter name> holding one, "
                   "of an image with amazon-efs-utils, nfs-utils and rsync installed")
    text = _string(value, expectation)
    if _AMI_ID.match(text):
        return WorkerImage(ami_id=text)
    match = _SSM_PARAMETER.match(text)
    if match:
        return WorkerImage(ssm_parameter=match.group(1))
    raise _Invalid(f"{_describe(value)} is not a worker image; expected {expectation}")


_route_table_ids = _id_list_of(_ROUTE_TABLE_ID, "route table id", "rtb- followed by 8 or 17 hex digits",
                               "route table ids")


def _number_range(low: float, high: float) -> Callable[[Any], float]:
    expectation = f"a number from {low:g} to {high:g}"

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise _Invalid(f"{_describe(value)} is a boolean; expected {expectation}")
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and _NUMBER_STRING.match(value):
            number = float(value)
        else:
            raise _Invalid(f"{_describe(value)} is not a number; expected {expectation}")
        if not low <= number <= high:
            raise _Invalid(f"{_describe(value)} is out of range; expected {expectation}")
        return number

    return parse


def _retain(value: Any) -> int:
    return _integer(value, 0, MAX_RETAIN)


def _schedule(value: Any) -> Optional[str]:
    if _is_none(value):
        return None
    expectation = "none, cron(<6 fields>) or rate(<n> minutes|hours|days), as EventBridge Scheduler takes them"
    text = _string(value, expectation)
    if not _SCHEDULE.match(text):
        raise _Invalid(f"{_describe(value)} is not a schedule expression; expected {expectation}")
    return text


def _emails(value: Any) -> Tuple[str, ...]:
    expectation = "a list of e-mail addresses (comma-separated with -c), or an empty list"
    if isinstance(value, str):
        items: List[Any] = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _Invalid(f"{_describe(value)} is not a list; expected {expectation}")
    bad = [item for item in items if not isinstance(item, str) or not _EMAIL.match(item)]
    if bad:
        raise _Invalid(f"{', '.join(map(_describe, bad))} is not an e-mail address; expected {expectation}")
    return tuple(items)


def _spec(name, type_doc, default, default_doc, meaning, parse) -> KeySpec:
    return KeySpec(name, type_doc, default, default_doc, meaning, parse)


KEYS: Dict[str, KeySpec] = {
    spec.name: spec
    for spec in [
        _spec("account", "string (12 digits)", _MISSING, "required",
              "AWS account the stack deploys to (explicit, so synth needs no credentials).", _account),
        _spec("region", "string", _MISSING, "required", "AWS region of the production file system.",
              _pattern(_REGION, "an AWS region", "e.g. us-east-1")),
        _spec("stack_name", "string", lambda env: f"EfsBackup-{env}", "`EfsBackup-<env>`",
              "CloudFormation stack name.",
              _pattern(_STACK_NAME, "a stack name", "a letter, then letters, digits or hyphens, at most 128")),
        _spec("backup_id", "string", _MISSING, "required",
              "Name of the `<backup-id>` directory on the backup file system "
              "(`<backup-root>/<backup-id>/<interval>.<n>`); keep the old solution's id to adopt its tree.",
              _pattern(_BACKUP_ID, "a backup id",
                       "a letter or digit, then letters, digits, '.', '_' or '-', at most 64 characters")),
        _spec("vpc_id", "string", _MISSING, "required", "VPC of the production file system's mount targets.",
              _pattern(_VPC_ID, "a VPC id", "vpc- followed by 8 or 17 hex digits")),
        _spec("vpc_cidr", "string (CIDR)", _MISSING, "required",
              "The VPC's IPv4 CIDR block (imported, not looked up); the default HTTPS egress destination.", _cidr),
        _spec("subnets", "map subnet id → AZ", _MISSING, "required",
              "Private subnets for the backup mount targets and the workers, one per availability zone. "
              "With `-c`: `subnet-…:us-east-1a,subnet-…:us-east-1b`.", _subnets),
        _spec("source_file_system_id", "string", _MISSING, "required", "The production EFS to back up.",
              _pattern(_EFS_ID, "an EFS id", "fs- followed by 8 or 17 hex digits")),
        _spec("source_mount_target_security_group_id", "string", _MISSING, "required",
              "Security group of the production file system's mount targets.",
              _pattern(_SG_ID, "a security group id", "sg- followed by 8 or 17 hex digits")),
        _spec("source_client_security_group", "string", _MISSING, "required",
              "An existing client security group that the production mount targets already admit (attached to "
              "the workers, never modified), or `create`: a new client group plus an NFS ingress rule on the "
              "production mount-target group.", _source_client_sg),
        _spec("restore_target_file_systems", "map EFS id → security group id", None, "none",
              "File systems that restores may write to besides the production one (a restore's "
              "`target_file_system_id`), each with its mount targets' security group, which gains one NFS ingress "
              "rule from the backup-client group. With `-c`: `fs-…:sg-…,fs-…:sg-…`.", _restore_targets),
        _spec("backup_performance_mode", "string", "generalPurpose", "`generalPurpose`",
              "Backup file system performance mode: `generalPurpose` or `maxIO`.", _choice(PERFORMANCE_MODES)),
        _spec("backup_throughput_mode", "string", "elastic", "`elastic`",
              "Backup file system throughput mode: `elastic`, `bursting` or `provisioned`.",
              _choice(THROUGHPUT_MODES)),
        _spec("backup_provisioned_throughput_mibps", "integer or none", None, "none",
              "Provisioned throughput in MiB/s; required with `provisioned`, not allowed otherwise.",
              _optional_int(1, 10240)),
        _spec("backup_kms_key", "string", KMS_AWS_MANAGED, "`aws-managed`",
              "Encryption key of the backup file system: `aws-managed` (aws/elasticfilesystem), `create` (a "
              "customer managed key with rotation, retained on delete) or the ARN of an existing key in the region.",
              _kms_key),
        _spec("backup_transition_to_ia_days", "integer or none", 30, "30",
              "Days without access before files move to Infrequent Access: one of "
              + ", ".join(map(str, EFS_LIFECYCLE_DAYS)) + ", or none.", _lifecycle_days),
        _spec("backup_transition_to_archive_days", "integer or none", None, "none",
              "Days without access before files move to Archive (same choices; elastic throughput and "
              "generalPurpose only; must be later than the IA transition).", _lifecycle_days),
        _spec("backup_automatic_backups", "boolean", False, "false",
              "AWS Backup's automatic daily backups of the backup file system (a second copy, billed).", _boolean),
        _spec("worker_https_egress", "list of CIDR / pl-id", None, "`[vpc_cidr]`",
              "Where workers may open HTTPS (443): interface endpoints in the VPC, the S3 prefix list for a gateway "
              "endpoint, or `0.0.0.0/0` only when traffic leaves through a NAT. With `-c`: comma-separated.",
              _https_egress),
        _spec("vpc_endpoints", "list of strings or none", (), "none",
              "VPC endpoints to create for the workers in `subnets`: any of `" + "`, `".join(VPC_ENDPOINTS) + "` "
              "(see \"What the workers need from the network\"), or none when a NAT or existing endpoints serve "
              "them. Interface endpoints get private DNS and admit HTTPS only from the backup-client group. "
              "With `-c`: comma-separated.", _vpc_endpoints),
        _spec("existing_vpc_endpoints", "list of strings or none", (), "none",
              "Services whose VPC endpoints (with private DNS) already exist in the VPC, any of `"
              + "`, `".join(VPC_ENDPOINTS) + "`: the workers use them and the stack never creates a second one "
              "(a second private-DNS endpoint for a service fails the deploy). `s3` means an S3 *gateway* "
              "endpoint on the worker subnets' route tables. With `-c`: comma-separated.", _vpc_endpoints),
        _spec("vpc_endpoint_private_dns", "boolean", True, "true",
              "Private DNS on the interface endpoints this stack creates. `false` for a VPC that already has "
              "endpoints with private DNS for those services (a second one fails the deploy) and whose endpoints "
              "the workers must not use: the workers' AWS CLI then reaches the created `states` and `logs` endpoints "
              "through `AWS_ENDPOINT_URL_SFN` / `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` set in their user data, and the "
              "other interface services (which the SSM agent cannot be pointed at that way) are refused.",
              _boolean),
        _spec("existing_vpc_endpoint_security_groups", "list of strings or none", (), "none",
              "Security groups of those existing interface endpoints: each gains one HTTPS ingress rule from the "
              "backup-client group, which gains HTTPS egress to it. With `-c`: comma-separated.",
              _security_group_ids),
        _spec("route_table_ids", "list of strings or none", (), "none",
              "Route tables of the worker subnets, for the gateway endpoints (`s3`, `dynamodb`): required with "
              "them, not allowed without (imported subnets carry no route table). With `-c`: comma-separated.",
              _route_table_ids),
        _spec("script_noncurrent_version_expiration_days", "integer", 90, "90",
              "Days the script bucket keeps replaced versions of its objects (1–3650).", _int_range(1, 3650)),
        _spec("access_log_retention_days", "integer", 365, "365",
              "Days the log bucket keeps the script bucket's server access logs (1–3650).", _int_range(1, 3650)),
        *[
            _spec(f"retain_{interval}", "integer", default, str(default),
                  f"Number of `{interval}.<n>` snapshots kept (0 = interval unused, at most {MAX_RETAIN}).", _retain)
            for interval, default in zip(INTERVALS, (0, 7, 4, 12))
        ],
        *[
            _spec(f"schedule_{interval}", "string or none", default, f"`{default}`" if default else "none",
                  f"When `{interval}` runs start: an EventBridge Scheduler expression (`cron(...)` or `rate(...)`), "
                  f"or none (manual runs only). Ignored when `retain_{interval}` is 0 unless set explicitly (then an error).",
                  _schedule)
            for interval, default in zip(INTERVALS, (None, "cron(0 2 * * ? *)", "cron(0 4 ? * SUN *)",
                                                     "cron(0 6 1 * ? *)"))
        ],
        _spec("schedule_timezone", "string", "UTC", "`UTC`",
              "Time zone of the schedules (IANA name such as `Europe/Dublin`).",
              _pattern(_TIMEZONE, "a time zone", "UTC or an IANA name such as Europe/Dublin")),
        _spec("schedules_enabled", "boolean", True, "true",
              "Create the schedules enabled; `false` deploys them disabled (runs only when started by hand).",
              _boolean),
        _spec("worker_count", "integer", 1, "1",
              f"EC2 workers per run (1–{MAX_WORKERS}); a run's input may ask for another count.",
              _int_range(1, MAX_WORKERS)),
        _spec("worker_instance_type", "string", "m6i.large", "`m6i.large`",
              "Worker instance type; Graviton types (m7g, c7gn, …) get the arm64 image.",
              _pattern(_INSTANCE_TYPE, "an instance type", "e.g. m6i.large")),
        _spec("worker_fallback_instance_types", "list of strings or none", (), "none",
              "Instance types tried, in order, when EC2 has no capacity for `worker_instance_type` in any of the "
              "subnets (each type goes through every subnet first); same architecture as `worker_instance_type`, "
              "at most 4. With `-c`: comma-separated.", _instance_types),
        _spec("worker_ebs_kms_key", "string", "default", "`default`",
              "Key of the workers' encrypted root volumes: `default` (the account's EBS default key for the region; "
              "the launching role may use the account's own keys through EC2 only) or the ARN of a key (same region, "
              "any account; its key policy must let this account use it): the launch template names it and only it "
              "is granted.", _ebs_kms_key),
        _spec("worker_spot", "boolean", False, "false",
              "Launch workers as Spot instances (an interruption fails the run; the next run resumes).", _boolean),
        _spec("worker_heartbeat_timeout_seconds", "integer", 600, "600",
              f"A worker that sends no heartbeat for this long is considered lost and the run fails "
              f"({MIN_HEARTBEAT_TIMEOUT_SECONDS}–{MAX_HEARTBEAT_TIMEOUT_SECONDS}, and at most half of "
              "`worker_timeout_hours`: the first heartbeat comes only after boot, cloud-init and the script "
              "download, 45–90 s; workers beat every fifth of it).", _heartbeat_timeout),
        _spec("worker_stall_seconds", "integer", 300, "300",
              "A worker whose engine shows no progress for this long (it proves progress every "
              f"{ENGINE_PROGRESS_SECONDS} s by a round trip to each mounted file system; a hung `hard` NFS mount "
              "stops it) stops sending heartbeats, so the run fails after this plus "
              f"`worker_heartbeat_timeout_seconds` ({MIN_STALL_SECONDS}–{MAX_STALL_SECONDS}).",
              _int_range(MIN_STALL_SECONDS, MAX_STALL_SECONDS)),
        _spec("worker_image", "string or none", None, "none",
              "The workers' image: none = the latest Amazon Linux 2023 (AWS's public SSM parameter), which installs "
              "`amazon-efs-utils` and `rsync` with dnf at every boot (needs the AL2023 repositories: an S3 gateway "
              "endpoint or a NAT); or an image with them preinstalled, so workers need no package repository: "
              "`ami-…`, or `ssm:/<parameter>` (a parameter of this account holding the AMI id, resolved at each "
              "launch; the image must be owned by this account). See \"Worker images\".", _worker_image),
        _spec("worker_timeout_hours", "integer", 24, "24",
              "Longest a worker (or the finalize step) may run before the run fails (1–168).", _int_range(1, 168)),
        _spec("worker_root_volume_gib", "integer", 16, "16",
              "Size of the workers' encrypted gp3 root volume in GiB (8–1024).", _int_range(8, 1024)),
        _spec("notification_emails", "list of strings", (), "`[]`",
              "E-mail addresses subscribed to the run notifications and to the alarm topic (each subscription must be "
              "confirmed). With `-c`: comma-separated.",
              _emails),
        _spec("notify_on_success", "boolean", False, "false",
              "Also notify successful runs; failures always notify.", _boolean),
        _spec("dashboard", "boolean", False, "false",
              "Create the CloudWatch dashboard `<stack_name>`: runs, durations, bytes and files, newest-snapshot age "
              "per interval, both file systems' throughput and burst credits (see \"Monitoring\").", _boolean),
        _spec("alarm_stale_multiple", "number", 2, "2",
              "A scheduled interval alarms when its newest snapshot is older than this many interval lengths "
              "(hourly 1 h, daily 24 h, weekly 7 d, monthly 31 d); "
              f"{STALE_MULTIPLE_RANGE[0]:g}–{STALE_MULTIPLE_RANGE[1]:g}.", _number_range(*STALE_MULTIPLE_RANGE)),
        _spec("alarm_burst_credit_minimum_gib", "integer", 256, "256",
              "With `bursting` throughput: alarm when the backup file system's burst credit balance stays below "
              "this many GiB for 15 minutes (1–1048576).", _int_range(1, 1048576)),
        _spec("alarm_utilization_percent", "integer", 90, "90",
              "Alarm when the backup file system stays above this percentage for 15 minutes: `PercentIOLimit` "
              "(`generalPurpose`) and permitted-throughput utilization (`elastic`, `provisioned`) (50–99).",
              _int_range(50, 99)),
    ]
}


# ------------------------------------------------------------------------------------------------------ loading


def az_context_key(account: str, region: str) -> str:
    """The context key under which the CDK caches a region's availability zones (kept in cdk.json: no lookups)."""
    return f"availability-zones:account={account}:region={region}"


def _close_key(name: str) -> Optional[str]:
    candidate = name.replace("-", "_").lower()
    return candidate if candidate in KEYS else None


def _unknown_key_problem(name: str, origin: str) -> str:
    hint = _close_key(name)
    suggestion = f" (did you mean {hint!r}?)" if hint else ""
    return f"{name}: unknown key {origin}{suggestion}; expected one of the keys in the README's configuration reference"


def load_config(context: Mapping[str, Any]) -> EfsBackupConfig:
    """Parse the merged CDK context (cdk.json plus ``-c`` values) into a validated config or raise ConfigError."""
    environments = context.get(ENVIRONMENTS_CONTEXT_KEY)
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError([
            f"{ENVIRONMENTS_CONTEXT_KEY}: {environments!r} is not a mapping of environment names to settings; "
            "expected cdk.json context to hold at least one environment"
        ])
    available = ", ".join(sorted(environments))
    env_name = context.get(ENV_CONTEXT_KEY)
    if env_name is None:
        raise ConfigError([
            f"{ENV_CONTEXT_KEY}: no environment selected; pass -c env=<name> with one of: {available} (every cdk "
            "command synthesizes the app, bootstrap too: npx cdk bootstrap -c env=<name> bootstraps that "
            "environment's account and region)"
        ])
    if not isinstance(env_name, str) or env_name not in environments:
        raise ConfigError([f"{ENV_CONTEXT_KEY}: {env_name!r} is not a known environment; expected one of: {available}"])

    problems: List[str] = []
    if not _ENV_NAME.match(env_name):
        problems.append(
            f"{ENV_CONTEXT_KEY}: {env_name!r} is not a usable environment name "
            "(a letter, then letters, digits or hyphens, at most 32)"
        )
    settings = environments[env_name]
    if not isinstance(settings, Mapping):
        raise ConfigError(
            [f"{ENVIRONMENTS_CONTEXT_KEY}.{env_name}: {settings!r} is not a mapping; expected the environment's keys"],
            env_name,
        )

    raw: Dict[str, Any] = {}
    for name, value in settings.items():
        if name in KEYS:
            raw[name] = value
        else:
            problems.append(_unknown_key_problem(name, f"in cdk.json environment '{env_name}'"))
    for name, value in context.items():
        if name in RESERVED_CONTEXT_KEYS:
            continue
        if name in KEYS:
            raw[name] = value  # a -c key=value override (or a top-level cdk.json value) wins
        elif _CONFIG_KEY_SHAPE.match(name) or _close_key(name):
            problems.append(_unknown_key_problem(name, "given as context (-c)"))

    values: Dict[str, Any] = {}
    for name, spec in KEYS.items():
        if name not in raw:
            if spec.required:
                problems.append(f"{name}: missing; expected {spec.type_doc}: {spec.meaning}")
            else:
                default = spec.default(env_name) if callable(spec.default) else spec.default
                values[name] = None if default is None else spec.parse(default)
            continue
        try:
            values[name] = spec.parse(raw[name])
        except _Invalid as invalid:
            problems.append(f"{name}: {invalid}")

    problems.extend(_cross_checks(values, raw, context))
    if problems:
        raise ConfigError(problems, env_name)

    if values["worker_https_egress"] is None:  # default: interface endpoints inside the VPC
        values["worker_https_egress"] = (values["vpc_cidr"],)
    kms = values["backup_kms_key"]
    return EfsBackupConfig(
        environment=env_name,
        account=values["account"],
        region=values["region"],
        stack_name=values["stack_name"],
        backup_id=values["backup_id"],
        vpc_id=values["vpc_id"],
        vpc_cidr=values["vpc_cidr"],
        subnets=values["subnets"],
        source_file_system_id=values["source_file_system_id"],
        source_mount_target_security_group_id=values["source_mount_target_security_group_id"],
        source_client_security_group_id=values["source_client_security_group"],
        restore_targets=values["restore_target_file_systems"] or (),
        backup_file_system=BackupFileSystemSettings(
            performance_mode=values["backup_performance_mode"],
            throughput_mode=values["backup_throughput_mode"],
            provisioned_throughput_mibps=values["backup_provisioned_throughput_mibps"],
            kms_key=kms,
            transition_to_ia_days=values["backup_transition_to_ia_days"],
            transition_to_archive_days=values["backup_transition_to_archive_days"],
            automatic_backups=values["backup_automatic_backups"],
        ),
        worker_https_egress=values["worker_https_egress"],
        vpc_endpoints=VpcEndpointSettings(values["vpc_endpoints"], values["route_table_ids"],
                                          values["existing_vpc_endpoints"],
                                          values["existing_vpc_endpoint_security_groups"],
                                          values["vpc_endpoint_private_dns"]),
        script_noncurrent_version_expiration_days=values["script_noncurrent_version_expiration_days"],
        access_log_retention_days=values["access_log_retention_days"],
        retention=tuple(
            IntervalPolicy(i, values[f"retain_{i}"], values[f"schedule_{i}"] if values[f"retain_{i}"] else None)
            for i in INTERVALS
        ),
        workers=WorkerSettings(
            count=values["worker_count"],
            instance_type=values["worker_instance_type"],
            spot=values["worker_spot"],
            heartbeat_timeout_seconds=values["worker_heartbeat_timeout_seconds"],
            timeout_hours=values["worker_timeout_hours"],
            root_volume_gib=values["worker_root_volume_gib"],
            stall_seconds=values["worker_stall_seconds"],
            image=values["worker_image"],
            fallback_instance_types=values["worker_fallback_instance_types"],
            ebs_kms_key_arn=values["worker_ebs_kms_key"],
        ),
        notifications=NotificationSettings(values["notification_emails"], values["notify_on_success"]),
        schedule_timezone=values["schedule_timezone"],
        schedules_enabled=values["schedules_enabled"],
        monitoring=MonitoringSettings(
            dashboard=values["dashboard"],
            stale_multiple=values["alarm_stale_multiple"],
            burst_credit_minimum_gib=values["alarm_burst_credit_minimum_gib"],
            utilization_percent=values["alarm_utilization_percent"],
        ),
    )


def _cross_checks(values: Mapping[str, Any], raw: Mapping[str, Any], context: Mapping[str, Any]) -> List[str]:
    """Rules between keys; each runs only when the keys it needs parsed cleanly."""
    problems: List[str] = []

    def ok(*names: str) -> bool:
        return all(name in values for name in names)

    if ok("account", "region", "subnets"):
        key = az_context_key(values["account"], values["region"])
        zones = context.get(key)
        if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
            problems.append(
                f"{key}: {zones!r} is not a list of availability zones; expected the region's zone names in "
                "cdk.json context, so synth needs no AWS lookup"
            )
        else:
            for placement in values["subnets"]:
                if placement.availability_zone not in zones:
                    problems.append(
                        f"subnets: subnet {placement.subnet_id!r} is placed in {placement.availability_zone!r}, "
                        f"which is not a zone of {values['region']}; expected one of {', '.join(zones)}"
                    )
    elif ok("region", "subnets"):
        for placement in values["subnets"]:
            suffix = placement.availability_zone[len(values["region"]):]
            if not placement.availability_zone.startswith(values["region"]) or not _AZ_SUFFIX.match(suffix):
                problems.append(
                    f"subnets: subnet {placement.subnet_id!r} is placed in {placement.availability_zone!r}; "
                    f"expected a zone of {values['region']}"
                )

    if ok("backup_performance_mode", "backup_throughput_mode"):
        if values["backup_performance_mode"] == "maxIO" and values["backup_throughput_mode"] == "elastic":
            problems.append(
                "backup_throughput_mode: 'elastic' cannot be combined with backup_performance_mode 'maxIO'; "
                "expected generalPurpose with elastic, or bursting/provisioned with maxIO"
            )
    if ok("backup_throughput_mode", "backup_provisioned_throughput_mibps"):
        provisioned = values["backup_throughput_mode"] == "provisioned"
        mibps = values["backup_provisioned_throughput_mibps"]
        if provisioned and mibps is None:
            problems.append(
                "backup_provisioned_throughput_mibps: missing; expected a whole number of MiB/s (1 to 10240) "
                "because backup_throughput_mode is 'provisioned'"
            )
        if not provisioned and mibps is not None:
            problems.append(
                f"backup_provisioned_throughput_mibps: {raw['backup_provisioned_throughput_mibps']!r} is set but "
                f"backup_throughput_mode is {values['backup_throughput_mode']!r}; expected none unless 'provisioned'"
            )
    if ok("backup_transition_to_archive_days", "backup_transition_to_ia_days", "backup_throughput_mode",
          "backup_performance_mode"):
        archive = values["backup_transition_to_archive_days"]
        ia = values["backup_transition_to_ia_days"]
        if archive is not None:
            if values["backup_throughput_mode"] != "elastic" or values["backup_performance_mode"] != "generalPurpose":
                problems.append(
                    f"backup_transition_to_archive_days: {archive!r} needs backup_throughput_mode 'elastic' and "
                    "backup_performance_mode 'generalPurpose' (EFS Archive is only available there); expected none"
                )
            if ia is not None and archive <= ia:
                problems.append(
                    f"backup_transition_to_archive_days: {archive!r} is not later than "
                    f"backup_transition_to_ia_days {ia!r}; expected more days than the IA transition, or none"
                )
    if ok("backup_kms_key", "region"):
        kms = values["backup_kms_key"]
        if kms.key_arn:
            key_region = _KMS_KEY_ARN.match(kms.key_arn).group("region")
            if key_region != values["region"]:
                problems.append(
                    f"backup_kms_key: {kms.key_arn!r} is in {key_region}; expected a key in {values['region']} "
                    "(EFS needs a key in its own region)"
                )
    if ok("worker_fallback_instance_types", "worker_instance_type"):
        primary = values["worker_instance_type"]
        fallback = values["worker_fallback_instance_types"]
        arch = instance_architecture(primary)
        other = [t for t in fallback if instance_architecture(t) != arch]
        if primary in fallback:
            problems.append(f"worker_fallback_instance_types: lists worker_instance_type {primary!r}; expected only "
                            "other types (the primary type is always tried first)")
        if other:
            problems.append(f"worker_fallback_instance_types: {', '.join(map(repr, other))} not {arch} like "
                            f"worker_instance_type {primary!r}; expected types of the same architecture (the "
                            "launch template's image is resolved for one architecture)")
        if len(fallback) > MAX_FALLBACK_INSTANCE_TYPES:
            problems.append(f"worker_fallback_instance_types: {len(fallback)} types; expected at most "
                            f"{MAX_FALLBACK_INSTANCE_TYPES} (each is tried in every subnet)")
    if ok("worker_ebs_kms_key", "region") and values["worker_ebs_kms_key"]:
        key_region = _KMS_KEY_ARN.match(values["worker_ebs_kms_key"]).group("region")
        if key_region != values["region"]:
            problems.append(f"worker_ebs_kms_key: {values['worker_ebs_kms_key']!r} is in {key_region}; expected a "
                            f"key in {values['region']} (EBS encrypts with a key of the volume's region)")
    if ok("restore_target_file_systems", "source_file_system_id"):
        if values["source_file_system_id"] in [t.file_system_id for t in values["restore_target_file_systems"] or ()]:
            problems.append(
                f"restore_target_file_systems: names the production file system {values['source_file_system_id']!r}"
                "; expected only other file systems (restores may always write to production)"
            )
    if ok("source_client_security_group", "source_mount_target_security_group_id"):
        if values["source_client_security_group"] == values["source_mount_target_security_group_id"]:
            problems.append(
                f"source_client_security_group: {values['source_client_security_group']!r} is the mount-target "
                "group itself; expected the client group that the mount targets admit, or 'create'"
            )
    for interval in INTERVALS:
        if ok(f"retain_{interval}", f"schedule_{interval}"):
            explicit = f"schedule_{interval}" in raw  # a default schedule of an unused interval is just dropped
            if explicit and values[f"schedule_{interval}"] is not None and values[f"retain_{interval}"] == 0:
                problems.append(
                    f"schedule_{interval}: {values[f'schedule_{interval}']!r} would start {interval} runs but "
                    f"retain_{interval} is 0; expected none, or retain_{interval} >= 1"
                )
    if ok("vpc_endpoints", "route_table_ids"):
        gateways = [s for s in values["vpc_endpoints"] if s in GATEWAY_ENDPOINTS]
        if gateways and not values["route_table_ids"]:
            problems.append(
                f"route_table_ids: missing; expected the route tables of the worker subnets because vpc_endpoints "
                f"asks for the gateway endpoint{'s' if len(gateways) > 1 else ''} {', '.join(gateways)} "
                "(imported subnets carry no route table)"
            )
        if values["route_table_ids"] and not gateways:
            problems.append(
                f"route_table_ids: {raw['route_table_ids']!r} is set but vpc_endpoints asks for no gateway "
                "endpoint (s3, dynamodb); expected none"
            )
    if ok("vpc_endpoints", "vpc_endpoint_private_dns") and not values["vpc_endpoint_private_dns"]:
        interfaces = [s for s in values["vpc_endpoints"] if s in INTERFACE_ENDPOINTS]
        unsupported = [s for s in interfaces if s not in ENDPOINT_URL_VARIABLES]
        if not interfaces:
            problems.append(
                "vpc_endpoint_private_dns: false but vpc_endpoints creates no interface endpoint; expected true, "
                f"or some of {', '.join(ENDPOINT_URL_VARIABLES)} in vpc_endpoints"
            )
        if unsupported:
            problems.append(
                f"vpc_endpoint_private_dns: false cannot serve {', '.join(unsupported)} (only the workers' AWS CLI "
                f"can be pointed at an endpoint, for {', '.join(ENDPOINT_URL_VARIABLES)}; the SSM agent follows "
                "private DNS); expected those services left out of vpc_endpoints, or private DNS on"
            )
    if ok("vpc_endpoints", "existing_vpc_endpoints", "vpc_endpoint_private_dns") and values["vpc_endpoint_private_dns"]:
        both = [s for s in values["vpc_endpoints"] if s in values["existing_vpc_endpoints"]]
        if both:
            problems.append(
                f"vpc_endpoints: {', '.join(both)} already exist in the VPC (existing_vpc_endpoints); expected each "
                "service in one list only (a second endpoint with private DNS for a service fails the deploy: "
                "its private hosted zone conflicts with the existing one)"
            )
    if ok("vpc_endpoints", "worker_https_egress"):
        egress = values["worker_https_egress"]
        reaches_s3 = egress is not None and any(d.startswith("pl-") or d == "0.0.0.0/0" for d in egress)
        if "s3" in values["vpc_endpoints"] and not reaches_s3:
            given = repr(raw["worker_https_egress"]) if "worker_https_egress" in raw else "the default (vpc_cidr)"
            problems.append(
                f"worker_https_egress: {given} does not reach the S3 "
                "gateway endpoint that vpc_endpoints asks for; expected the region's S3 prefix list id (pl-…, from "
                "aws ec2 describe-managed-prefix-lists --filters Name=prefix-list-name,"
                "Values=com.amazonaws.<region>.s3) among the destinations"
            )
    if ok("worker_heartbeat_timeout_seconds", "worker_timeout_hours"):
        heartbeat, hours = values["worker_heartbeat_timeout_seconds"], values["worker_timeout_hours"]
        if heartbeat * 2 > hours * 3600:
            problems.append(
                f"worker_heartbeat_timeout_seconds: {heartbeat} is more than half of worker_timeout_hours "
                f"({hours} h = {hours * 3600} s); expected at most {hours * 1800} (Step Functions needs the heartbeat "
                "timeout below the task timeout, and a lost worker must be noticed by its heartbeat first)"
            )
    problems.extend(_worker_network_problems(values, raw))
    retain_names = [f"retain_{i}" for i in INTERVALS]
    if ok(*retain_names):
        policies = [IntervalPolicy(i, values[f"retain_{i}"]) for i in INTERVALS]
        total = sum(p.linked_trees for p in policies)
        if not any(p.enabled for p in policies):
            problems.append(
                "retain_hourly/retain_daily/retain_weekly/retain_monthly: all are 0; "
                "expected at least one interval with retain >= 1"
            )
        elif total > MAX_LINKED_TREES:
            detail = " + ".join(f"({p.retain}+1)" for p in policies if p.enabled)
            problems.append(
                f"retain_hourly/retain_daily/retain_weekly/retain_monthly: {detail} = {total} snapshot trees would "
                f"share each unchanged file; expected at most {MAX_LINKED_TREES} (EFS allows "
                f"{EFS_HARD_LINK_LIMIT} hard links per file)"
            )
    return problems


# What a worker must reach over HTTPS to bootstrap and report (README "What the workers need from the network").
# S3: the script bucket, and the Amazon Linux 2023 repositories dnf installs amazon-efs-utils and rsync from, which
# are S3 buckets under dual-stack names (al2023-repos-<region>-<id>.s3.dualstack.<region>.amazonaws.com): an S3
# *interface* endpoint does not serve those names, an S3 gateway endpoint or a NAT does
# (https://repost.aws/knowledge-center/ec2-al1-al2-update-yum-without-internet).
WORKER_NEEDS = {"s3": "the engine scripts and the Amazon Linux package repositories",
                "states": "reporting task results and heartbeats to Step Functions",
                "logs": "shipping the worker log to CloudWatch Logs"}


def _worker_network_problems(values: Mapping[str, Any], raw: Mapping[str, Any]) -> List[str]:
    """Refuse a network in which a worker cannot bootstrap or report: each service in WORKER_NEEDS must be reachable
    through a NAT (0.0.0.0/0 in worker_https_egress), an endpoint this stack creates, or one the VPC already has."""
    needed = ("worker_https_egress", "vpc_endpoints", "existing_vpc_endpoints", "existing_vpc_endpoint_security_groups",
              "vpc_cidr", "worker_image")
    if not all(name in values for name in needed):
        return []
    egress = values["worker_https_egress"] or (values["vpc_cidr"],)
    nat = "0.0.0.0/0" in egress
    prefix_list = any(d.startswith("pl-") for d in egress)
    inside_vpc = values["vpc_cidr"] in egress or bool(values["existing_vpc_endpoint_security_groups"])
    created, existing = values["vpc_endpoints"], values["existing_vpc_endpoints"]
    problems = []
    for service, why in WORKER_NEEDS.items():
        if nat or service in created:
            continue  # the created S3 gateway's prefix-list rule is checked above
        # Without dnf (worker_image), S3 serves only the script bucket: an existing S3 interface endpoint will do.
        dnf = values["worker_image"] is None
        if service != "s3":
            reached = inside_vpc
        else:
            reached = prefix_list if dnf else prefix_list or inside_vpc
        if service in existing and reached:
            continue
        if service == "s3" and not dnf:
            how = ("'s3' in vpc_endpoints or existing_vpc_endpoints (the script bucket; with worker_image no package "
                   "repository is needed)")
        elif service == "s3":
            how = ("'s3' in vpc_endpoints (a gateway endpoint, with route_table_ids) or in existing_vpc_endpoints "
                   "(an existing S3 gateway endpoint), either way with the region's S3 prefix list (pl-…) in "
                   "worker_https_egress; an S3 interface endpoint cannot serve dnf's dual-stack repository names; "
                   "or worker_image with the packages preinstalled")
        else:
            how = (f"'{service}' in vpc_endpoints, or in existing_vpc_endpoints with worker_https_egress reaching the "
                   "VPC CIDR (or existing_vpc_endpoint_security_groups)")
        problems.append(
            f"worker network: workers in private subnets cannot reach {service} ({why}) with worker_https_egress "
            f"{list(egress)!r}, vpc_endpoints {list(created)!r} and existing_vpc_endpoints {list(existing)!r}; "
            f"expected {how}, or 0.0.0.0/0 in worker_https_egress for a NAT gateway"
        )
    return problems


def config_from_node_context(node: Any) -> EfsBackupConfig:
    """Read every context value visible at a construct node (the App) and parse it."""
    return load_config(dict(node.get_all_context()))
