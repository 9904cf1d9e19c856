"""Dagster in AWS (infra/orchestration.py), built whole under Pulumi's mocks like tests/infra/test_program.py: no
public IP anywhere, the UI only through ECS Exec (the webserver admits nothing), each new role's actions and ARNs
exactly, the image tag following the code, and the instance storage on the private database with TLS and the
RDS-managed secret."""

from __future__ import annotations

import json

import pytest

from tests.infra.fake_dist import write_fake_image_context
from tests.infra.test_program import (
    ACCOUNT,
    BASE_CONFIG,
    DB_USER,
    REGION,
    Program,
    _policy,
    run_program,
    with_dist,
)


def _containers(program: Program, role: str) -> tuple[dict, dict]:
    _, definition, state = program.one("aws:ecs/taskDefinition:TaskDefinition", f"dagster-{role}")
    (container,) = json.loads(definition["containerDefinitions"])
    return definition | {"arn": state["arn"]}, container


def _grants(program: Program, role: str) -> dict[str, tuple[list, dict | None]]:
    """{action: (sorted resources, condition)} of the role's one inline policy."""
    _, inputs, _ = program.one("aws:iam/rolePolicy:RolePolicy", f"dagster-{role}-policy")
    granted = {}
    for statement in _policy(inputs)["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert action not in granted, f"{action} granted twice"
            granted[action] = (sorted(statement["Resource"]), statement.get("Condition"))
    return granted


def _group_id(program: Program, suffix: str) -> str:
    return program.one("aws:ec2/securityGroup:SecurityGroup", f"-{suffix}")[2]["id"]


def test_no_service_or_task_gets_a_public_ip_and_all_run_in_the_private_subnets(program):
    private = {state["id"] for _, _, state in program.of_type("aws:ec2/subnet:Subnet")}
    services = {name: inputs for name, inputs, _ in program.of_type("aws:ecs/service:Service")}
    assert sorted(services) == ["fraud-dev-dagster-daemon", "fraud-dev-dagster-review", "fraud-dev-dagster-webserver"]
    for name, service in services.items():
        network = service["networkConfiguration"]
        assert network["assignPublicIp"] is False, name
        assert set(network["subnets"]) == private, name
        assert service["launchType"] == "FARGATE" and service["desiredCount"] == 1
    assert services["fraud-dev-dagster-webserver"]["networkConfiguration"]["securityGroups"] == [
        _group_id(program, "webserver")
    ]
    assert services["fraud-dev-dagster-daemon"]["networkConfiguration"]["securityGroups"] == [
        _group_id(program, "dagster")
    ]
    # the review app admits nothing either: the port forward is its only way in
    assert services["fraud-dev-dagster-review"]["networkConfiguration"]["securityGroups"] == [
        _group_id(program, "webserver")
    ]
    assert services["fraud-dev-dagster-review"]["enableExecuteCommand"] is True
    # the daemon is a singleton: a deployment stops the old task before the new one starts
    assert services["fraud-dev-dagster-daemon"]["deploymentMaximumPercent"] == 100
    assert services["fraud-dev-dagster-daemon"]["deploymentMinimumHealthyPercent"] == 0
    for role in ("webserver", "daemon", "run"):
        definition, container = _containers(program, role)
        assert definition["networkMode"] == "awsvpc" and definition["requiresCompatibilities"] == ["FARGATE"]
        assert "portMappings" not in container  # nothing listens for anyone outside the task


def test_nothing_is_open_to_an_address_range_and_the_webserver_admits_nothing(program):
    for typ in (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
    ):
        for name, rule, _ in program.of_type(typ):
            assert rule.get("cidrIpv4") not in ("0.0.0.0/0",) and rule.get("cidrIpv6") not in ("::/0",), name
            assert "cidrIpv4" not in rule and "cidrIpv6" not in rule and "cidrBlocks" not in rule, name
    for name, group, _ in program.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert not group.get("ingress") and not group.get("egress"), name  # rules are separate resources
    webserver, daemon = _group_id(program, "webserver"), _group_id(program, "dagster")
    ingress = program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert not [name for name, rule, _ in ingress if rule["securityGroupId"] in (webserver, daemon)]
    # what they may reach: PostgreSQL, the interface endpoints, S3 (gateway prefix list); nothing else
    for group in (webserver, daemon):
        egress = [
            rule
            for _, rule, _ in program.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
            if rule["securityGroupId"] == group
        ]
        targets = {(r.get("referencedSecurityGroupId") or r.get("prefixListId"), r["fromPort"]) for r in egress}
        assert targets == {
            (_group_id(program, "database"), 5432),
            (_group_id(program, "endpoints"), 443),
            ("pl-63a5400a", 443),
        }
    # no load balancer, no bastion, no public address of any kind
    types = {t for t, *_ in program.mocks.resources}
    assert not {t for t in types if t.startswith(("aws:lb/", "aws:alb/", "aws:elb/", "aws:ec2/instance:"))}


def test_the_ui_is_reached_through_ecs_exec_and_ssm_port_forwarding_only(program):
    services = {name: inputs for name, inputs, _ in program.of_type("aws:ecs/service:Service")}
    assert services["fraud-dev-dagster-webserver"]["enableExecuteCommand"] is True
    assert services["fraud-dev-dagster-daemon"]["enableExecuteCommand"] is False
    _, container = _containers(program, "webserver")
    assert container["command"][:1] == ["dagster-webserver"] and "3000" in container["command"]
    assert container["linuxParameters"]["initProcessEnabled"] is True
    endpoints = {i["serviceName"] for _, i, _ in program.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    needed = ["ecr.api", "ecr.dkr", "logs", "sts", "secretsmanager", "ssmmessages", "ecs", "glue", "lambda"]
    assert {f"com.amazonaws.{REGION}.{service}" for service in needed} <= endpoints
    command = program.outputs["dagster_port_forward_command"]
    cluster = program.outputs["dagster_cluster_name"]
    assert f"--target ecs:{cluster}_${{TASK}}_${{RUNTIME}}" in command
    assert "--document-name AWS-StartPortForwardingSession" in command
    assert "--parameters portNumber=3000,localPortNumber=3000" in command
    assert program.outputs["dagster_webserver_service"] == "fraud-dev-dagster-webserver"


def test_each_dagster_role_lists_its_actions_and_arns_exactly(program):
    repository = program.one("aws:ecr/repository:Repository", "dagster")[2]["arn"]
    cluster = program.one("aws:ecs/cluster:Cluster", "dagster")[2]
    tasks = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster['name']}/*"
    key = program.of_type("aws:kms/key:Key")[0][2]["arn"]
    secret = program.outputs["db_secret_arn"]
    logs = sorted(
        state["arn"] + ":log-stream:*"
        for name, _, state in program.of_type("aws:cloudwatch/logGroup:LogGroup")
        if "dagster" in name
    )
    roles = {name: state["arn"] for name, _, state in program.of_type("aws:iam/role:Role")}
    buckets = {name.rsplit("-", 1)[-1]: state["arn"] for name, _, state in program.of_type("aws:s3/bucket:Bucket")}

    assert _grants(program, "execution") == {
        "ecr:GetAuthorizationToken": (["*"], None),
        "ecr:BatchCheckLayerAvailability": ([repository], None),
        "ecr:BatchGetImage": ([repository], None),
        "ecr:GetDownloadUrlForLayer": ([repository], None),
        "logs:CreateLogStream": (logs, None),
        "logs:PutLogEvents": (logs, None),
        "secretsmanager:GetSecretValue": ([secret], None),
        "kms:Decrypt": ([key], None),
    }  # exactly: nothing more
    assert len(logs) == 4

    exec_actions = ["CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel"]
    assert _grants(program, "webserver") == {f"ssmmessages:{a}": (["*"], None) for a in exec_actions} | {
        "ecs:DescribeTaskDefinition": (["*"], None),
        "ecs:DescribeTasks": ([tasks], None),
        "ecs:StopTask": ([tasks], None),
    }

    run_worker, execution = roles["fraud-dev-dagster"], roles["fraud-dev-dagster-execution"]
    assert _grants(program, "daemon") == {
        "ecs:RunTask": (
            [f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/fraud-dev-dagster-run:*"],
            {"ArnEquals": {"ecs:cluster": cluster["arn"]}},
        ),
        "ecs:TagResource": ([tasks], {"StringEquals": {"ecs:CreateAction": "RunTask"}}),
        "ecs:DescribeTasks": ([tasks], None),
        "ecs:StopTask": ([tasks], None),
        "ecs:DescribeTaskDefinition": (["*"], None),
        "ec2:DescribeNetworkInterfaces": (["*"], None),
        "iam:PassRole": (
            sorted([run_worker, execution]),
            {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
        "s3:ListBucket": (sorted([buckets["raw"], buckets["models"]]), None),
        "s3:GetObject": (sorted([f"{buckets['raw']}/transactions/*", f"{buckets['models']}/fraud-mlp/LATEST"]), None),
        "rds-db:connect": ([DB_USER + "fraud_writer"], None),  # the sensors
        "secretsmanager:GetSecretValue": ([secret], None),  # the migration step, as the schema's owner
        "kms:Decrypt": ([key], None),
        "kms:DescribeKey": ([key], None),
        "kms:GenerateDataKey": ([key], None),
    }

    # the review app: its port forward, the promoted model's version, its database role and its own signing secret
    assert _grants(program, "review") == {f"ssmmessages:{a}": (["*"], None) for a in exec_actions} | {
        "s3:GetObject": ([f"{buckets['models']}/fraud-mlp/LATEST"], None),
        "rds-db:connect": ([DB_USER + "fraud_review"], None),
        "secretsmanager:GetSecretValue": ([program.outputs["review_key_secret_arn"]], None),
        "kms:Decrypt": ([key], None),
        "kms:DescribeKey": ([key], None),
        "kms:GenerateDataKey": ([key], None),
    }


def test_tasks_run_as_their_roles_and_every_dagster_role_trusts_ecs_tasks_of_this_account_only(program):
    roles = {name: (inputs, state) for name, inputs, state in program.of_type("aws:iam/role:Role")}
    for name in ("dagster", "dagster-execution", "dagster-webserver", "dagster-daemon", "dagster-review"):
        inputs, _ = roles[f"fraud-dev-{name}"]
        assert json.loads(inputs["assumeRolePolicy"])["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        ], name
    execution = roles["fraud-dev-dagster-execution"][1]["arn"]
    expected = {
        "webserver": "dagster-webserver",
        "daemon": "dagster-daemon",
        "run": "dagster",
        "review": "dagster-review",
    }
    for role, task_role in expected.items():
        definition, _ = _containers(program, role)
        assert definition["executionRoleArn"] == execution
        assert definition["taskRoleArn"] == roles[f"fraud-dev-{task_role}"][1]["arn"], role
    assert program.outputs["dagster_role_arn"] == roles["fraud-dev-dagster"][1]["arn"]  # the run workers' role


def test_dagster_storage_is_the_private_database_over_verified_tls_with_the_managed_secret(program):
    db = program.one("aws:rds/instance:Instance", "postgres")
    assert db[1]["publiclyAccessible"] is False and db[1]["caCertIdentifier"] == "rds-ca-rsa2048-g1"
    secret = program.outputs["db_secret_arn"]
    for role in ("webserver", "daemon", "run", "review"):
        _, container = _containers(program, role)
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["DAGSTER_PG_HOST"] == db[2]["address"] == program.outputs["db_endpoint"]
        assert env["DAGSTER_PG_PORT"] == "5432" and env["DAGSTER_PG_DB"] == "dagster"
        assert env["PGSSLMODE"] == "verify-full"
        assert (
            env["DAGSTER_RUN_TASK_DEFINITION"] == "fraud-dev-dagster-run" and env["DAGSTER_RUN_CONTAINER_NAME"] == "run"
        )
        assert env["FRAUD_MODE"] == "aws"
        # the platform database: the task's own role over verify-full with the bundle the Dockerfile copies
        assert env["FRAUD_DB_ROLE"] == ("fraud_review" if role == "review" else "fraud_writer"), role
        assert env["FRAUD_DB_SSL_ROOT_CERT"] == "/etc/ssl/certs/rds/global-bundle.pem"
        # the master secret's ARN only where the migration step runs
        assert env.get("FRAUD_DB_SECRET_ARN") == (secret if role == "daemon" else None), role
        assert not [
            name for name in env if "PASSWORD" in name or name in ("FRAUD_DATABASE_URL", "FRAUD_CARD_TOKEN_KEY")
        ]
        assert "0" * 64 not in json.dumps(container)  # the card-token key's value is in no task definition
        assert container["secrets"] == [
            {"name": "DAGSTER_PG_USERNAME", "valueFrom": f"{secret}:username::"},
            {"name": "DAGSTER_PG_PASSWORD", "valueFrom": f"{secret}:password::"},
        ]


def test_logs_go_to_cloudwatch_with_retention_and_the_cluster_has_container_insights(program):
    _, cluster, _ = program.one("aws:ecs/cluster:Cluster", "dagster")
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]
    key = program.of_type("aws:kms/key:Key")[0][2]["arn"]
    for role in ("webserver", "daemon", "run", "review"):
        _, group, state = program.one("aws:cloudwatch/logGroup:LogGroup", f"dagster-{role}-logs")
        assert group["retentionInDays"] == 30 and group["kmsKeyId"] == key
        _, container = _containers(program, role)
        options = container["logConfiguration"]["options"]
        assert container["logConfiguration"]["logDriver"] == "awslogs" and options["awslogs-group"] == state["name"]


def test_the_image_is_built_from_the_dockerfile_into_an_immutable_scanned_encrypted_repository(program, dist):
    _, repository, state = program.one("aws:ecr/repository:Repository", "dagster")
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    key = program.of_type("aws:kms/key:Key")[0][2]["arn"]
    assert repository["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key}]
    _, image, image_state = program.one("docker-build:index:Image", "dagster-image")
    context = dist.parent / f"{dist.name}-image"
    assert image["context"]["location"] == str(context) and image["dockerfile"]["location"] == str(
        context / "Dockerfile"
    )
    assert image["push"] is True and image["platforms"] == ["linux/amd64"]
    (tag,) = image["tags"]
    assert tag.startswith(state["repositoryUrl"] + ":code-")
    assert image["registries"][0]["address"] == state["repositoryUrl"]
    # every task runs exactly the pushed image: tag and digest
    assert program.outputs["dagster_image_uri"] == image_state["ref"] == f"{tag}@{image_state['digest']}"
    for role in ("webserver", "daemon", "run"):
        assert _containers(program, role)[1]["image"] == image_state["ref"]


def test_a_code_change_gives_a_new_image_tag_and_new_task_definitions(dist, tmp_path):
    from orchestration import context_hash, image_tag

    context = write_fake_image_context(tmp_path / "context")

    def build() -> tuple[str, dict]:
        program = run_program(with_dist(dist, BASE_CONFIG | {"fraud-platform:imageContext": str(context)}))
        tag = program.one("docker-build:index:Image", "dagster-image")[1]["tags"][0].rsplit(":", 1)[1]
        return tag, {
            role: _containers(program, role)[0]["containerDefinitions"] for role in ("webserver", "daemon", "run")
        }

    tag, definitions = build()
    assert tag == image_tag(context) == f"code-{context_hash(context)[:16]}"
    assert build()[0] == tag  # same code, same tag: no new image, no deployment
    (context / "__pycache__").mkdir()
    (context / "fraud" / "cache.pyc").write_bytes(b"bytecode")  # caches are not code
    assert image_tag(context) == tag
    (context / "fraud" / "__init__.py").write_text('"""changed"""\n')
    new_tag, new_definitions = build()
    assert new_tag != tag
    assert all(new_definitions[role] != definitions[role] and new_tag in new_definitions[role] for role in definitions)
    (context / "Dockerfile").unlink()
    with pytest.raises(Exception, match="no Dockerfile in the image build context"):
        image_tag(context)


def test_outputs_name_the_cluster_services_image_and_way_in(program):
    for key in (
        "dagster_cluster_name",
        "dagster_webserver_service",
        "dagster_daemon_service",
        "dagster_image_uri",
        "dagster_port_forward_command",
    ):
        assert program.outputs[key], key
