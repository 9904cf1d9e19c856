"""Network: a VPC with private subnets in two availability zones and no internet route. S3 is reached through
a gateway endpoint, every other AWS API the platform calls through an interface endpoint (Secrets Manager and
CloudWatch Logs for all; ECR, STS, ECS, SSM messages, Glue, Lambda and SES for Dagster's tasks); PostgreSQL
admits only the scorer, the Glue connection, the Dagster daemon (and its run workers) and the Dagster webserver,
each by its own security group. No group admits anything from an address range.

Once the buckets, secrets and functions exist, `limit_endpoints` narrows what the endpoints carry to this project's
resources: the S3 gateway endpoint to the project's buckets (and ECR's layer bucket, which image pulls read), the
Secrets Manager endpoint to the project's secrets, the Lambda endpoint to the project's functions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

POSTGRES_PORT = 5432
HTTPS_PORT = 443
# The interface endpoints of services whose policies can name resources, and the actions the project calls on them.
# The others (logs, ecr.*, sts, ssmmessages, ecs, glue, email) keep the default policy: see README.md, "Security".
SCOPED_INTERFACE_ACTIONS = {
    "secretsmanager": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
    "lambda": ["lambda:InvokeFunction"],
}
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
        self._name = name
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
        self._region = args.region
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "private_subnet_ids": self.private_subnet_ids,
                "dagster_security_group_id": self.dagster_sg.id,
                "webserver_security_group_id": self.webserver_sg.id,
            }
        )

    def limit_endpoints(
        self,
        bucket_arns: list[pulumi.Input[str]],
        secret_arns: list[pulumi.Input[str]],
        function_arns: list[pulumi.Input[str]],
    ) -> None:
        """Endpoint policies: what passes through each endpoint is limited to the project's own resources (on top of
        each role's own policy), so a component cannot copy data to another account's bucket or secret through them.
        """
        in_vpc = pulumi.ResourceOptions(parent=self.vpc)
        layers = f"arn:aws:s3:::prod-{self._region}-starport-layer-bucket/*"  # ECR keeps image layers there
        objects = [pulumi.Output.concat(arn, "/*") for arn in bucket_arns]
        s3 = [
            # any S3 action, but only on the project's buckets: the roles' own policies list the actions
            {
                "Sid": "ProjectBuckets",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [*bucket_arns, *objects],
            },
            {
                "Sid": "EcrImageLayers",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": [layers],
            },
        ]
        policies = {
            "s3": (self.s3_endpoint, s3),
            "secretsmanager": (
                self.interface_endpoints["secretsmanager"],
                [
                    {
                        "Sid": "ProjectSecrets",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": SCOPED_INTERFACE_ACTIONS["secretsmanager"],
                        "Resource": secret_arns,
                    }
                ],
            ),
            "lambda": (
                self.interface_endpoints["lambda"],
                [
                    {
                        "Sid": "ProjectFunctions",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": SCOPED_INTERFACE_ACTIONS["lambda"],
                        # an invocation names the function, or the function with a qualifier (version, alias)
                        "Resource": [*function_arns, *(pulumi.Output.concat(arn, ":*") for arn in function_arns)],
                    }
                ],
            ),
        }
        self.endpoint_policies = {
            service: aws.ec2.VpcEndpointPolicy(
                f"{self._name}-{service}-endpoint-policy",
                vpc_endpoint_id=endpoint.id,
                policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
                opts=in_vpc,
            )
            for service, (endpoint, statements) in policies.items()
        }
