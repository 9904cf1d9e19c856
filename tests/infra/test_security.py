"""The stack's security controls (issue 25), built whole under Pulumi's mocks like tests/infra/test_program.py: each
component's own database role over IAM authentication and verified TLS, the real-time scorer's narrow read of the
card-token key, the Dagster role's trust, the Glue security configuration, explicit encrypted log groups, the raw
zone's audit trail, and the VPC endpoint and bucket policies. What only AWS can prove is listed in infra/README.md."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.infra.test_program import (
    ACCOUNT,
    BASE_CONFIG,
    DB_USER,
    REGION,
    Program,
    RecordingMocks,
    _policy,
    run_program,
    with_dist,
)

IMAGE_CA, LAMBDA_CA, GLUE_CA = (
    "/etc/ssl/certs/rds/global-bundle.pem",
    "/opt/rds-ca/global-bundle.pem",
    "global-bundle.pem",
)


def _statements(program: Program, policy_name: str) -> list[dict]:
    _, inputs, _ = program.one("aws:iam/rolePolicy:RolePolicy", policy_name)
    return _policy(inputs)["Statement"]


def _granted(program: Program, policy_name: str, action: str) -> list[tuple[list, dict | None]]:
    """(resources, condition) of every statement of a role's policy that allows `action`."""
    return [
        (statement["Resource"], statement.get("Condition"))
        for statement in _statements(program, policy_name)
        if action in statement["Action"]
    ]


def _container_env(program: Program, role: str) -> dict[str, str]:
    _, definition, _ = program.one("aws:ecs/taskDefinition:TaskDefinition", f"dagster-{role}")
    (container,) = json.loads(definition["containerDefinitions"])
    return {e["name"]: e["value"] for e in container["environment"]}


def _key_arn(program: Program) -> str:
    (key,) = program.of_type("aws:kms/key:Key")
    return key[2]["arn"]


# policy → the PostgreSQL role its component logs in as (None: no database login at all)
DATABASE_LOGINS = {
    "fraud-dev-etl-policy": "fraud_writer",
    "fraud-dev-generator-policy": None,
    "fraud-dev-scorer-policy": "fraud_writer",  # batch scoring writes fraud_score
    "fraud-dev-realtime-policy": "fraud_realtime",
    "fraud-dev-dagster-policy": "fraud_writer",  # the run workers
    "fraud-dev-dagster-daemon-policy": "fraud_writer",  # the sensors
    "fraud-dev-dagster-webserver-policy": None,  # runs no asset or sensor
    "fraud-dev-dagster-review-policy": "fraud_review",
    "fraud-dev-dagster-execution-policy": None,  # the ECS agent
}


def test_each_component_logs_in_as_its_own_role_with_iam_authentication(program):
    _, db, _ = program.one("aws:rds/instance:Instance", "postgres")
    assert db["iamDatabaseAuthenticationEnabled"] is True
    policies = sorted(name for name, *_ in program.of_type("aws:iam/rolePolicy:RolePolicy"))
    assert policies == sorted(DATABASE_LOGINS)
    for policy, role in DATABASE_LOGINS.items():
        expected = [([DB_USER + role], None)] if role else []
        assert _granted(program, policy, "rds-db:connect") == expected, policy
    from fraud.db.roles import COMPONENT_ROLES  # the roles the migrations create

    assert {role for role in DATABASE_LOGINS.values() if role} <= {role.value for role in COMPONENT_ROLES}

    # and each one's settings name that role
    functions = {name: inputs for name, inputs, _ in program.of_type("aws:lambda/function:Function")}
    assert functions["fraud-dev-scorer"]["environment"]["variables"]["FRAUD_DB_ROLE"] == "fraud_writer"
    assert functions["fraud-dev-realtime"]["environment"]["variables"]["FRAUD_DB_ROLE"] == "fraud_realtime"
    assert "FRAUD_DB_ROLE" not in functions["fraud-dev-generator"]["environment"]["variables"]
    arguments = program.one("aws:glue/job:Job", "process-transactions")[1]["defaultArguments"]
    assert arguments["--fraud_db_role"] == "fraud_writer"
    assert {role: _container_env(program, role)["FRAUD_DB_ROLE"] for role in ("daemon", "run", "review")} == {
        "daemon": "fraud_writer",
        "run": "fraud_writer",
        "review": "fraud_review",
    }


