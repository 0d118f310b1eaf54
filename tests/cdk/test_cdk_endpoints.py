"""Optional VPC endpoints (``vpc_endpoints``, ``route_table_ids``): configuration rules and the template.

``production-eu`` ships with endpoints (S3 gateway, Step Functions, Logs, SSM, SSM messages), ``example`` without;
a ``-c`` variant covers the remaining services.
"""

from __future__ import annotations

import json

import pytest

from cdk_helpers import context_for, synthesize
from stacks.config import INTERFACE_ENDPOINTS, VPC_ENDPOINTS, ConfigError, load_config

HTTPS = 443


def endpoints(synth):
    return {v["Properties"]["ServiceName"].rsplit(".", 1)[1]: v["Properties"]
            for v in synth.template_json["Resources"].values() if v["Type"] == "AWS::EC2::VPCEndpoint"}


def resolved(synth, value):
    return synth.stack.resolve(value)


def worker_roles(synth):
    """The principals the endpoint policies admit: the backup and the restore worker roles (CDK sorts them)."""
    return sorted((resolved(synth, role.role_arn) for role in (synth.stack.worker.role, synth.stack.restore_worker.role)),
                  key=json.dumps)


def statements(props):
    return props["PolicyDocument"]["Statement"]


# ------------------------------------------------------------------------------------------------ configuration


def problems(**overrides):
    with pytest.raises(ConfigError) as raised:
        load_config(context_for("example", **overrides))
    return list(raised.value.problems)


def test_endpoints_default_to_none_and_parse_from_command_line_strings():
    assert load_config(context_for("example")).vpc_endpoints.services == ()
    config = load_config(context_for("example", vpc_endpoints="s3,states,logs", route_table_ids="rtb-12345678",
                                     worker_https_egress="172.31.0.0/16,pl-63a5400a"))
    assert config.vpc_endpoints.gateway_services == ("s3",)
    assert config.vpc_endpoints.interface_services == ("states", "logs")
    assert config.vpc_endpoints.route_table_ids == ("rtb-12345678",)
    assert load_config(context_for("example", vpc_endpoints="none")).vpc_endpoints.services == ()


@pytest.mark.parametrize("overrides, expected", [
    ({"vpc_endpoints": "s3,efs"}, "vpc_endpoints: 'efs' is not an endpoint this stack creates; expected none, or a "
                                  "list of " + ", ".join(VPC_ENDPOINTS)),
    ({"vpc_endpoints": "logs,logs"}, "vpc_endpoints: 'logs,logs' lists an endpoint twice"),
    ({"vpc_endpoints": "states", "route_table_ids": "rtb-123"}, "route_table_ids: 'rtb-123' is not a route table id"),
    ({"route_table_ids": "rtb-12345678"}, "route_table_ids: 'rtb-12345678' is set but vpc_endpoints asks for no "
                                          "gateway endpoint (s3, dynamodb); expected none"),
    ({"vpc_endpoints": "dynamodb"}, "route_table_ids: missing; expected the route tables of the worker subnets "
                                    "because vpc_endpoints asks for the gateway endpoint dynamodb"),
])
def test_bad_endpoint_settings_are_reported(overrides, expected):
    (problem,) = problems(**overrides)
    assert problem.startswith(expected), problem


def test_s3_gateway_needs_route_tables_and_a_way_through_the_security_group_reported_together():
    found = problems(vpc_endpoints="s3")
    assert [p.split(":", 1)[0] for p in found] == ["route_table_ids", "worker_https_egress"]
    assert "S3 prefix list id (pl-" in found[1]


# ------------------------------------------------------------------------------------------------ template


def test_example_creates_no_endpoints(synthesized):
    synth = synthesized("example")
    assert endpoints(synth) == {} and synth.stack.endpoints is None


