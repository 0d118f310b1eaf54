"""The efs-backup settings: typed, frozen values, the limits they obey, and the one error a bad configuration raises.

A leaf: this module imports the standard library and the contract (efs_backup_contract) only, never aws_cdk, stacks/
or constructs/. Constructs import the settings they need from here; only app.py builds them (settings.load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from efs_backup_contract.intervals import INTERVAL_SECONDS

# Instance types tried after worker_instance_type when EC2 has no capacity (each is tried in every subnet).
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
        """Snapshot trees that share an unchanged file's inode for this interval (see efs_backup_contract.limits.MAX_LINKED_TREES)."""
        return self.retain + 1 if self.enabled else 0


GRAVITON_FAMILY = re.compile(r"^[a-z]+[0-9]+[a-z]*g[a-z]*$")


def instance_architecture(instance_type: str) -> str:
    """arm64 for Graviton families (a 'g' after the generation digit: m7g, c6gn, t4g), else x86_64."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if GRAVITON_FAMILY.fullmatch(family) else "x86_64"


@dataclass(frozen=True)
class WorkerImage:
    """A worker image with amazon-efs-utils, nfs-utils and rsync preinstalled (``worker_image``): workers then need
    no package repository at run time. Exactly one of ami_id and ssm_parameter is set."""

    ami_id: Optional[str] = None
    ssm_parameter: Optional[str] = None  # a parameter of this account holding the AMI id, resolved at each launch


# worker_streams' default: engine streams per worker instance (efs_backup_contract.limits.MAX_STREAMS_PER_WORKER
# at most). The one place it is set; the README's benchmark section says how it was chosen.
DEFAULT_WORKER_STREAMS = 4


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
    streams: int = DEFAULT_WORKER_STREAMS  # engine streams per instance (worker_streams)

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


# A scheduled interval's newest snapshot is stale after a multiple of its nominal length (the contract's
# INTERVAL_SECONDS).
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
