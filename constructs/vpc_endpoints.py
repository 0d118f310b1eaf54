"""Optional VPC endpoints for the backup workers, for private subnets without a NAT (``vpc_endpoints`` in config).

* Gateway endpoints (``s3``, ``dynamodb``) are routed through the configured ``route_table_ids`` (imported subnets
  carry no route table). The S3 endpoint is what reaches the script bucket and Amazon Linux's package repositories
  (S3 buckets ``al2023-repos-<region>-*``); workers reach it through the S3 prefix list in ``worker_https_egress``.
* Interface endpoints (``states``, ``logs``, ``monitoring``, ``ssm``, ``ssmmessages``, ``ec2messages``, ``sns``) get
  one network interface in each configured subnet, private DNS on (so the AWS CLI on the workers needs no endpoint
  URL; with ``vpc_endpoint_private_dns`` false, ``worker_environment`` points the workers' CLI at them), and one
  security group that admits HTTPS only from the backup-client group. The backup-client group gets
  an HTTPS egress rule to that group, so the endpoints work whatever ``worker_https_egress`` lists.

Endpoint policies are left at AWS's default (full access): an endpoint serves the whole VPC (a gateway endpoint
everything routed through its route tables, an interface endpoint with private DNS every resolver in the VPC), so
a policy that admitted only the worker roles would cut every other workload in the VPC off from the service. IAM
policies on the callers (the worker roles here) decide what each may do; the default policy "allows full access
to the service" and does not grant anything by itself
(https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html). A VPC that already has an endpoint
with private DNS for a service cannot get a second one (the private hosted zone conflicts and the deploy fails):
list such services in ``existing_vpc_endpoints`` instead, and their security groups in
``existing_vpc_endpoint_security_groups`` so that the backup-client group gets HTTPS to them (see
docs/orchestration.md, "What the workers need from the network").
"""

from __future__ import annotations

from typing import Dict, Sequence

from aws_cdk import Fn, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from settings.model import ENDPOINT_URL_VARIABLES, VpcEndpointSettings

HTTPS_PORT = 443

INTERFACE_SERVICES: Dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "states": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "ssmmessages": ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
    "ec2messages": ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
    "sns": ec2.InterfaceVpcEndpointAwsService.SNS,
}


class VpcEndpoints(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: VpcEndpointSettings,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        client_security_group: ec2.SecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.settings = settings
        self.gateway_endpoints: Dict[str, ec2.CfnVPCEndpoint] = {}
        for service in settings.gateway_services:
            self.gateway_endpoints[service] = ec2.CfnVPCEndpoint(
                self,
                f"{service.capitalize()}Gateway",
                vpc_id=vpc.vpc_id,
                service_name=f"com.amazonaws.{stack.region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=list(settings.route_table_ids),
            )

        # ---- interface endpoints (one ENI per configured subnet, private DNS)
        self.interface_endpoints: Dict[str, ec2.InterfaceVpcEndpoint] = {}
        self.security_group = None
        if settings.interface_services:
            self.security_group = ec2.SecurityGroup(
                self,
                "SecurityGroup",
                vpc=vpc,
                description="efs-backup VPC interface endpoints: HTTPS only from the backup-client group",
                allow_all_outbound=False,
            )
            self.security_group.add_ingress_rule(
                client_security_group, ec2.Port.tcp(HTTPS_PORT), "HTTPS from efs-backup workers (backup-client group)"
            )
            client_security_group.add_egress_rule(
                self.security_group, ec2.Port.tcp(HTTPS_PORT), "HTTPS to the efs-backup VPC interface endpoints"
            )
            for service in settings.interface_services:
                endpoint = ec2.InterfaceVpcEndpoint(
                    self,
                    f"{service.capitalize()}Interface",
                    vpc=vpc,
                    service=INTERFACE_SERVICES[service],
                    subnets=ec2.SubnetSelection(subnets=list(subnets)),
                    security_groups=[self.security_group],
                    private_dns_enabled=settings.private_dns,
                    open=False,
                )
                self.interface_endpoints[service] = endpoint

        # ---- endpoints that already exist in the VPC (existing_vpc_endpoint_security_groups): HTTPS to them
        for index, group_id in enumerate(settings.existing_security_group_ids):
            group = ec2.SecurityGroup.from_security_group_id(self, f"ExistingEndpointGroup{index}", group_id,
                                                             allow_all_outbound=False)
            group.add_ingress_rule(client_security_group, ec2.Port.tcp(HTTPS_PORT),
                                   "HTTPS from efs-backup workers (backup-client group)")
            client_security_group.add_egress_rule(group, ec2.Port.tcp(HTTPS_PORT),
                                                  "HTTPS to existing VPC endpoints used by efs-backup workers")

    @property
    def worker_environment(self) -> Dict[str, str]:
        """Without private DNS: AWS_ENDPOINT_URL_<SERVICE> -> https://<the endpoint's regional DNS name>, for the
        workers' user data (the first DnsEntries item is the regional name, as "<hosted zone id>:<DNS name>":
        https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-vpcendpoint.html)."""
        if self.settings.private_dns:
            return {}
        return {
            ENDPOINT_URL_VARIABLES[service]: "https://" + Fn.select(
                1, Fn.split(":", Fn.select(0, endpoint.vpc_endpoint_dns_entries)))
            for service, endpoint in self.interface_endpoints.items() if service in ENDPOINT_URL_VARIABLES
        }

    @property
    def endpoint_ids(self) -> Dict[str, str]:
        """Service -> endpoint id (a token), for every endpoint created."""
        ids = {service: endpoint.ref for service, endpoint in self.gateway_endpoints.items()}
        ids.update({service: endpoint.vpc_endpoint_id for service, endpoint in self.interface_endpoints.items()})
        return ids
