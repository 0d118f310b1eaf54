"""Parsers of the network keys: the VPC's CIDR and subnets, the production file system's client security group,
restore targets, the workers' HTTPS egress and the VPC endpoints."""

from __future__ import annotations

import ipaddress
from typing import Any, List, Mapping, Optional, Tuple

from settings.identifiers import EFS_ID, PREFIX_LIST_ID, ROUTE_TABLE_ID, SG_ID, SUBNET_ID
from settings.model import CREATE_CLIENT_SECURITY_GROUP, VPC_ENDPOINTS, RestoreTarget, SubnetPlacement
from settings.parsers import Invalid, describe, is_none, list_items, list_of, matches, string


def cidr(value: Any) -> str:
    expectation = "an IPv4 network in CIDR notation such as 10.0.0.0/16"
    text = string(value, expectation)
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise Invalid(f"{describe(value)} is not a CIDR block ({expectation})") from None
    if "/" not in text:
        raise Invalid(f"{describe(value)} has no prefix length ({expectation})")
    return str(network)


def restore_targets(value: Any) -> Tuple[RestoreTarget, ...]:
    expectation = (
        'a mapping of EFS id to its mount targets\' security group id, e.g. {"fs-0123abcd": "sg-0123abcd"} in '
        "cdk.json or fs-0123abcd:sg-0123abcd,fs-4567cdef:sg-4567cdef with -c, or none"
    )
    if is_none(value) or value == {}:
        return ()
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            fs_id, sep, group = item.strip().partition(":")
            if not sep:
                raise Invalid(f"{describe(value)} is not a file-system mapping; expected {expectation}")
            pairs.append((fs_id.strip(), group.strip()))
    else:
        raise Invalid(f"{describe(value)} is not a file-system mapping; expected {expectation}")
    problems = []
    for fs_id, group in pairs:
        if not isinstance(fs_id, str) or not EFS_ID.fullmatch(fs_id):
            problems.append(f"{describe(fs_id)} is not an EFS id (fs- followed by 8 or 17 hex digits)")
        if not isinstance(group, str) or not SG_ID.fullmatch(group):
            problems.append(f"file system {fs_id!r} has security group {describe(group)}; expected sg- followed by "
                            "8 or 17 hex digits")
    ids = [fs_id for fs_id, _group in pairs]
    problems += [f"{fs_id!r} is listed more than once" for fs_id in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise Invalid("; ".join(problems))
    return tuple(RestoreTarget(fs_id, group) for fs_id, group in pairs)


def subnets(value: Any) -> Tuple[SubnetPlacement, ...]:
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
                raise Invalid(f"{describe(value)} is not a subnet mapping; expected {expectation}")
            pairs.append((subnet.strip(), zone.strip()))
    else:
        raise Invalid(f"{describe(value)} is not a subnet mapping; expected {expectation}")
    if not pairs:
        raise Invalid(f"{describe(value)} names no subnet; expected at least one ({expectation})")
    problems = []
    placements = []
    for subnet, zone in pairs:
        if not isinstance(subnet, str) or not SUBNET_ID.fullmatch(subnet):
            problems.append(f"{describe(subnet)} is not a subnet id (subnet- followed by 8 or 17 hex digits)")
        if not isinstance(zone, str) or not zone:
            problems.append(f"subnet {subnet!r} has availability zone {describe(zone)}; expected a zone name")
        placements.append(SubnetPlacement(str(subnet), str(zone)))
    zones = [p.availability_zone for p in placements]
    duplicates = sorted({z for z in zones if zones.count(z) > 1})
    if duplicates:
        problems.append(
            f"more than one subnet in {', '.join(duplicates)}; expected one subnet per availability zone "
            "(EFS allows one mount target per zone)"
        )
    if problems:
        raise Invalid("; ".join(problems))
    return tuple(placements)


def source_client_security_group(value: Any) -> Optional[str]:
    expectation = f"an existing security group id (sg- followed by 8 or 17 hex digits) or {CREATE_CLIENT_SECURITY_GROUP!r}"
    if value == CREATE_CLIENT_SECURITY_GROUP:
        return None
    if not isinstance(value, str) or not SG_ID.fullmatch(value):
        raise Invalid(f"{describe(value)} is not a security group id or 'create'; expected {expectation}")
    return value


def https_egress(value: Any) -> Tuple[str, ...]:
    expectation = "a list of IPv4 CIDR blocks and managed prefix list ids (pl-…), comma-separated with -c"
    items = list_items(value, expectation, none_is_empty=False)  # none is no destination: refused below
    if not items or items == [""]:
        raise Invalid(f"{describe(value)} is empty; expected at least one destination ({expectation})")
    destinations = []
    problems = []
    for item in items:
        if isinstance(item, str) and PREFIX_LIST_ID.fullmatch(item):
            destinations.append(item)
            continue
        try:
            destinations.append(cidr(item))
        except Invalid:
            problems.append(f"{describe(item)} is neither a CIDR block nor a prefix list id")
    if problems:
        raise Invalid("; ".join(problems) + f" (expected {expectation})")
    if len(set(destinations)) != len(destinations):
        raise Invalid(f"{describe(value)} lists a destination twice; expected each destination once")
    return tuple(destinations)


vpc_endpoints = list_of(
    lambda item: item in VPC_ENDPOINTS, not_a="an endpoint this stack creates",
    expectation=f"none, or a list of {', '.join(VPC_ENDPOINTS)} (comma-separated with -c)",
    twice=("an endpoint", "endpoint"))
security_group_ids = list_of(
    matches(SG_ID), not_a="a security group id",
    expectation="none, or a list of security group ids (sg- followed by 8 or 17 hex digits; comma-separated with -c)",
    twice=("a security group", "security group"))
route_table_ids = list_of(
    matches(ROUTE_TABLE_ID), not_a="a route table id",
    expectation="none, or a list of route table ids (rtb- followed by 8 or 17 hex digits; comma-separated with -c)",
    twice=("a route table", "route table"))
