"""The only reader of CDK context: ``load_config(context)`` turns the merged context into one frozen, validated
``EfsBackupConfig`` or raises ``ConfigError`` with every problem at once.

``cdk.json`` holds named environments under the context key ``environments``; ``-c env=<name>`` selects one, and any
configuration key can be overridden for a single run with ``-c key=value`` (such values always arrive as strings, so
integers and booleans are coerced from strings strictly). Each message names the key, the bad value and what is
expected. Stacks and constructs receive the typed values and never read context.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

from efs_backup_contract.intervals import INTERVALS
from settings.checks import cross_checks
from settings.keys import KEYS
from settings.model import (
    BackupFileSystemSettings,
    ConfigError,
    EfsBackupConfig,
    IntervalPolicy,
    MonitoringSettings,
    NotificationSettings,
    VpcEndpointSettings,
    WorkerSettings,
)
from settings.parsers import Invalid

# Context keys that are not configuration keys.
ENV_CONTEXT_KEY = "env"
ENVIRONMENTS_CONTEXT_KEY = "environments"
RESERVED_CONTEXT_KEYS = frozenset({ENV_CONTEXT_KEY, ENVIRONMENTS_CONTEXT_KEY})

ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
# Context keys in the shape of configuration keys; anything else (feature flags, lookup caches, CLI settings such
# as "cli-telemetry") belongs to the CDK and is ignored here.
CONFIG_KEY_SHAPE = re.compile(r"^[a-z][a-z0-9_]*$")


def _close_key(name: str) -> Optional[str]:
    candidate = name.replace("-", "_").lower()
    return candidate if candidate in KEYS else None


def _unknown_key_problem(name: str, origin: str) -> str:
    hint = _close_key(name)
    suggestion = f" (did you mean {hint!r}?)" if hint else ""
    return f"{name}: unknown key {origin}{suggestion}; expected one of the keys in docs/configuration.md"


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
    if not ENV_NAME.fullmatch(env_name):
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
        elif CONFIG_KEY_SHAPE.fullmatch(name) or _close_key(name):
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
        except Invalid as invalid:
            problems.append(f"{name}: {invalid}")

    problems.extend(cross_checks(values, raw, context))
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
            streams=values["worker_streams"],
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
