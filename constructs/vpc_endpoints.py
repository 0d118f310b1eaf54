"""Optional VPC endpoints for the backup workers, for private subnets without a NAT (``vpc_endpoints`` in config).

* Gateway endpoints (``s3``, ``dynamodb``) are routed through the configured ``route_table_ids`` (imported subnets
  carry no route table). The S3 endpoint is what reaches the script bucket and Amazon Linux's package repositories
  (S3 buckets ``al2023-repos-<region>-*``); workers reach it through the S3 prefix list in ``worker_https_egress``.
* Interface endpoints (``states``, ``logs``, ``monitoring``, ``ssm``, ``ssmmessages``, ``ec2messages``, ``sns``) get
  one network interface in each configured subnet, private DNS on (so the AWS CLI on the workers needs no endpoint
  URL), and one security group that admits HTTPS only from the backup-client group. The backup-client group gets
  an HTTPS egress rule to that group, so the endpoints work whatever ``worker_https_egress`` lists.

Endpoint policies are as narrow as the workers' needs: each interface endpoint admits only the worker roles (backup and restore) and only
the actions it uses on this stack's resources; the S3 endpoint admits the worker roles on the script bucket and
anyone on the Amazon Linux repositories (dnf's requests are unsigned). These endpoints are for the workers: a
gateway endpoint's policy applies to everything routed through its route tables and an interface endpoint's
private DNS to the whole VPC, so leave a service out where other workloads there use it (see README).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import VpcEndpointSettings

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
        worker_roles: Sequence[iam.IRole],
        script_bucket_arn: str,
        state_machine_arns: Sequence[str],
        worker_log_group_arn: str,
        run_table_arn: str,
        topic_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.settings = settings
        workers: List[iam.IPrincipal] = [iam.ArnPrincipal(role.role_arn) for role in worker_roles]

        def allow(actions: List[str], resources: List[str], principal: Optional[iam.IPrincipal] = None,
                  sid: str = "") -> iam.PolicyStatement:
            return iam.PolicyStatement(sid=sid or None, principals=[principal] if principal else workers,
                                       actions=actions, resources=resources)

        # ---- gateway endpoints (route tables)
        gateway_policies: Dict[str, List[iam.PolicyStatement]] = {
            "s3": [
                allow(["s3:GetObject"], [f"{script_bucket_arn}/*"], sid="WorkersReadTheScriptBucket"),
                allow(["s3:ListBucket"], [script_bucket_arn], sid="WorkersListTheScriptBucket"),
                # Each worker deletes its task object (with its task token) once read: see fleet_workflow.py.
                allow(["s3:DeleteObject", "s3:DeleteObjectVersion"], [f"{script_bucket_arn}/tasks/*"],
                      sid="WorkersDeleteTheirTaskObjects"),
                # dnf fetches Amazon Linux 2023 packages from these AWS-owned buckets without signing its requests.
                allow(["s3:GetObject"], [f"arn:{stack.partition}:s3:::al2023-repos-{stack.region}-*/*"],
                      principal=iam.AnyPrincipal(), sid="AmazonLinuxRepositories"),
            ],
            "dynamodb": [
                allow(["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                      [run_table_arn], sid="WorkersUseTheRunHistoryTable"),
            ],
        }
        self.gateway_endpoints: Dict[str, ec2.CfnVPCEndpoint] = {}
        for service in settings.gateway_services:
            self.gateway_endpoints[service] = ec2.CfnVPCEndpoint(
                self,
                f"{service.capitalize()}Gateway",
                vpc_id=vpc.vpc_id,
                service_name=f"com.amazonaws.{stack.region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=list(settings.route_table_ids),
                policy_document=iam.PolicyDocument(statements=gateway_policies[service]),
            )

        # ---- interface endpoints (one ENI per configured subnet, private DNS)
        interface_policies: Dict[str, List[iam.PolicyStatement]] = {
            "states": [allow(["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
                             list(state_machine_arns))],
            "logs": [allow(["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                           [worker_log_group_arn])],
            # PutMetricData has no resource-level permissions.
            "monitoring": [allow(["cloudwatch:PutMetricData"], ["*"])],
            # The Session Manager agent's own calls, which have no resource-level permissions either.
            "ssm": [allow(["ssm:UpdateInstanceInformation"], ["*"])],
            "ssmmessages": [allow(["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                                   "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"], ["*"])],
            "ec2messages": [allow(["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage",
                                   "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages",
                                   "ec2messages:SendReply"], ["*"])],
            "sns": [allow(["sns:Publish"], [topic_arn])],
        }
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
                    private_dns_enabled=True,
                    open=False,
                )
                for statement in interface_policies[service]:
                    endpoint.add_to_policy(statement)
                self.interface_endpoints[service] = endpoint

    @property
    def endpoint_ids(self) -> Dict[str, str]:
        """Service -> endpoint id (a token), for every endpoint created."""
        ids = {service: endpoint.ref for service, endpoint in self.gateway_endpoints.items()}
        ids.update({service: endpoint.vpc_endpoint_id for service, endpoint in self.interface_endpoints.items()})
        return ids
