"""Network: a VPC with private subnets in two availability zones and no internet route. S3 is reached through
a gateway endpoint, every other AWS API the platform calls through an interface endpoint (Secrets Manager and
CloudWatch Logs for all; ECR, STS, ECS, SSM messages, Glue, Lambda and SES for Dagster's tasks); PostgreSQL
admits only the scorer, the Glue connection, the Dagster daemon (and its run workers) and the Dagster webserver,
each by its own security group. No group admits anything from an address range."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

POSTGRES_PORT = 5432
HTTPS_PORT = 443
# what the Dagster tasks call (orchestration.py): image pulls (ecr.api, ecr.dkr, layers from S3), ECS Exec
# (ssmmessages), the EcsRunLauncher (ecs), the assets' Glue job, Lambdas and alert emails (glue, lambda, email), sts
DAGSTER_INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "sts", "ssmmessages", "ecs", "glue", "lambda", "email")


@dataclass
class NetworkArgs:
    cidr: str
    availability_zones: list[str]  # two, for RDS subnet groups and Lambda resilience
    region: str
    # Secrets Manager (the scorer's database secret), Logs (Glue drivers, ECS tasks) and the Dagster endpoints
    # always; more on request (there is no NAT)
    extra_interface_endpoints: tuple[str, ...] = ()


class Network(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:Network", name, None, opts)
        if len(args.availability_zones) < 2:
            raise ValueError("the network needs two availability zones")
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # interface endpoints answer on the services' own names
            tags={"Name": f"{name}-vpc"},
            opts=child,
        )
        in_vpc = pulumi.ResourceOptions(parent=self.vpc)
        blocks = ipaddress.ip_network(args.cidr).subnets(
            new_prefix=max(ipaddress.ip_network(args.cidr).prefixlen + 2, 20)
        )
        self.route_table = aws.ec2.RouteTable(f"{name}-private", vpc_id=self.vpc.id, opts=in_vpc)  # local routes only
        self.private_subnets = []
        for index, zone in enumerate(args.availability_zones[:2]):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(next(blocks)),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{zone}"},
                opts=in_vpc,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=in_vpc
            )
            self.private_subnets.append(subnet)
        self.private_subnet_ids = [s.id for s in self.private_subnets]

        def group(role: str, description: str) -> aws.ec2.SecurityGroup:
            # rules are separate resources below; this group starts with no ingress and no egress
            return aws.ec2.SecurityGroup(
                f"{name}-{role}", vpc_id=self.vpc.id, description=description, revoke_rules_on_delete=True, opts=in_vpc
            )

        self.database_sg = group("database", "PostgreSQL: only from the scorer, Glue and Dagster")
        self.scorer_sg = group("scorer", "scorer Lambda")
        self.glue_sg = group("glue", "Glue connection ENIs")
        self.dagster_sg = group("dagster", "Dagster daemon and its run workers: no ingress")
        self.webserver_sg = group("webserver", "Dagster webserver: no ingress (the UI is reached through ECS Exec)")
        self.endpoints_sg = group("endpoints", "interface endpoints: HTTPS from the project's clients")
        clients = {
            "scorer": self.scorer_sg,
            "glue": self.glue_sg,
            "dagster": self.dagster_sg,
            "webserver": self.webserver_sg,
        }

        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{args.region}.s3",
            route_table_ids=[self.route_table.id],
            opts=in_vpc,
        )
        self.interface_endpoints = {
            service: aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=self.vpc.id,
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{args.region}.{service}",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[self.endpoints_sg.id],
                opts=in_vpc,
            )
            for service in dict.fromkeys(
                ("secretsmanager", "logs", *DAGSTER_INTERFACE_ENDPOINTS, *args.extra_interface_endpoints)
            )
        }

        for client, sg in clients.items():
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-postgres-from-{client}",
                security_group_id=self.database_sg.id,
                referenced_security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=POSTGRES_PORT,
                to_port=POSTGRES_PORT,
                description=f"PostgreSQL from {client}",
                opts=in_vpc,
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-{client}-to-postgres",
                security_group_id=sg.id,
                referenced_security_group_id=self.database_sg.id,
                ip_protocol="tcp",
                from_port=POSTGRES_PORT,
                to_port=POSTGRES_PORT,
                opts=in_vpc,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-from-{client}",
                security_group_id=self.endpoints_sg.id,
                referenced_security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                opts=in_vpc,
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-{client}-to-endpoints",
                security_group_id=sg.id,
                referenced_security_group_id=self.endpoints_sg.id,
                ip_protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                opts=in_vpc,
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-{client}-to-s3",
                security_group_id=sg.id,
                prefix_list_id=self.s3_endpoint.prefix_list_id,
                ip_protocol="tcp",
                from_port=HTTPS_PORT,
                to_port=HTTPS_PORT,
                opts=in_vpc,
            )
        # AWS Glue requires its connection's security group to admit all TCP from itself (driver <-> executors).
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-glue-self",
            security_group_id=self.glue_sg.id,
            referenced_security_group_id=self.glue_sg.id,
            ip_protocol="tcp",
            from_port=0,
            to_port=65535,
            opts=in_vpc,
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-glue-self",
            security_group_id=self.glue_sg.id,
            referenced_security_group_id=self.glue_sg.id,
            ip_protocol="tcp",
            from_port=0,
            to_port=65535,
            opts=in_vpc,
        )
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "private_subnet_ids": self.private_subnet_ids,
                "dagster_security_group_id": self.dagster_sg.id,
                "webserver_security_group_id": self.webserver_sg.id,
            }
        )
