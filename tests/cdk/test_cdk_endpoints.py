"""VPC endpoints (``vpc_endpoints``, ``route_table_ids``, ``existing_vpc_endpoints``,
``existing_vpc_endpoint_security_groups``): configuration rules, the template, and the worker network check.

``production-eu`` ships with created endpoints (S3 gateway, Step Functions, Logs, SSM, SSM messages), ``example``
with the VPC's existing ones; a ``-c`` variant covers the remaining services. Endpoint policies stay at AWS's
default (issue 11, item 9): a policy admitting only the worker roles would cut every other workload in the VPC off.
"""

from __future__ import annotations

import json

import pytest

from cdk_helpers import context_for, synthesize
from settings.load import load_config
from settings.model import INTERFACE_ENDPOINTS, VPC_ENDPOINTS, ConfigError

HTTPS = 443


def endpoints(synth):
    return {v["Properties"]["ServiceName"].rsplit(".", 1)[1]: v["Properties"]
            for v in synth.template_json["Resources"].values() if v["Type"] == "AWS::EC2::VPCEndpoint"}


def resolved(synth, value):
    return synth.stack.resolve(value)


# ------------------------------------------------------------------------------------------------ configuration


def problems(**overrides):
    with pytest.raises(ConfigError) as raised:
        load_config(context_for("example", **overrides))
    return list(raised.value.problems)


def test_endpoints_default_to_none_and_parse_from_command_line_strings():
    assert load_config(context_for("example")).vpc_endpoints.services == ()
    config = load_config(context_for("example", vpc_endpoints="s3,states,logs", route_table_ids="rtb-12345678",
                                     worker_https_egress="172.31.0.0/16,pl-63a5400a", existing_vpc_endpoints="none"))
    assert config.vpc_endpoints.gateway_services == ("s3",)
    assert config.vpc_endpoints.interface_services == ("states", "logs")
    assert config.vpc_endpoints.route_table_ids == ("rtb-12345678",)
    assert load_config(context_for("example", vpc_endpoints="none")).vpc_endpoints.services == ()
    existing = load_config(context_for("example", existing_vpc_endpoint_security_groups="sg-0123abcd,sg-4567cdef"))
    assert existing.vpc_endpoints.existing == ("s3", "states", "logs")
    assert existing.vpc_endpoints.existing_security_group_ids == ("sg-0123abcd", "sg-4567cdef")


@pytest.mark.parametrize("overrides, expected", [
    ({"vpc_endpoints": "s3,efs"}, "vpc_endpoints: 'efs' is not an endpoint this stack creates; expected none, or a "
                                  "list of " + ", ".join(VPC_ENDPOINTS)),
    ({"vpc_endpoints": "logs,logs"}, "vpc_endpoints: 'logs,logs' lists an endpoint twice"),
    ({"vpc_endpoints": "states", "route_table_ids": "rtb-123"}, "route_table_ids: 'rtb-123' is not a route table id"),
    ({"route_table_ids": "rtb-12345678"}, "route_table_ids: 'rtb-12345678' is set but vpc_endpoints asks for no "
                                          "gateway endpoint (s3, dynamodb); expected none"),
    ({"existing_vpc_endpoint_security_groups": "sg-1"}, "existing_vpc_endpoint_security_groups: 'sg-1' is not a "
                                                        "security group id"),
    ({"vpc_endpoints": "dynamodb"}, "route_table_ids: missing; expected the route tables of the worker subnets "
                                    "because vpc_endpoints asks for the gateway endpoint dynamodb"),
])
def test_bad_endpoint_settings_are_reported(overrides, expected):
    (problem,) = problems(existing_vpc_endpoints="none", worker_https_egress="0.0.0.0/0", **overrides)
    assert problem.startswith(expected), problem


def test_s3_gateway_needs_route_tables_and_a_way_through_the_security_group_reported_together():
    found = problems(vpc_endpoints="s3", existing_vpc_endpoints="states,logs", worker_https_egress="172.31.0.0/16")
    assert [p.split(":", 1)[0] for p in found] == ["route_table_ids", "worker_https_egress"]
    assert "S3 prefix list id (pl-" in found[1]


