"""IAM building blocks shared by the components: policy documents from Outputs, and the short, justified
list of places where an AWS API cannot be limited to this project's own ARNs."""

from __future__ import annotations

import re

import pulumi

# Actions that AWS only authorizes on Resource "*" (or whose resource is created by AWS on the fly), with why.
# Every other statement in this program names this project's own ARNs.
ACTIONS_REQUIRING_ANY_RESOURCE: dict[str, str] = {
    # A Lambda function or Glue connection in a VPC gets elastic network interfaces that the service creates
    # in our subnets; their ARNs do not exist before the call, and Lambda validates these on "*" at create time.
    "ec2:CreateNetworkInterface": "ENI created by Lambda/Glue in the private subnets; its ARN does not exist yet",
    "ec2:DeleteNetworkInterface": "the service-created ENI above, removed when idle",
    "ec2:AssignPrivateIpAddresses": "the service-created ENI above",
    "ec2:UnassignPrivateIpAddresses": "the service-created ENI above",
    # Describe* calls have no resource-level permissions in EC2.
    "ec2:DescribeNetworkInterfaces": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeSubnets": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeVpcs": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeSecurityGroups": "EC2 Describe* calls support no resource-level permissions",
    "ec2:DescribeVpcEndpoints": (
        "EC2 Describe* calls support no resource-level permissions (Glue checks the S3 endpoint)"
    ),
    "ec2:DescribeRouteTables": "EC2 Describe* calls support no resource-level permissions (Glue checks the S3 route)",
    "ec2:DescribeVpcAttribute": "EC2 Describe* calls support no resource-level permissions (Glue checks DNS support)",
    # CloudWatch metrics have no ARNs; the statement is limited to the Glue namespace by a condition.
    "cloudwatch:PutMetricData": "metrics have no ARNs; limited to the Glue namespace by condition",
    # Dagster on ECS (orchestration.py)
    "ecr:GetAuthorizationToken": "the registry login token is account-wide; the pulls are limited to the repository",
    "ecs:DescribeTaskDefinition": "ECS supports no resource-level permissions for DescribeTaskDefinition",
    "ssmmessages:CreateControlChannel": "ECS Exec's SSM channel into the webserver task; no resource-level permissions",
    "ssmmessages:CreateDataChannel": "ECS Exec's SSM channel into the webserver task; no resource-level permissions",
    "ssmmessages:OpenControlChannel": "ECS Exec's SSM channel into the webserver task; no resource-level permissions",
    "ssmmessages:OpenDataChannel": "ECS Exec's SSM channel into the webserver task; no resource-level permissions",
}

# AWS-named resources a role must reach that no stack can create or rename, as ARN templates.
# {region} and {account} are filled in, so they are still limited to this account and region.
AWS_NAMED_RESOURCES: dict[str, str] = {
    # Glue writes job driver/executor logs to these fixed log groups (continuous logging under logs-v2).
    "arn:aws:logs:{region}:{account}:log-group:/aws-glue/jobs/*": "Glue's fixed job log groups",
    # glue:GetConnection is authorized on the connection and on the account's Data Catalog.
    "arn:aws:glue:{region}:{account}:catalog": "the account's Glue Data Catalog, needed for GetConnection",
    # Glue tags the ENIs it creates for its connection (condition: only its own tag key).
    "arn:aws:ec2:{region}:{account}:network-interface/*": "ENIs Glue creates in our subnets, tagged by Glue",
}


def aws_named(template: str, region: str, account: str) -> str:
    if template not in AWS_NAMED_RESOURCES:
        raise KeyError(f"{template} is not a justified AWS-named resource; add it to AWS_NAMED_RESOURCES with a reason")
    return template.format(region=region, account=account)


