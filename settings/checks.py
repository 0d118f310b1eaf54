"""The cross-checks: rules between keys, run on the values that parsed cleanly (each rule only when every key it
needs did). Each returns problems in the form ``<key>: <value> ...; expected ...``; the loader collects them."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Tuple

from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import EFS_HARD_LINK_LIMIT, MAX_LINKED_TREES
from settings.identifiers import AZ_SUFFIX, region_of_key
from settings.model import (
    ENDPOINT_URL_VARIABLES,
    GATEWAY_ENDPOINTS,
    INTERFACE_ENDPOINTS,
    MAX_FALLBACK_INSTANCE_TYPES,
    IntervalPolicy,
    instance_architecture,
)


def az_context_key(account: str, region: str) -> str:
    """The context key under which the CDK caches a region's availability zones (kept in cdk.json: no lookups)."""
    return f"availability-zones:account={account}:region={region}"


Values = Mapping[str, Any]
Rule = Callable[[Values, Values, Values], List[str]]
# (the keys a rule needs, the rule), in the order their problems are reported.
_RULES: List[Tuple[Tuple[str, ...], Rule]] = []


def _rule(*needs: str) -> Callable[[Rule], Rule]:
    """Register a rule between keys; it runs only when every key it needs parsed cleanly."""

    def register(rule: Rule) -> Rule:
        _RULES.append((needs, rule))
        return rule

    return register


def cross_checks(values: Values, raw: Values, context: Values) -> List[str]:
    """The problems between keys: every registered rule whose keys parsed cleanly (``values``; ``raw`` holds the
    values as given, ``context`` the whole CDK context), in registration order."""
    problems: List[str] = []
    for needs, rule in _RULES:
        if all(name in values for name in needs):
            problems.extend(rule(values, raw, context))
    return problems