def test_an_endpoint_the_vpc_already_has_is_never_created_again():
    (problem,) = problems(vpc_endpoints="states")
    assert problem.startswith("vpc_endpoints: states already exist in the VPC (existing_vpc_endpoints)")
    assert "fails the deploy" in problem


@pytest.mark.parametrize("overrides, unreachable", [
    # HTTPS only inside the VPC and nothing declared: no way to S3, Step Functions or Logs.
    ({"existing_vpc_endpoints": "none", "worker_https_egress": "172.31.0.0/16"}, ["s3", "states", "logs"]),
    # An existing S3 endpoint without the S3 prefix list: neither the script bucket nor dnf's repositories.
    ({"worker_https_egress": "172.31.0.0/16"}, ["s3"]),
    # Step Functions missing: a worker could never report.
    ({"existing_vpc_endpoints": "s3,logs"}, ["states"]),
])
def test_a_network_in_which_workers_cannot_bootstrap_or_report_is_refused(overrides, unreachable):
    found = problems(**overrides)
    assert [p.split(" ")[8] for p in found] == unreachable, found
    assert all(p.startswith("worker network: workers in private subnets cannot reach") for p in found)
    if "s3" in unreachable:
        (s3,) = [p for p in found if " reach s3 " in p]
        assert "S3 interface endpoint cannot serve dnf's dual-stack repository names" in s3


@pytest.mark.parametrize("overrides", [
    {"existing_vpc_endpoints": "none", "worker_https_egress": "0.0.0.0/0"},  # NAT
    {"existing_vpc_endpoints": "none", "vpc_endpoints": "s3,states,logs", "route_table_ids": "rtb-12345678",
     "worker_https_egress": "pl-63a5400a"},  # created endpoints
    {},  # the example: the VPC's own endpoints
])
def test_networks_that_reach_every_service_are_accepted(overrides):
    load_config(context_for("example", **overrides))


# ------------------------------------------------------------------------------------------------ template


def test_example_creates_no_endpoints(synthesized):
    synth = synthesized("example")
    assert endpoints(synth) == {} and synth.stack.endpoints is None


def test_existing_endpoint_groups_admit_the_workers_over_https(tmp_path):
    synth = synthesize("example", tmp_path, existing_vpc_endpoint_security_groups="sg-0123abcd")
    client = resolved(synth, synth.stack.network.backup_client_security_group.security_group_id)
    resources = synth.template_json["Resources"].values()
    assert endpoints(synth) == {}
    ingress = [r["Properties"] for r in resources if r["Type"] == "AWS::EC2::SecurityGroupIngress"
               and r["Properties"]["GroupId"] == "sg-0123abcd"]
    assert [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress] == [(HTTPS, HTTPS, client)]
    egress = [r["Properties"] for r in resources if r["Type"] == "AWS::EC2::SecurityGroupEgress"
              and r["Properties"].get("DestinationSecurityGroupId") == "sg-0123abcd"]
    assert [(r["FromPort"], r["GroupId"]) for r in egress] == [(HTTPS, client)]


def test_production_endpoints_follow_the_configuration(synthesized):
    synth = synthesized("production-eu")
    assert sorted(endpoints(synth)) == sorted(synth.config.vpc_endpoints.services)
    assert set(synth.stack.endpoints.endpoint_ids) == set(synth.config.vpc_endpoints.services)


def test_s3_gateway_is_routed_through_the_configured_route_tables_with_the_default_policy(synthesized):
    synth = synthesized("production-eu")
    s3 = endpoints(synth)["s3"]
    assert s3["VpcEndpointType"] == "Gateway"
    assert s3["ServiceName"] == "com.amazonaws.eu-west-1.s3"
    assert s3["RouteTableIds"] == list(synth.config.vpc_endpoints.route_table_ids)
    # No policy: AWS's default (full access) applies, so everything else routed through these route tables keeps
    # reaching S3; the worker role's own IAM policy limits the workers.
    assert "PolicyDocument" not in s3