def test_only_the_migration_step_can_read_the_master_secret(program):
    secret = program.outputs["db_secret_arn"]
    readers = sorted(
        name
        for name in DATABASE_LOGINS
        if any(secret in resources for resources, _ in _granted(program, name, "secretsmanager:GetSecretValue"))
    )
    # the daemon runs the migrations; the execution role injects Dagster's own storage credentials (ECS secrets)
    assert readers == ["fraud-dev-dagster-daemon-policy", "fraud-dev-dagster-execution-policy"]
    holders = [
        role
        for role in ("webserver", "daemon", "run", "review")
        if "FRAUD_DB_SECRET_ARN" in _container_env(program, role)
    ]
    assert holders == ["daemon"]
    for _, function, _ in program.of_type("aws:lambda/function:Function"):
        assert "FRAUD_DB_SECRET_ARN" not in function["environment"]["variables"]
    arguments = program.one("aws:glue/job:Job", "process-transactions")[1]["defaultArguments"]
    assert "--fraud_db_secret_arn" not in arguments


def test_the_real_time_scorer_reads_the_card_token_key_through_its_own_narrow_grant(program):
    _, realtime, _ = program.one("aws:lambda/function:Function", "-realtime")
    secret = program.outputs["card_token_key_secret_arn"]
    assert realtime["environment"]["variables"]["FRAUD_CARD_TOKEN_KEY_SECRET_ARN"] == secret
    statements = _statements(program, "realtime-policy")
    secrets = [s for s in statements if any(a.startswith("secretsmanager:") for a in s["Action"])]
    assert secrets == [
        {"Sid": "CardTokenKey", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [secret]}
    ]
    # the key decrypts only through Secrets Manager (for the secret) and S3 (the models bucket), never directly
    kms = [s for s in statements if any(a.startswith("kms:") for a in s["Action"])]
    assert sorted(((s["Action"], s["Resource"], s.get("Condition")) for s in kms), key=json.dumps) == [
        (["kms:Decrypt"], [_key_arn(program)], {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}),
        (
            ["kms:Decrypt"],
            [_key_arn(program)],
            {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}},
        ),
    ]
    # the batch scorer, which writes, has no business with the key
    _, batch, _ = program.one("aws:lambda/function:Function", "-scorer")
    assert "FRAUD_CARD_TOKEN_KEY_SECRET_ARN" not in batch["environment"]["variables"]
    assert _granted(program, "fraud-dev-scorer-policy", "secretsmanager:GetSecretValue") == []


ECS_TASKS = {
    "Effect": "Allow",
    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
    "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
}


def test_the_dagster_role_trusts_the_stack_s_ecs_tasks_and_a_configured_principal_never_the_root(program, dist):
    trusts = {name: json.loads(inputs["assumeRolePolicy"]) for name, inputs, _ in program.of_type("aws:iam/role:Role")}
    assert trusts["fraud-dev-dagster"]["Statement"] == [ECS_TASKS]  # by default: the run-worker tasks only
    run = program.one("aws:ecs/taskDefinition:TaskDefinition", "dagster-run")[1]
    assert run["taskRoleArn"] == program.outputs["dagster_role_arn"]
    for name, trust in trusts.items():  # no role of the stack trusts an account
        for statement in trust["Statement"]:
            principal = statement["Principal"].get("AWS", "")
            assert not principal.endswith(":root") and principal not in ("*", ACCOUNT), name

    person = f"arn:aws:iam::{ACCOUNT}:role/fraud-operators"
    configured = run_program(with_dist(dist, BASE_CONFIG | {"fraud-platform:dagsterPrincipalArn": person}))
    role = next(i for n, i, _ in configured.of_type("aws:iam/role:Role") if n == "fraud-dev-dagster")
    assert json.loads(role["assumeRolePolicy"])["Statement"] == [
        ECS_TASKS,
        {"Effect": "Allow", "Principal": {"AWS": person}, "Action": "sts:AssumeRole"},
    ]
    for root in (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT, "*", f"arn:aws:iam::{ACCOUNT}:role/*"):
        with pytest.raises(Exception, match="never an account root"):
            run_program(with_dist(dist, BASE_CONFIG | {"fraud-platform:dagsterPrincipalArn": root}))