@_rule("region", "subnets")
def _subnets_in_the_regions_zones(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    if "account" in values:
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
    else:
        for placement in values["subnets"]:
            suffix = placement.availability_zone[len(values["region"]):]
            if not placement.availability_zone.startswith(values["region"]) or not AZ_SUFFIX.fullmatch(suffix):
                problems.append(
                    f"subnets: subnet {placement.subnet_id!r} is placed in {placement.availability_zone!r}; "
                    f"expected a zone of {values['region']}"
                )
    return problems


@_rule("backup_performance_mode", "backup_throughput_mode")
def _elastic_needs_general_purpose(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    if values["backup_performance_mode"] == "maxIO" and values["backup_throughput_mode"] == "elastic":
        problems.append(
            "backup_throughput_mode: 'elastic' cannot be combined with backup_performance_mode 'maxIO'; "
            "expected generalPurpose with elastic, or bursting/provisioned with maxIO"
        )
    return problems


@_rule("backup_throughput_mode", "backup_provisioned_throughput_mibps")
def _provisioned_throughput_only_when_provisioned(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
    return problems


@_rule("backup_transition_to_archive_days", "backup_transition_to_ia_days", "backup_throughput_mode",
       "backup_performance_mode")
def _archive_needs_elastic_and_a_later_transition(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
    return problems


@_rule("backup_kms_key", "region")
def _backup_key_in_the_region(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    kms = values["backup_kms_key"]
    if kms.key_arn:
        key_region = region_of_key(kms.key_arn)
        if key_region != values["region"]:
            problems.append(
                f"backup_kms_key: {kms.key_arn!r} is in {key_region}; expected a key in {values['region']} "
                "(EFS needs a key in its own region)"
            )
    return problems


@_rule("worker_fallback_instance_types", "worker_instance_type")
def _fallback_types_like_the_primary(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
    return problems


@_rule("worker_ebs_kms_key", "region")
def _worker_volume_key_in_the_region(values: Values, raw: Values, context: Values) -> List[str]:
    if not values["worker_ebs_kms_key"]:
        return []
    problems: List[str] = []
    key_region = region_of_key(values["worker_ebs_kms_key"])
    if key_region != values["region"]:
        problems.append(f"worker_ebs_kms_key: {values['worker_ebs_kms_key']!r} is in {key_region}; expected a "
                        f"key in {values['region']} (EBS encrypts with a key of the volume's region)")
    return problems


@_rule("restore_target_file_systems", "source_file_system_id")
def _restore_targets_exclude_production(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    if values["source_file_system_id"] in [t.file_system_id for t in values["restore_target_file_systems"] or ()]:
        problems.append(
            f"restore_target_file_systems: names the production file system {values['source_file_system_id']!r}"
            "; expected only other file systems (restores may always write to production)"
        )
    return problems


@_rule("source_client_security_group", "source_mount_target_security_group_id")
def _client_group_is_not_the_mount_target_group(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    if values["source_client_security_group"] == values["source_mount_target_security_group_id"]:
        problems.append(
            f"source_client_security_group: {values['source_client_security_group']!r} is the mount-target "
            "group itself; expected the client group that the mount targets admit, or 'create'"
        )
    return problems


@_rule()
def _schedules_only_for_kept_intervals(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    for interval in INTERVALS:
        if f"retain_{interval}" in values and f"schedule_{interval}" in values:
            explicit = f"schedule_{interval}" in raw  # a default schedule of an unused interval is just dropped
            if explicit and values[f"schedule_{interval}"] is not None and values[f"retain_{interval}"] == 0:
                problems.append(
                    f"schedule_{interval}: {values[f'schedule_{interval}']!r} would start {interval} runs but "
                    f"retain_{interval} is 0; expected none, or retain_{interval} >= 1"
                )
    return problems


@_rule("vpc_endpoints", "route_table_ids")
def _route_tables_with_gateway_endpoints(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
    return problems


@_rule("vpc_endpoints", "vpc_endpoint_private_dns")
def _endpoint_urls_without_private_dns(values: Values, raw: Values, context: Values) -> List[str]:
    if values["vpc_endpoint_private_dns"]:
        return []
    problems: List[str] = []
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
    return problems


@_rule("vpc_endpoints", "existing_vpc_endpoints", "vpc_endpoint_private_dns")
def _no_second_private_dns_endpoint(values: Values, raw: Values, context: Values) -> List[str]:
    if not values["vpc_endpoint_private_dns"]:
        return []
    problems: List[str] = []
    both = [s for s in values["vpc_endpoints"] if s in values["existing_vpc_endpoints"]]
    if both:
        problems.append(
            f"vpc_endpoints: {', '.join(both)} already exist in the VPC (existing_vpc_endpoints); expected each "
            "service in one list only (a second endpoint with private DNS for a service fails the deploy: "
            "its private hosted zone conflicts with the existing one)"
        )
    return problems


@_rule("vpc_endpoints", "worker_https_egress")
def _s3_gateway_reachable(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
    return problems


@_rule("worker_heartbeat_timeout_seconds", "worker_timeout_hours")
def _heartbeat_within_half_the_task_timeout(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
    heartbeat, hours = values["worker_heartbeat_timeout_seconds"], values["worker_timeout_hours"]
    if heartbeat * 2 > hours * 3600:
        problems.append(
            f"worker_heartbeat_timeout_seconds: {heartbeat} is more than half of worker_timeout_hours "
            f"({hours} h = {hours * 3600} s); expected at most {hours * 1800} (Step Functions needs the heartbeat "
            "timeout below the task timeout, and a lost worker must be noticed by its heartbeat first)"
        )
    return problems


# What a worker must reach over HTTPS to bootstrap and report (docs/orchestration.md, "What the workers need from
# the network").
# S3: the script bucket, and the Amazon Linux 2023 repositories dnf installs amazon-efs-utils and rsync from, which
# are S3 buckets under dual-stack names (al2023-repos-<region>-<id>.s3.dualstack.<region>.amazonaws.com): an S3
# *interface* endpoint does not serve those names, an S3 gateway endpoint or a NAT does
# (https://repost.aws/knowledge-center/ec2-al1-al2-update-yum-without-internet).
WORKER_NEEDS = {"s3": "the engine scripts and the Amazon Linux package repositories",
                "states": "reporting task results and heartbeats to Step Functions",
                "logs": "shipping the worker log to CloudWatch Logs"}


@_rule("worker_https_egress", "vpc_endpoints", "existing_vpc_endpoints", "existing_vpc_endpoint_security_groups",
       "vpc_cidr", "worker_image")
def _workers_reach_their_services(values: Values, raw: Values, context: Values) -> List[str]:
    """Refuse a network in which a worker cannot bootstrap or report: each service in WORKER_NEEDS must be reachable
    through a NAT (0.0.0.0/0 in worker_https_egress), an endpoint this stack creates, or one the VPC already has."""
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


@_rule(*(f"retain_{i}" for i in INTERVALS))
def _linked_trees_within_the_hard_link_limit(values: Values, raw: Values, context: Values) -> List[str]:
    problems: List[str] = []
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