def test_interface_endpoints_in_every_subnet_private_dns_https_only_from_the_workers(synthesized):
    synth = synthesized("production-eu")
    group = resolved(synth, synth.stack.endpoints.security_group.security_group_id)
    client = resolved(synth, synth.stack.network.backup_client_security_group.security_group_id)
    interfaces = {k: v for k, v in endpoints(synth).items() if k in INTERFACE_ENDPOINTS}
    assert sorted(interfaces) == ["logs", "ssm", "ssmmessages", "states"]
    for props in interfaces.values():
        assert props["VpcEndpointType"] == "Interface" and props["PrivateDnsEnabled"] is True
        assert props["SubnetIds"] == list(synth.config.subnet_ids)
        assert props["SecurityGroupIds"] == [group]
        assert "PolicyDocument" not in props, "other tenants of the VPC must keep using the service"
    ingress = [r["Properties"] for r in synth.template_json["Resources"].values()
               if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == group]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
        ("tcp", HTTPS, HTTPS, client)]
    (group_resource,) = [r for k, r in synth.template_json["Resources"].items()
                         if {"Fn::GetAtt": [k, "GroupId"]} == group]
    assert [e["Description"] for e in group_resource["Properties"]["SecurityGroupEgress"]] == ["Disallow all traffic"]


@pytest.fixture(scope="module")
def every_endpoint(tmp_path_factory):
    return synthesize("example", tmp_path_factory.mktemp("cdk-endpoints"), vpc_endpoints=",".join(VPC_ENDPOINTS),
                      route_table_ids="rtb-12345678", worker_https_egress="pl-63a5400a", existing_vpc_endpoints="none",
                      stack_name="EfsBackupEndpoints")


def test_every_service_can_be_created_and_synthesizes_nag_clean(every_endpoint):
    # synthesize() raised on any unacknowledged cdk-nag finding.
    found = endpoints(every_endpoint)
    assert sorted(found) == sorted(VPC_ENDPOINTS)
    assert found["dynamodb"]["VpcEndpointType"] == "Gateway"
    assert not [service for service, props in found.items() if "PolicyDocument" in props]


# ------------------------------------------------------------------------------------ endpoints without private DNS


def test_private_dns_off_serves_only_what_the_workers_cli_can_be_pointed_at():
    base = dict(existing_vpc_endpoints="s3,states,logs", vpc_endpoint_private_dns="false")
    (problem,) = problems(**base)
    assert problem.startswith("vpc_endpoint_private_dns: false but vpc_endpoints creates no interface endpoint")
    (problem,) = problems(vpc_endpoints="states,ssm", **base)
    assert problem.startswith("vpc_endpoint_private_dns: false cannot serve ssm")
    # Beside existing private-DNS endpoints for the same services: no conflict, nothing refused.
    config = load_config(context_for("example", vpc_endpoints="states,logs", **base))
    assert config.vpc_endpoints.private_dns is False


def test_without_private_dns_the_user_data_points_the_cli_at_the_created_endpoints(tmp_path):
    synth = synthesize("example", tmp_path, vpc_endpoints="states,logs", vpc_endpoint_private_dns="false",
                       stack_name="EfsBackupNoPrivateDns")
    found = endpoints(synth)
    assert {found[s]["PrivateDnsEnabled"] for s in ("states", "logs")} == {False}
    for template in (synth.stack.launch_template, synth.stack.restore_launch_template):
        head = resolved(synth, template.bootstrap_pieces()["head"])
        text = json.dumps(head)
        for variable, service in (("AWS_ENDPOINT_URL_SFN", "states"), ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "logs")):
            logical_id = synth.stack.resolve(synth.stack.endpoints.interface_endpoints[service].vpc_endpoint_id)["Ref"]
            assert f'export {variable}=\\"https://' in text
            assert {"Fn::Select": [0, {"Fn::GetAtt": [logical_id, "DnsEntries"]}]} == _dns_entry(head, logical_id)


def _dns_entry(value, logical_id):
    """Find the Fn::Select of the endpoint's first DnsEntries item inside a resolved value."""
    if isinstance(value, dict):
        if value.get("Fn::Select", [None, None])[1] == {"Fn::GetAtt": [logical_id, "DnsEntries"]}:
            return value
        for item in value.values():
            found = _dns_entry(item, logical_id)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = _dns_entry(item, logical_id)
            if found:
                return found
    return None


def test_with_private_dns_the_user_data_sets_no_endpoint_url(synthesized):
    head = synthesized("production-eu").stack.launch_template.bootstrap_pieces()["head"]
    assert "AWS_ENDPOINT_URL" not in head
