"""The key catalogue: every configuration key with its type, default, meaning and parser, in documentation order.

``KEYS`` is the single source of the keys the loader accepts and of the configuration reference
(docs/configuration.md is generated from it by tools/gen_config_docs.py; tests/docs checks it is current).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict

from efs_backup_contract.deployment import DEFAULT_STACK_NAME
from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import MAX_RETAIN, MAX_STREAMS_PER_WORKER, MAX_WORKERS
from settings import identifiers, network, runs, storage, workers
from settings.model import (
    EFS_LIFECYCLE_DAYS,
    DEFAULT_WORKER_STREAMS,
    ENGINE_PROGRESS_SECONDS,
    KMS_AWS_MANAGED,
    MAX_HEARTBEAT_TIMEOUT_SECONDS,
    MAX_STALL_SECONDS,
    MIN_HEARTBEAT_TIMEOUT_SECONDS,
    MIN_STALL_SECONDS,
    PERFORMANCE_MODES,
    STALE_MULTIPLE_RANGE,
    THROUGHPUT_MODES,
    VPC_ENDPOINTS,
)
from settings.parsers import boolean, choice, int_range, number_range, optional_int, pattern

MISSING = object()


@dataclass(frozen=True)
class KeySpec:
    name: str
    type_doc: str
    default: Any  # MISSING when required; a callable of the environment name for derived defaults
    default_doc: str
    meaning: str
    parse: Callable[[Any], Any]

    @property
    def required(self) -> bool:
        return self.default is MISSING


def _spec(name, type_doc, default, default_doc, meaning, parse) -> KeySpec:
    return KeySpec(name, type_doc, default, default_doc, meaning, parse)


KEYS: Dict[str, KeySpec] = {
    spec.name: spec
    for spec in [
        _spec("account", "string (12 digits)", MISSING, "required",
              "AWS account the stack deploys to (explicit, so synth needs no credentials).", identifiers.account),
        _spec("region", "string", MISSING, "required", "AWS region of the production file system.",
              identifiers.region),
        _spec("stack_name", "string", lambda env: DEFAULT_STACK_NAME.format(environment=env), "`EfsBackup-<env>`",
              "CloudFormation stack name.",
              identifiers.stack_name),
        _spec("backup_id", "string", MISSING, "required",
              "Name of the `<backup-id>` directory on the backup file system "
              "(`<backup-root>/<backup-id>/<interval>.<n>`); keep the old solution's id to adopt its tree.",
              identifiers.backup_id),
        _spec("vpc_id", "string", MISSING, "required", "VPC of the production file system's mount targets.",
              pattern(identifiers.VPC_ID, "a VPC id", "vpc- followed by 8 or 17 hex digits")),
        _spec("vpc_cidr", "string (CIDR)", MISSING, "required",
              "The VPC's IPv4 CIDR block (imported, not looked up); the default HTTPS egress destination.",
              network.cidr),
        _spec("subnets", "map subnet id → AZ", MISSING, "required",
              "Private subnets for the backup mount targets and the workers, one per availability zone. "
              "With `-c`: `subnet-…:us-east-1a,subnet-…:us-east-1b`.", network.subnets),
        _spec("source_file_system_id", "string", MISSING, "required", "The production EFS to back up.",
              pattern(identifiers.EFS_ID, "an EFS id", "fs- followed by 8 or 17 hex digits")),
        _spec("source_mount_target_security_group_id", "string", MISSING, "required",
              "Security group of the production file system's mount targets.",
              pattern(identifiers.SG_ID, "a security group id", "sg- followed by 8 or 17 hex digits")),
        _spec("source_client_security_group", "string", MISSING, "required",
              "An existing client security group that the production mount targets already admit (attached to "
              "the workers, never modified), or `create`: a new client group plus an NFS ingress rule on the "
              "production mount-target group.", network.source_client_security_group),
        _spec("restore_target_file_systems", "map EFS id → security group id", None, "none",
              "File systems that restores may write to besides the production one (a restore's "
              "`target_file_system_id`), each with its mount targets' security group, which gains one NFS ingress "
              "rule from the backup-client group. With `-c`: `fs-…:sg-…,fs-…:sg-…`.", network.restore_targets),
        _spec("backup_performance_mode", "string", "generalPurpose", "`generalPurpose`",
              "Backup file system performance mode: `generalPurpose` or `maxIO`.", choice(PERFORMANCE_MODES)),
        _spec("backup_throughput_mode", "string", "elastic", "`elastic`",
              "Backup file system throughput mode: `elastic`, `bursting` or `provisioned`.",
              choice(THROUGHPUT_MODES)),
        _spec("backup_provisioned_throughput_mibps", "integer or none", None, "none",
              "Provisioned throughput in MiB/s; required with `provisioned`, not allowed otherwise.",
              optional_int(1, 10240)),
        _spec("backup_kms_key", "string", KMS_AWS_MANAGED, "`aws-managed`",
              "Encryption key of the backup file system: `aws-managed` (aws/elasticfilesystem), `create` (a "
              "customer managed key with rotation, retained on delete) or the ARN of an existing key in the region.",
              storage.kms_key),
        _spec("backup_transition_to_ia_days", "integer or none", 30, "30",
              "Days without access before files move to Infrequent Access: one of "
              + ", ".join(map(str, EFS_LIFECYCLE_DAYS)) + ", or none.", storage.lifecycle_days),
        _spec("backup_transition_to_archive_days", "integer or none", None, "none",
              "Days without access before files move to Archive (same choices; elastic throughput and "
              "generalPurpose only; must be later than the IA transition).", storage.lifecycle_days),
        _spec("backup_automatic_backups", "boolean", False, "false",
              "AWS Backup's automatic daily backups of the backup file system (a second copy, billed).", boolean),
        _spec("worker_https_egress", "list of CIDR / pl-id", None, "`[vpc_cidr]`",
              "Where workers may open HTTPS (443): interface endpoints in the VPC, the S3 prefix list for a gateway "
              "endpoint, or `0.0.0.0/0` only when traffic leaves through a NAT. With `-c`: comma-separated.",
              network.https_egress),
        _spec("vpc_endpoints", "list of strings or none", (), "none",
              "VPC endpoints to create for the workers in `subnets`: any of `" + "`, `".join(VPC_ENDPOINTS) + "` "
              "(see \"What the workers need from the network\"), or none when a NAT or existing endpoints serve "
              "them. Interface endpoints get private DNS and admit HTTPS only from the backup-client group. "
              "With `-c`: comma-separated.", network.vpc_endpoints),
        _spec("existing_vpc_endpoints", "list of strings or none", (), "none",
              "Services whose VPC endpoints (with private DNS) already exist in the VPC, any of `"
              + "`, `".join(VPC_ENDPOINTS) + "`: the workers use them and the stack never creates a second one "
              "(a second private-DNS endpoint for a service fails the deploy). `s3` means an S3 *gateway* "
              "endpoint on the worker subnets' route tables. With `-c`: comma-separated.", network.vpc_endpoints),
        _spec("vpc_endpoint_private_dns", "boolean", True, "true",
              "Private DNS on the interface endpoints this stack creates. `false` for a VPC that already has "
              "endpoints with private DNS for those services (a second one fails the deploy) and whose endpoints "
              "the workers must not use: the workers' AWS CLI then reaches the created `states` and `logs` endpoints "
              "through `AWS_ENDPOINT_URL_SFN` / `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` set in their user data, and the "
              "other interface services (which the SSM agent cannot be pointed at that way) are refused.",
              boolean),
        _spec("existing_vpc_endpoint_security_groups", "list of strings or none", (), "none",
              "Security groups of those existing interface endpoints: each gains one HTTPS ingress rule from the "
              "backup-client group, which gains HTTPS egress to it. With `-c`: comma-separated.",
              network.security_group_ids),
        _spec("route_table_ids", "list of strings or none", (), "none",
              "Route tables of the worker subnets, for the gateway endpoints (`s3`, `dynamodb`): required with "
              "them, not allowed without (imported subnets carry no route table). With `-c`: comma-separated.",
              network.route_table_ids),
        _spec("script_noncurrent_version_expiration_days", "integer", 90, "90",
              "Days the script bucket keeps replaced versions of its objects (1–3650).", int_range(1, 3650)),
        _spec("access_log_retention_days", "integer", 365, "365",
              "Days the log bucket keeps the script bucket's server access logs (1–3650).", int_range(1, 3650)),
        *[
            _spec(f"retain_{interval}", "integer", default, str(default),
                  f"Number of `{interval}.<n>` snapshots kept (0 = interval unused, at most {MAX_RETAIN}).",
                  runs.retain)
            for interval, default in zip(INTERVALS, (0, 7, 4, 12))
        ],
        *[
            _spec(f"schedule_{interval}", "string or none", default, f"`{default}`" if default else "none",
                  f"When `{interval}` runs start: an EventBridge Scheduler expression (`cron(...)` or `rate(...)`), "
                  f"or none (manual runs only). Ignored when `retain_{interval}` is 0 unless set explicitly (then an error).",
                  runs.schedule)
            for interval, default in zip(INTERVALS, (None, "cron(0 2 * * ? *)", "cron(0 4 ? * SUN *)",
                                                     "cron(0 6 1 * ? *)"))
        ],
        _spec("schedule_timezone", "string", "UTC", "`UTC`",
              "Time zone of the schedules (IANA name such as `Europe/Dublin`).",
              pattern(runs.TIMEZONE, "a time zone", "UTC or an IANA name such as Europe/Dublin")),
        _spec("schedules_enabled", "boolean", True, "true",
              "Create the schedules enabled; `false` deploys them disabled (runs only when started by hand).",
              boolean),
        _spec("worker_count", "integer", 1, "1",
              f"EC2 workers per run (1–{MAX_WORKERS}); a run's input may ask for another count.",
              int_range(1, MAX_WORKERS)),
        _spec("worker_streams", "integer", DEFAULT_WORKER_STREAMS, str(DEFAULT_WORKER_STREAMS),
              f"Engine streams each worker runs (1–{MAX_STREAMS_PER_WORKER}): a run has worker_count × worker_streams "
              "streams in all. Streams overlap EFS's per-operation latency on one instance; they share its CPU and "
              "network bandwidth. A run's or restore's input may ask for another number (`streams`).",
              int_range(1, MAX_STREAMS_PER_WORKER)),
        _spec("worker_instance_type", "string", "m6i.large", "`m6i.large`",
              "Worker instance type; Graviton types (m7g, c7gn, …) get the arm64 image.",
              pattern(identifiers.INSTANCE_TYPE, "an instance type", "e.g. m6i.large")),
        _spec("worker_fallback_instance_types", "list of strings or none", (), "none",
              "Instance types tried, in order, when EC2 has no capacity for `worker_instance_type` in any of the "
              "subnets (each type goes through every subnet first); same architecture as `worker_instance_type`, "
              "at most 4. With `-c`: comma-separated.", workers.instance_types),
        _spec("worker_ebs_kms_key", "string", "default", "`default`",
              "Key of the workers' encrypted root volumes: `default` (the account's EBS default key for the region; "
              "the launching role may use the account's own keys through EC2 only) or the ARN of a key (same region, "
              "any account; its key policy must let this account use it): the launch template names it and only it "
              "is granted.", workers.ebs_kms_key),
        _spec("worker_spot", "boolean", False, "false",
              "Launch workers as Spot instances (an interruption fails the run; the next run resumes).", boolean),
        _spec("worker_heartbeat_timeout_seconds", "integer", 600, "600",
              f"A worker that sends no heartbeat for this long is considered lost and the run fails "
              f"({MIN_HEARTBEAT_TIMEOUT_SECONDS}–{MAX_HEARTBEAT_TIMEOUT_SECONDS}, and at most half of "
              "`worker_timeout_hours`: the first heartbeat comes only after boot, cloud-init and the script "
              "download, 45–90 s; workers beat every fifth of it).", workers.heartbeat_timeout),
        _spec("worker_stall_seconds", "integer", 300, "300",
              "A worker whose engine shows no progress for this long (it proves progress every "
              f"{ENGINE_PROGRESS_SECONDS} s by a round trip to each mounted file system; a hung `hard` NFS mount "
              "stops it) stops sending heartbeats, so the run fails after this plus "
              f"`worker_heartbeat_timeout_seconds` ({MIN_STALL_SECONDS}–{MAX_STALL_SECONDS}).",
              int_range(MIN_STALL_SECONDS, MAX_STALL_SECONDS)),
        _spec("worker_image", "string or none", None, "none",
              "The workers' image: none = the latest Amazon Linux 2023 (AWS's public SSM parameter), which installs "
              "`amazon-efs-utils` and `rsync` with dnf at every boot (needs the AL2023 repositories: an S3 gateway "
              "endpoint or a NAT); or an image with them preinstalled, so workers need no package repository: "
              "`ami-…`, or `ssm:/<parameter>` (a parameter of this account holding the AMI id, resolved at each "
              "launch; the image must be owned by this account). See \"Worker images\".", workers.worker_image),
        _spec("worker_timeout_hours", "integer", 24, "24",
              "Longest a worker (or the finalize step) may run before the run fails (1–168).", int_range(1, 168)),
        _spec("worker_root_volume_gib", "integer", 16, "16",
              "Size of the workers' encrypted gp3 root volume in GiB (8–1024).", int_range(8, 1024)),
        _spec("notification_emails", "list of strings", (), "`[]`",
              "E-mail addresses subscribed to the run notifications and to the alarm topic (each subscription must be "
              "confirmed). With `-c`: comma-separated.",
              runs.emails),
        _spec("notify_on_success", "boolean", False, "false",
              "Also notify successful runs; failures always notify.", boolean),
        _spec("dashboard", "boolean", False, "false",
              "Create the CloudWatch dashboard `<stack_name>`: runs, durations, bytes and files, newest-snapshot age "
              "per interval, both file systems' throughput and burst credits (see \"Monitoring\").", boolean),
        _spec("alarm_stale_multiple", "number", 2, "2",
              "A scheduled interval alarms when its newest snapshot is older than this many interval lengths "
              "(hourly 1 h, daily 24 h, weekly 7 d, monthly 31 d); "
              f"{STALE_MULTIPLE_RANGE[0]:g}–{STALE_MULTIPLE_RANGE[1]:g}.", number_range(*STALE_MULTIPLE_RANGE)),
        _spec("alarm_burst_credit_minimum_gib", "integer", 256, "256",
              "With `bursting` throughput: alarm when the backup file system's burst credit balance stays below "
              "this many GiB for 15 minutes (1–1048576).", int_range(1, 1048576)),
        _spec("alarm_utilization_percent", "integer", 90, "90",
              "Alarm when the backup file system stays above this percentage for 15 minutes: `PercentIOLimit` "
              "(`generalPurpose`) and permitted-throughput utilization (`elastic`, `provisioned`) (50–99).",
              int_range(50, 99)),
    ]
}