def test_production_endpoints_follow_the_configuration(synthesized):
    synth = synthesized("production-eu")
    assert sorted(endpoints(synth)) == sorted(synth.config.vpc_endpoints.services)
    assert set(synth.stack.endpoints.endpoint_ids) == set(synth.config.vpc_endpoints.services)


def test_s3_gateway_is_routed_through_the_configured_route_tables_with_a_narrow_policy(synthesized):
    synth = synthesized("production-eu")
    s3 = endpoints(synth)["s3"]
    assert s3["VpcEndpointType"] == "Gateway"
    assert s3["ServiceName"] == "com.amazonaws.eu-west-1.s3"
    assert s3["RouteTableIds"] == list(synth.config.vpc_endpoints.route_table_ids)
    bucket = resolved(synth, synth.stack.scripts.bucket.bucket_arn)
    by_sid = {s["Sid"]: s for s in statements(s3)}
    assert by_sid["WorkersReadTheScriptBucket"]["Principal"] == {"AWS": worker_roles(synth)}
    assert by_sid["WorkersReadTheScriptBucket"]["Action"] == "s3:GetObject"
    assert by_sid["WorkersReadTheScriptBucket"]["Resource"] == {"Fn::Join": ["", [bucket, "/*"]]}
    assert by_sid["WorkersListTheScriptBucket"]["Resource"] == bucket
    repos = by_sid["AmazonLinuxRepositories"]
    assert repos["Principal"] == {"AWS": "*"} and repos["Action"] == "s3:GetObject"
    assert repos["Resource"] == "arn:aws:s3:::al2023-repos-eu-west-1-*/*"
    assert all(s["Effect"] == "Allow" and "*" not in str(s["Action"]) for s in statements(s3))


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
        for statement in statements(props):
            assert statement["Principal"] == {"AWS": worker_roles(synth)}, "only the worker roles"
            assert "*" not in str(statement["Action"])
    ingress = [r["Properties"] for r in synth.template_json["Resources"].values()
               if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == group]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in ingress] == [
        ("tcp", HTTPS, HTTPS, client)]
    (group_resource,) = [r for k, r in synth.template_json["Resources"].items()
                         if {"Fn::GetAtt": [k, "GroupId"]} == group]
    assert [e["Description"] for e in group_resource["Properties"]["SecurityGroupEgress"]] == ["Disallow all traffic"]


def test_interface_policies_name_this_stacks_resources(synthesized):
    synth = synthesized("production-eu")
    found = endpoints(synth)
    (states,) = statements(found["states"])
    assert sorted(states["Resource"], key=json.dumps) == sorted(
        (resolved(synth, workflow.state_machine.state_machine_arn)
         for workflow in (synth.stack.workflow, synth.stack.restore_workflow)), key=json.dumps)
    assert sorted(states["Action"]) == ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"]
    (logs,) = statements(found["logs"])
    assert logs["Resource"] == resolved(synth, synth.stack.launch_template.log_group.log_group_arn)
    assert "logs:PutLogEvents" in logs["Action"]


@pytest.fixture(scope="module")
def every_endpoint(tmp_path_factory):
    return synthesize("example", tmp_path_factory.mktemp("cdk-endpoints"), vpc_endpoints=",".join(VPC_ENDPOINTS),
                      route_table_ids="rtb-12345678", worker_https_egress="pl-63a5400a",
                      stack_name="EfsBackupEndpoints")


def test_every_service_can_be_created_and_synthesizes_nag_clean(every_endpoint):
    # synthesize() raised on any unacknowledged cdk-nag finding.
    found = endpoints(every_endpoint)
    assert sorted(found) == sorted(VPC_ENDPOINTS)
    assert found["dynamodb"]["VpcEndpointType"] == "Gateway"
    (table,) = statements(found["dynamodb"])
    assert table["Resource"] == resolved(every_endpoint, every_endpoint.stack.workflow.table.table_arn)
    (sns,) = statements(found["sns"])
    assert sns["Resource"] == resolved(every_endpoint, every_endpoint.stack.notifications.topic.topic_arn)