def statement(actions: list[str], resources: list, sid: str, condition: dict | None = None) -> dict:
    """One Allow statement; refuses wildcard actions and "*" resources that are not justified above."""
    for action in actions:
        if "*" in action:
            raise ValueError(f"{sid}: wildcard action {action!r}; list the actions")
    if "*" in resources and not all(a in ACTIONS_REQUIRING_ANY_RESOURCE for a in actions):
        raise ValueError(f"{sid}: Resource '*' for actions that support resource-level permissions")
    body = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition:
        body["Condition"] = condition
    return body


def policy_document(statements: list[dict]) -> pulumi.Output[str]:
    """A policy JSON whose ARNs may still be Outputs of other resources."""
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements})


def assume_role_policy(
    service: str | None = None,
    principal_arn: pulumi.Input[str] | None = None,
    source_account: pulumi.Input[str] | None = None,
) -> pulumi.Output[str]:
    """Trust of one service or principal; `source_account` keeps a service from assuming it for another account
    (the confused-deputy condition)."""
    principal = {"Service": service} if service else {"AWS": principal_arn}
    trust: dict = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    if source_account is not None:
        trust["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [trust]})


# a principal a trust policy may name besides a service: one role or user, never an account (root) or "*"
NAMED_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+")


def ecs_task_trust(account: str, principal_arn: str | None = None) -> pulumi.Output[str]:
    """Trust of ECS tasks of this account (the task definitions the stack creates name the role) and, when set,
    of one more named role or user; an account root, a bare account id or "*" is refused."""
    trust = [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
    ]
    if principal_arn is not None:
        if not NAMED_PRINCIPAL.fullmatch(principal_arn):
            raise ValueError(
                f"dagsterPrincipalArn {principal_arn!r} must be one IAM role or user ARN (never an account root)"
            )
        trust.append({"Effect": "Allow", "Principal": {"AWS": principal_arn}, "Action": "sts:AssumeRole"})
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": trust})


def vpc_eni_statement(sid: str) -> dict:
    return statement(
        [
            "ec2:CreateNetworkInterface",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
            "ec2:DescribeSubnets",
        ],
        ["*"],
        sid,
    )


def kms_statement(key_arn: pulumi.Input[str], sid: str = "ProjectKey") -> dict:
    return statement(["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], [key_arn], sid)


def decrypt_via(key_arn: pulumi.Input[str], service: str, region: str, sid: str) -> dict:
    """kms:Decrypt on the project key only when `service` (e.g. "secretsmanager", "s3") asks on the role's behalf:
    the role cannot decrypt anything else with the key directly."""
    return statement(
        ["kms:Decrypt"], [key_arn], sid, {"StringEquals": {"kms:ViaService": f"{service}.{region}.amazonaws.com"}}
    )


def secret_read_statements(
    secret_arn: pulumi.Input[str], key_arn: pulumi.Input[str], region: str, sid: str
) -> list[dict]:
    """Read one Secrets Manager secret (encrypted with the project key): the secret itself, and the key's Decrypt
    through Secrets Manager only."""
    return [
        statement(["secretsmanager:GetSecretValue"], [secret_arn], sid),
        decrypt_via(key_arn, "secretsmanager", region, f"{sid}Key"),
    ]


def db_connect_statement(db_user_arn: pulumi.Input[str], sid: str = "DatabaseLogin") -> dict:
    """IAM database authentication as exactly one PostgreSQL role (Database.user_arn)."""
    return statement(["rds-db:connect"], [db_user_arn], sid)


def objects(bucket_arn: pulumi.Input[str], *prefixes: str) -> list[pulumi.Output[str]]:
    """Object ARNs under the given key prefixes of one bucket."""
    return [pulumi.Output.concat(bucket_arn, "/", prefix, "*") for prefix in prefixes]


__all__ = [
    "ACTIONS_REQUIRING_ANY_RESOURCE",
    "AWS_NAMED_RESOURCES",
    "assume_role_policy",
    "aws_named",
    "db_connect_statement",
    "ecs_task_trust",
    "decrypt_via",
    "kms_statement",
    "objects",
    "policy_document",
    "secret_read_statements",
    "statement",
    "vpc_eni_statement",
]