def test_the_glue_job_runs_under_a_security_configuration_with_the_project_key(program):
    key = _key_arn(program)
    _, configuration, state = program.one("aws:glue/securityConfiguration:SecurityConfiguration", "etl-security")
    assert configuration["encryptionConfiguration"] == {
        "s3Encryption": {"s3EncryptionMode": "SSE-KMS", "kmsKeyArn": key},
        "cloudwatchEncryption": {"cloudwatchEncryptionMode": "SSE-KMS", "kmsKeyArn": key},
        "jobBookmarksEncryption": {"jobBookmarksEncryptionMode": "CSE-KMS", "kmsKeyArn": key},
    }
    _, job, _ = program.one("aws:glue/job:Job", "process-transactions")
    assert job["securityConfiguration"] == state["name"]
    # its log groups, named as Glue names them under a security configuration, exist already
    _, role, _ = program.one("aws:iam/role:Role", "etl-role")
    groups = {inputs["name"] for _, inputs, _ in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    base = f"/aws-glue/jobs/{state['name']}-role/{role['name']}"
    assert {f"{base}/output", f"{base}/error", f"{base}/logs-v2"} <= groups
    assert job["defaultArguments"]["--continuous-log-logGroup"] == f"{base}/logs-v2"


def test_every_log_group_is_explicit_encrypted_with_the_project_key_and_kept_for_a_while(program):
    key = _key_arn(program)
    groups = {inputs["name"]: inputs for _, inputs, _ in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for name, group in groups.items():
        assert group["kmsKeyId"] == key and group["retentionInDays"] == 30, name
    _, db, db_state = program.one("aws:rds/instance:Instance", "postgres")
    assert db["enabledCloudwatchLogsExports"] == ["postgresql"]
    functions = [state["name"] for _, _, state in program.of_type("aws:lambda/function:Function")]
    assert sorted(functions) == ["fraud-dev-generator", "fraud-dev-realtime", "fraud-dev-scorer"]
    expected = {f"/aws/lambda/{f}" for f in functions} | {
        f"/ecs/fraud-dev/dagster-{role}" for role in ("webserver", "daemon", "run", "review")
    }
    expected.add(f"/aws/rds/instance/{db_state['name']}/postgresql")  # where RDS exports the server log
    assert expected <= set(groups) and len(groups) == len(expected) + 3  # and Glue's three (above)
    for _, function, _ in program.of_type("aws:lambda/function:Function"):
        assert function["loggingConfig"]["logGroup"] in groups
    # nobody may create a log group: none can appear implicitly, unencrypted and kept forever
    for name in DATABASE_LOGINS:
        assert _granted(program, name, "logs:CreateLogGroup") == [], name

    # the key lets CloudWatch Logs of this region use it, for this account's log groups only
    _, key_inputs, _ = program.one("aws:kms/key:Key", "key")
    statements = {s["Sid"]: s for s in json.loads(key_inputs["policy"])["Statement"]}
    logs = statements["CloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}
    }
    assert {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"} <= set(logs["Action"])


def test_object_level_calls_on_the_raw_zone_are_recorded_by_cloudtrail_into_a_private_bucket(program):
    buckets = {name.rsplit("-", 1)[-1]: state for name, _, state in program.of_type("aws:s3/bucket:Bucket")}
    _, trail, trail_state = program.one("aws:cloudtrail/trail:Trail", "raw-data-events")
    assert trail["s3BucketName"] == buckets["audit"]["id"] and trail["kmsKeyId"] == _key_arn(program)
    assert trail["enableLogFileValidation"] is True
    assert trail["eventSelectors"] == [
        {
            "readWriteType": "All",
            "includeManagementEvents": False,
            "dataResources": [{"type": "AWS::S3::Object", "values": [buckets["raw"]["arn"] + "/"]}],
        }
    ]
    # CloudTrail may write this trail's files into the audit bucket and nothing else (private, encrypted, TLS:
    # test_every_bucket_is_encrypted_versioned_private_and_tls_only)
    policies = {
        inputs["bucket"]: _policy(inputs) for _, inputs, _ in program.of_type("aws:s3/bucketPolicy:BucketPolicy")
    }
    allowed = [s for s in policies[buckets["audit"]["id"]]["Statement"] if s["Effect"] == "Allow"]
    assert {s["Principal"]["Service"] for s in allowed} == {"cloudtrail.amazonaws.com"}
    assert all(s["Condition"]["StringEquals"]["aws:SourceArn"] == trail_state["arn"] for s in allowed)
    _, key_inputs, _ = program.one("aws:kms/key:Key", "key")
    cloudtrail = next(s for s in json.loads(key_inputs["policy"])["Statement"] if s["Sid"] == "CloudTrailOfThisStack")
    assert cloudtrail["Condition"]["StringEquals"] == {"aws:SourceArn": trail_state["arn"]}


def _endpoint_policy(program: Program, service: str) -> list[dict]:
    endpoint = program.one("aws:ec2/vpcEndpoint:VpcEndpoint", f"fraud-dev-{service}")[2]["id"]
    (policy,) = [
        json.loads(inputs["policy"])
        for _, inputs, _ in program.of_type("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")
        if inputs["vpcEndpointId"] == endpoint
    ]
    return policy["Statement"]


def test_the_vpc_endpoints_carry_only_the_project_s_buckets_secrets_and_functions(program):
    data = ("raw", "processed", "models", "reports", "artifacts")
    buckets = {name.rsplit("-", 1)[-1]: state["arn"] for name, _, state in program.of_type("aws:s3/bucket:Bucket")}
    s3 = _endpoint_policy(program, "s3")
    assert all(s["Effect"] == "Allow" for s in s3)
    resources = sorted(r for s in s3 for r in s["Resource"])
    layers = f"arn:aws:s3:::prod-{REGION}-starport-layer-bucket/*"  # ECR's image layers (the Dagster image pull)
    assert resources == sorted([*(buckets[z] for z in data), *(buckets[z] + "/*" for z in data), layers])
    assert next(s for s in s3 if layers in s["Resource"])["Action"] == "s3:GetObject"

    (secrets,) = _endpoint_policy(program, "secretsmanager")
    outputs = program.outputs
    assert sorted(secrets["Resource"]) == sorted(
        [outputs["db_secret_arn"], outputs["card_token_key_secret_arn"], outputs["review_key_secret_arn"]]
    )
    (functions,) = _endpoint_policy(program, "lambda")
    arns = [state["arn"] for _, _, state in program.of_type("aws:lambda/function:Function")]
    assert sorted(functions["Resource"]) == sorted([*arns, *(arn + ":*" for arn in arns)])
    assert functions["Action"] == ["lambda:InvokeFunction"]
    # the other services' endpoints keep AWS's default policy (README.md: no resource scoping there)
    limited = {i["vpcEndpointId"] for _, i, _ in program.of_type("aws:ec2/vpcEndpointPolicy:VpcEndpointPolicy")}
    assert len(limited) == 3


def test_roles_of_components_in_the_vpc_can_reach_the_data_buckets_only_through_the_endpoint(program):
    endpoint = program.one("aws:ec2/vpcEndpoint:VpcEndpoint", "fraud-dev-s3")[2]["id"]
    roles = {name: state["arn"] for name, _, state in program.of_type("aws:iam/role:Role")}
    in_vpc = sorted(
        roles[f"fraud-dev-{r}"]
        for r in ("scorer-role", "realtime-role", "dagster", "dagster-daemon", "dagster-webserver", "dagster-review")
    )
    buckets = {name.rsplit("-", 1)[-1]: state for name, _, state in program.of_type("aws:s3/bucket:Bucket")}
    policies = {
        inputs["bucket"]: _policy(inputs) for _, inputs, _ in program.of_type("aws:s3/bucketPolicy:BucketPolicy")
    }
    for zone, bucket in buckets.items():
        denies = [s for s in policies[bucket["id"]]["Statement"] if s["Sid"] == "InVpcRolesOnlyThroughTheEndpoint"]
        if zone in ("artifacts", "audit"):  # the operator's deployment writes and Lambda reads the code there
            assert denies == [], zone
            continue
        (deny,) = denies
        assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
        assert sorted(deny["Resource"]) == sorted([bucket["arn"], bucket["arn"] + "/*"])
        assert deny["Condition"]["StringNotEquals"] == {"aws:SourceVpce": endpoint}
        assert sorted(deny["Condition"]["ArnEquals"]["aws:PrincipalArn"]) == in_vpc, zone
    # never the generator (outside the VPC: it writes the raw zone over S3's public endpoint) nor Glue (its service
    # fetches the job's code and wheels itself): such a deny would break them
    assert roles["fraud-dev-generator-role"] not in in_vpc and roles["fraud-dev-etl-role"] not in in_vpc


def test_database_connections_verify_the_server_with_the_ca_bundle_each_artifact_carries(program, dist):
    _, params, _ = program.one("aws:rds/parameterGroup:ParameterGroup", "params")
    assert {"name": "rds.force_ssl", "value": "1"} in params["parameters"]  # the server refuses plaintext
    bundle = dist.parent / f"{dist.name}-rds-ca.pem"
    # the scorers: a layer holding the bundle at the path their settings name
    _, layer, layer_state = program.one("aws:lambda/layerVersion:LayerVersion", "rds-ca")
    assert {path: asset.path for path, asset in layer["code"].assets.items()} == {
        LAMBDA_CA.removeprefix("/opt/"): str(bundle)
    }
    for role in ("scorer", "realtime"):
        _, function, _ = program.one("aws:lambda/function:Function", f"-{role}")
        assert function["layers"] == [layer_state["arn"]]
        assert function["environment"]["variables"]["FRAUD_DB_SSL_ROOT_CERT"] == LAMBDA_CA
    # Glue: the bundle uploaded and copied into the script's working directory
    _, job, _ = program.one("aws:glue/job:Job", "process-transactions")
    _, uploaded, _ = program.one("aws:s3/bucketObjectv2:BucketObjectv2", "etl-rds-ca")
    assert uploaded["source"].path == str(bundle)
    assert job["defaultArguments"]["--extra-files"] == f"s3://{program.outputs['artifacts_bucket']}/{uploaded['key']}"
    assert job["defaultArguments"]["--fraud_db_ssl_root_cert"] == GLUE_CA
    # the Dagster tasks: the bundle the Dockerfile copies
    for role in ("daemon", "run", "review"):
        assert _container_env(program, role)["FRAUD_DB_SSL_ROOT_CERT"] == IMAGE_CA
    from database import CA_BUNDLE_IN_IMAGE

    from tests.infra.test_program import REPO

    dockerfile = (REPO / "Dockerfile").read_text()
    directory = CA_BUNDLE_IN_IMAGE.rsplit("/", 1)[0]
    assert f"COPY deploy/rds-ca/ {directory}/" in dockerfile


def test_a_missing_ca_bundle_stops_the_program_before_anything_is_registered(dist, tmp_path):
    mocks = RecordingMocks()
    missing = tmp_path / "global-bundle.pem"
    with pytest.raises(pulumi.RunError, match="download the RDS CA bundle first"):
        run_program(with_dist(dist) | {"fraud-platform:rdsCaBundle": str(missing)}, mocks)
    missing.write_text("<html>not found</html>")  # a failed download
    with pytest.raises(pulumi.RunError, match="holds no certificate"):
        run_program(with_dist(dist) | {"fraud-platform:rdsCaBundle": str(missing)}, mocks)
    assert mocks.resources == []
