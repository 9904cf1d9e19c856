"""The Pulumi program in infra/, built whole with pulumi.runtime.set_mocks: every resource it registers is
recorded with its inputs, then checked against the issue's security and wiring requirements. The program reads
a miniature dist/ (tests/infra/fake_dist.py) instead of the packaging step's real zips, which
tests/lambdas/test_package.py builds and checks."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from tests.infra.fake_dist import write_fake_ca_bundle, write_fake_dist, write_fake_image_context

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))  # as `pulumi up` runs the program: its folder is on the path
REGION, ACCOUNT = "us-east-1", "123456789012"
INTERVAL = 15
DB_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"  # what RDS names the instance in rds-db:connect ARNs
DB_USER = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DB_RESOURCE_ID}/"  # + the PostgreSQL role
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key

# ARN formats of the resource types the policies name (as AWS writes them)
ARN_FORMATS = {
    "aws:s3/bucket:Bucket": "arn:aws:s3:::{physical}",
    "aws:kms/key:Key": "arn:aws:kms:{region}:{account}:key/{physical}",
    "aws:glue/job:Job": "arn:aws:glue:{region}:{account}:job/{physical}",
    "aws:glue/connection:Connection": "arn:aws:glue:{region}:{account}:connection/{physical}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{physical}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{physical}",
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{physical}-AbCdEf",
    "aws:sesv2/emailIdentity:EmailIdentity": "arn:aws:ses:{region}:{account}:identity/{physical}",
    "aws:iam/role:Role": "arn:aws:iam::{account}:role/{physical}",
    "aws:cloudwatch/eventRule:EventRule": "arn:aws:events:{region}:{account}:rule/{physical}",
    "aws:ecr/repository:Repository": "arn:aws:ecr:{region}:{account}:repository/{physical}",
    "aws:ecs/cluster:Cluster": "arn:aws:ecs:{region}:{account}:cluster/{physical}",
    "aws:ecs/taskDefinition:TaskDefinition": "arn:aws:ecs:{region}:{account}:task-definition/{physical}:1",
    "aws:lambda/layerVersion:LayerVersion": "arn:aws:lambda:{region}:{account}:layer:{physical}:1",
    "aws:cloudtrail/trail:Trail": "arn:aws:cloudtrail:{region}:{account}:trail/{physical}",
}
NAME_INPUTS = {
    "aws:s3/bucket:Bucket": "bucket",
    "aws:sesv2/emailIdentity:EmailIdentity": "emailIdentity",
    "aws:ecs/taskDefinition:TaskDefinition": "family",
    "aws:lambda/layerVersion:LayerVersion": "layerName",
    "aws:rds/instance:Instance": "identifier",
}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: list[tuple[str, str, dict, dict]] = []  # (type, name, inputs, state)
        self.project_arns: set[str] = set()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        physical = inputs.get(NAME_INPUTS.get(args.typ, "name")) or f"{args.name}-0a1b2c"
        state = dict(inputs, name=inputs.get("name", physical))
        if args.typ in ARN_FORMATS:
            state["arn"] = ARN_FORMATS[args.typ].format(region=REGION, account=ACCOUNT, physical=physical)
            self.project_arns.add(state["arn"])
        if args.typ == "aws:s3/bucket:Bucket":
            state["bucket"] = physical
        if args.typ == "aws:kms/key:Key":
            state["keyId"] = physical
        if args.typ == "aws:rds/instance:Instance":
            secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-{physical}-XyZ123"
            self.project_arns.add(secret)
            self.project_arns.add(f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DB_RESOURCE_ID}")  # its login roles
            state |= {
                "address": f"{physical}.cabc.{REGION}.rds.amazonaws.com",
                "port": 5432,
                "masterUserSecrets": [{"secretArn": secret, "secretStatus": "active"}],
                "resourceId": DB_RESOURCE_ID,
            }
        if args.typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            state["prefixListId"] = "pl-63a5400a"
        if args.typ == "aws:ecr/repository:Repository":
            state |= {"repositoryUrl": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{physical}", "registryId": ACCOUNT}
        if args.typ == "aws:ecs/cluster:Cluster":  # the cluster's tasks and the task definition family are its own
            self.project_arns.add(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{physical}")
        if args.typ == "aws:ecs/taskDefinition:TaskDefinition":
            self.project_arns.add(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{physical}")
        if args.typ == "docker-build:index:Image":
            digest = "sha256:" + hashlib.sha256(json.dumps(inputs["tags"]).encode()).hexdigest()
            state |= {"digest": digest, "ref": f"{inputs['tags'][0]}@{digest}"}
        if args.typ == "aws:lambda/functionUrl:FunctionUrl":
            state["functionUrl"] = f"https://{physical}.lambda-url.{REGION}.on.aws/"
        resource_id = physical if args.typ == "aws:s3/bucket:Bucket" else f"{args.name}-id"
        self.resources.append((args.typ, args.name, inputs, state | {"id": resource_id}))
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "names": [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
                "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
                "id": REGION,
            }
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOnRva2Vu",
                "userName": "AWS",
                "password": "token",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": ACCOUNT,
            }
        raise AssertionError(f"the program made an unexpected call: {args.token}")


class Program:
    def __init__(self, mocks: RecordingMocks, outputs: dict):
        self.mocks, self.outputs = mocks, outputs

    def of_type(self, typ: str) -> list[tuple[str, dict, dict]]:
        return [(name, inputs, state) for t, name, inputs, state in self.mocks.resources if t == typ]

    def one(self, typ: str, name_part: str) -> tuple[str, dict, dict]:
        found = [r for r in self.of_type(typ) if name_part in r[0]]
        assert len(found) == 1, f"expected one {typ} named *{name_part}*, found {[r[0] for r in found]}"
        return found[0]


def run_program(config: dict[str, str], mocks: RecordingMocks | None = None) -> Program:
    mocks = mocks or RecordingMocks()
    secret = ["fraud-platform:cardTokenKey", "fraud-platform:reviewKey"]
    pulumi.runtime.set_all_config({"aws:region": REGION, **config}, secret)
    pulumi.runtime.set_mocks(mocks, project="fraud-platform", stack="dev", preview=False)
    resolved: dict = {}

    @pulumi.runtime.test
    def build():
        namespace = runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")
        outputs = namespace["outputs"]
        return pulumi.Output.all(**outputs).apply(resolved.update)

    overriding = os.environ.pop("FRAUD_DIST_DIR", None)  # it would win over the test's distDir
    try:
        build()
    finally:
        if overriding is not None:
            os.environ["FRAUD_DIST_DIR"] = overriding
    return Program(mocks, resolved)


BASE_CONFIG = {
    "fraud-platform:senderEmail": "alerts@fraud.example",
    "fraud-platform:cardTokenKey": "0" * 64,  # a test value; real stacks set it with `pulumi config set --secret`
    "fraud-platform:reviewKey": "1" * 64,  # likewise
    "fraud-platform:generatorIntervalMinutes": str(INTERVAL),
    # lambdaRuntimeCheck is left at its default, error: the program only builds if the zips load on their runtime
}


def with_dist(dist: Path, config: dict[str, str] = BASE_CONFIG) -> dict[str, str]:
    context = write_fake_image_context(dist.parent / f"{dist.name}-image")  # the Dagster image's build context
    ca_bundle = write_fake_ca_bundle(dist.parent / f"{dist.name}-rds-ca.pem")
    # all absolute: used as they are, not under the repository; a config may name another image context
    return (
        {"fraud-platform:imageContext": str(context), "fraud-platform:rdsCaBundle": str(ca_bundle)}
        | config
        | {"fraud-platform:distDir": str(dist)}
    )


def _unsecret(value):
    """A value the provider marks secret reaches the mocks wrapped in Pulumi's secret envelope."""
    is_envelope = isinstance(value, dict) and value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270"
    return value["value"] if is_envelope else value


def _policy(state_or_inputs: dict) -> dict:
    policy = state_or_inputs["policy"]
    return json.loads(policy) if isinstance(policy, str) else policy


def test_every_bucket_is_encrypted_versioned_private_and_tls_only(program):
    buckets = {state["bucket"]: state["arn"] for _, _, state in program.of_type("aws:s3/bucket:Bucket")}
    assert len(buckets) == 6  # raw, processed, models, reports, artifacts; audit (the trail's log files)
    key_arn = program.of_type("aws:kms/key:Key")[0][2]["arn"]

    def by_bucket(typ):
        return {inputs["bucket"]: inputs for _, inputs, _ in program.of_type(typ)}

    encryption = by_bucket("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    versioning = by_bucket("aws:s3/bucketVersioning:BucketVersioning")
    public = by_bucket("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    policies = by_bucket("aws:s3/bucketPolicy:BucketPolicy")
    for bucket, arn in buckets.items():
        rule = encryption[bucket]["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn}, bucket
        assert versioning[bucket]["versioningConfiguration"]["status"] == "Enabled", bucket
        assert all(
            public[bucket][flag] is True
            for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        ), bucket
        deny = [s for s in _policy(policies[bucket])["Statement"] if s["Effect"] == "Deny"]
        assert any(
            s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Principal"] == "*"
            and s["Action"] == "s3:*"
            and set(s["Resource"]) == {arn, f"{arn}/*"}
            for s in deny
        ), bucket


def test_raw_zone_has_lifecycle_rules(program):
    raw = program.one("aws:s3/bucket:Bucket", "-raw")[2]["bucket"]
    lifecycles = [
        inputs for _, inputs, _ in program.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ]
    assert [lc["bucket"] for lc in lifecycles] == [raw]
    rules = {rule["filter"].get("prefix", ""): rule for rule in lifecycles[0]["rules"]}
    assert rules["transactions/"]["expiration"]["days"] == 365 and rules["labels/"]["expiration"]["days"] == 365
    assert rules["quarantine/"]["expiration"]["days"] == 90


def test_database_is_encrypted_private_with_managed_password_backups_and_tls(program):
    _, db, _ = program.one("aws:rds/instance:Instance", "postgres")
    assert db["engine"] == "postgres" and db["engineVersion"].startswith("16")
    assert db["storageEncrypted"] is True and db["kmsKeyId"] == program.of_type("aws:kms/key:Key")[0][2]["arn"]
    assert db["publiclyAccessible"] is False
    assert db["manageMasterUserPassword"] is True and "password" not in db
    assert db["backupRetentionPeriod"] >= 1 and db["deletionProtection"] is True and db["skipFinalSnapshot"] is False
    params = {
        p["name"]: p["value"] for p in program.one("aws:rds/parameterGroup:ParameterGroup", "params")[1]["parameters"]
    }
    assert db["parameterGroupName"] == program.one("aws:rds/parameterGroup:ParameterGroup", "params")[2]["name"]
    assert params["rds.force_ssl"] == "1"
    private = {state["id"] for _, _, state in program.of_type("aws:ec2/subnet:Subnet")}
    subnet_group = program.one("aws:rds/subnetGroup:SubnetGroup", "subnets")
    assert db["dbSubnetGroupName"] == subnet_group[2]["name"] and set(subnet_group[1]["subnetIds"]) == private


def test_deletion_protection_and_extra_endpoints_follow_config(dist):
    program = run_program(
        with_dist(
            dist,
            BASE_CONFIG
            | {
                "fraud-platform:dbDeletionProtection": "false",
                "fraud-platform:extraInterfaceEndpoints": '["monitoring", "lambda", "logs"]',
            },
        )
    )
    assert program.one("aws:rds/instance:Instance", "postgres")[1]["deletionProtection"] is False
    services = sorted(
        i["serviceName"].removeprefix(f"com.amazonaws.{REGION}.")
        for _, i, _ in program.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    )
    # the Dagster tasks' endpoints always, an extra one once (lambda and logs are there already)
    dagster = ["ecr.api", "ecr.dkr", "ecs", "email", "glue", "lambda", "ssmmessages", "sts"]
    assert services == sorted(["logs", "monitoring", "s3", "secretsmanager", *dagster])


def test_network_has_no_internet_route_and_postgres_admits_only_the_four_clients(program):
    types = {t for t, *_ in program.mocks.resources}
    assert not types & {
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/route:Route",
        "aws:ec2/eip:Eip",
    }
    subnets = program.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2 and len({inputs["availabilityZone"] for _, inputs, _ in subnets}) == 2
    assert all(inputs["mapPublicIpOnLaunch"] is False for _, inputs, _ in subnets)
    services = {
        inputs["serviceName"]: inputs["vpcEndpointType"]
        for _, inputs, _ in program.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    assert services[f"com.amazonaws.{REGION}.s3"] == "Gateway"
    assert services[f"com.amazonaws.{REGION}.secretsmanager"] == "Interface"
    groups = {
        name.rsplit("-", 1)[-1]: state["id"]
        for name, _, state in program.of_type("aws:ec2/securityGroup:SecurityGroup")
    }
    ingress = [
        inputs
        for _, inputs, _ in program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if inputs["securityGroupId"] == groups["database"]
    ]
    clients = {groups["scorer"], groups["glue"], groups["dagster"], groups["webserver"]}
    assert {i["referencedSecurityGroupId"] for i in ingress} == clients
    assert all(i["fromPort"] == i["toPort"] == 5432 and "cidrIpv4" not in i for i in ingress)
    for _, inputs, _ in program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        assert "cidrIpv4" not in inputs and "cidrIpv6" not in inputs  # nothing is open to an address range


def _allow_statements(program: Program):
    for typ in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        for name, inputs, _ in program.of_type(typ):
            for statement in _policy(inputs)["Statement"]:
                if statement["Effect"] == "Allow":
                    yield name, statement


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def test_iam_policies_name_actions_and_stay_on_project_arns(program):
    from iam import ACTIONS_REQUIRING_ANY_RESOURCE, AWS_NAMED_RESOURCES

    named = {template.format(region=REGION, account=ACCOUNT) for template in AWS_NAMED_RESOURCES}
    statements = list(_allow_statements(program))
    # glue, generator, scorer, realtime, dagster (the run workers), Dagster's execution, webserver, daemon, review
    assert len({name for name, _ in statements}) == 9  # one policy per role
    for name, statement in statements:
        actions = _listed(statement["Action"])
        assert "NotAction" not in statement and "NotResource" not in statement, name
        assert all("*" not in action for action in actions), f"{name}: wildcard action in {actions}"
        for resource in _listed(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= set(ACTIONS_REQUIRING_ANY_RESOURCE), f"{name}: '*' for {actions}"
            else:
                owned = any(
                    resource == arn or resource.startswith((arn + "/", arn + ":")) for arn in program.mocks.project_arns
                )
                assert owned or resource in named, f"{name}: {resource} is not one of this project's ARNs"
    for _, inputs, _ in program.of_type("aws:iam/role:Role"):
        for statement in json.loads(inputs["assumeRolePolicy"])["Statement"]:
            assert statement["Principal"] not in ("*", {"AWS": "*"})


def test_each_role_has_its_own_policy_and_dagster_reaches_its_pieces(program):
    roles = {state["id"]: name for name, _, state in program.of_type("aws:iam/role:Role")}
    policy_roles = [inputs["role"] for _, inputs, _ in program.of_type("aws:iam/rolePolicy:RolePolicy")]
    assert sorted(policy_roles) == sorted(roles) and len(roles) == 9
    assert not program.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")  # no broad managed policies
    dagster = next(
        inputs
        for name, inputs, _ in program.of_type("aws:iam/rolePolicy:RolePolicy")
        if name.endswith("dagster-policy")
    )
    granted: dict[str, list] = {}
    for statement in _policy(dagster)["Statement"]:
        for action in _listed(statement["Action"]):
            granted.setdefault(action, []).extend(_listed(statement["Resource"]))
    job = program.one("aws:glue/job:Job", "process-transactions")[2]["arn"]
    functions = {name: state["arn"] for name, _, state in program.of_type("aws:lambda/function:Function")}
    assert granted["glue:StartJobRun"] == [job]
    assert granted["lambda:InvokeFunction"] == [functions["fraud-dev-generator"], functions["fraud-dev-scorer"]]
    assert granted["lambda:InvokeFunctionUrl"] == [functions["fraud-dev-realtime"]]
    # the review key that signs the alert emails' answer links; not the database's master secret
    assert granted["secretsmanager:GetSecretValue"] == [program.outputs["review_key_secret_arn"]]


def test_scorers_run_in_the_private_subnets_and_the_real_time_one_behind_an_iam_function_url(program):
    private = {s["id"] for _, _, s in program.of_type("aws:ec2/subnet:Subnet")}
    scorer_sg = program.one("aws:ec2/securityGroup:SecurityGroup", "-scorer")[2]["id"]
    _, batch, _ = program.one("aws:lambda/function:Function", "-scorer")
    _, realtime, state = program.one("aws:lambda/function:Function", "-realtime")
    for scorer in (batch, realtime):  # one zip, two functions: each path with its own role
        assert set(scorer["vpcConfig"]["subnetIds"]) == private
        assert scorer["vpcConfig"]["securityGroupIds"] == [scorer_sg]
        assert scorer["handler"] == "lambdas.scorer.handler.handler" and scorer["runtime"] == "python3.12"
        env = scorer["environment"]["variables"]
        assert env["FRAUD_MODE"] == "aws" and "FRAUD_DB_SECRET_ARN" not in env
        assert not any("PASSWORD" in key or key == "FRAUD_CARD_TOKEN_KEY" for key in env)
    assert batch["s3Key"] == realtime["s3Key"] and batch["role"] != realtime["role"]
    url = program.one("aws:lambda/functionUrl:FunctionUrl", "realtime-url")[1]
    assert url["authorizationType"] == "AWS_IAM" and url["functionName"] == state["name"]
    assert program.outputs["scorer_function_url"].startswith("https://fraud-dev-realtime-url")
    assert [name for name, *_ in program.of_type("aws:lambda/functionUrl:FunctionUrl")] == ["fraud-dev-realtime-url"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lambda_code_comes_from_the_packaging_step(program, dist):
    objects = {inputs["key"]: inputs for name, inputs, _ in program.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    for role in ("generator", "scorer"):
        _, function, _ = program.one("aws:lambda/function:Function", f"-{role}")
        zip_path = dist / f"lambda-{role}.zip"
        assert Path(objects[function["s3Key"]]["source"].path) == zip_path
        manifest = json.loads((dist / f"lambda-{role}.manifest.json").read_text())
        assert function["handler"] == manifest["function"]["handler"] == f"lambdas.{role}.handler.handler"
        assert function["runtime"] == manifest["function"]["runtime"] == "python3.12"
        # the zip's own hash drives updates: Lambda's CodeSha256 and the content-addressed S3 key
        code_sha256 = base64.b64encode(hashlib.sha256(zip_path.read_bytes()).digest()).decode()
        assert function["codeSha256"] == code_sha256
        assert function["s3Key"] == f"lambda/{role}/{code_sha256.replace('/', '_')[:22]}.zip"


def test_glue_script_and_library_come_from_the_packaging_step_and_the_job_uses_them(program, dist):
    _, script, _ = program.one("aws:s3/bucketObjectv2:BucketObjectv2", "etl-script")
    assert Path(script["source"].path) == dist / "process_transactions.py"  # the packaged copy of glue/'s script
    assert script["key"] == f"glue/scripts/{_sha256(dist / 'process_transactions.py')[:16]}/process_transactions.py"
    _, job, _ = program.one("aws:glue/job:Job", "process-transactions")
    artifacts = program.outputs["artifacts_bucket"]
    assert job["command"]["scriptLocation"] == f"s3://{artifacts}/{script['key']}"
    _, library, _ = program.one("aws:s3/bucketObjectv2:BucketObjectv2", "etl-library")
    assert Path(library["source"].path) == dist / "glue-fraud-lib.zip"
    assert library["key"] == f"glue/lib/{_sha256(dist / 'glue-fraud-lib.zip')[:16]}/glue-fraud-lib.zip"
    assert job["defaultArguments"]["--extra-py-files"] == f"s3://{artifacts}/{library['key']}"
    connection = program.one("aws:glue/connection:Connection", "network")[2]
    assert job["connections"] == [connection["name"]]
    # only where the workers run: no credentials (the job logs in as fraud_writer with an IAM token)
    assert connection["connectionType"] == "NETWORK" and not _unsecret(connection.get("connectionProperties"))
    # the script's settings come as --fraud_<setting> arguments (Glue has no job environment variables)
    arguments = job["defaultArguments"]
    assert arguments["--fraud_mode"] == "aws" and "--fraud_db_secret_arn" not in arguments
    assert arguments["--fraud_card_token_key_secret_arn"] == program.outputs["card_token_key_secret_arn"]
    from fraud.core.settings import Settings

    assert {k[len("--fraud_") :] for k in arguments if k.startswith("--fraud_")} <= set(Settings.model_fields)


def test_the_glue_job_installs_its_wheels_from_the_artifacts_bucket_with_no_index(program, dist):
    # no internet at run time: every module Glue installs is a wheel of dist/glue-wheels/ in the artifacts bucket
    _, job, _ = program.one("aws:glue/job:Job", "process-transactions")
    artifacts = program.outputs["artifacts_bucket"]
    arguments = job["defaultArguments"]
    modules = arguments["--additional-python-modules"].split(",")
    assert modules and all(module.startswith(f"s3://{artifacts}/glue/wheels/") for module in modules)
    assert "--no-index" in arguments["--python-modules-installer-option"].split()
    manifest = json.loads((dist / "glue-wheels.manifest.json").read_text())
    objects = {inputs["key"]: inputs for _, inputs, _ in program.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    expected = []
    for wheel in manifest["wheels"]:  # content-addressed: an unchanged wheel keeps its key and is not re-uploaded
        path = dist / wheel["path"]
        key = f"glue/wheels/{_sha256(path)[:16]}/{path.name}"
        assert Path(objects[key]["source"].path) == path and wheel["sha256"] == _sha256(path)
        expected.append(f"s3://{artifacts}/{key}")
    assert modules == expected
    # the job's role may read them
    _, policy, _ = program.one("aws:iam/rolePolicy:RolePolicy", "etl-policy")
    read_code = next(s for s in _policy(policy)["Statement"] if s.get("Sid") == "ReadCode")
    assert any(resource.endswith("/glue/wheels/*") for resource in read_code["Resource"])


def test_a_missing_glue_wheels_manifest_stops_the_program(tmp_path):
    dist = write_fake_dist(tmp_path / "dist")
    (dist / "glue-wheels.manifest.json").unlink()
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError) as raised:
        run_program(with_dist(dist), mocks)
    assert str(raised.value) == f"run `make package` first ({dist}/glue-wheels.manifest.json missing)"
    assert mocks.resources == []
    from artifacts import ArtifactsError, read_artifacts

    changed = write_fake_dist(tmp_path / "changed")  # a wheel replaced after `make package`
    wheel = next((changed / "glue-wheels").glob("*.whl"))
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ArtifactsError, match=f"{wheel} does not match glue-wheels.manifest.json"):
        read_artifacts(changed, REPO)


def test_generator_schedule_rate_comes_from_config(program):
    _, rule, rule_state = program.one("aws:cloudwatch/eventRule:EventRule", "generator-schedule")
    assert rule["scheduleExpression"] == f"rate({INTERVAL} minutes)"
    _, target, _ = program.one("aws:cloudwatch/eventTarget:EventTarget", "generator-target")
    generator = program.one("aws:lambda/function:Function", "-generator")[2]
    assert target["arn"] == generator["arn"] and json.loads(target["input"]) == {"now": True, "minutes": INTERVAL}
    _, permission, _ = program.one("aws:lambda/permission:Permission", "generator-from-schedule")
    assert permission["principal"] == "events.amazonaws.com" and permission["sourceArn"] == rule_state["arn"]


def test_ses_identity_is_the_configured_sender(program):
    _, identity, _ = program.one("aws:sesv2/emailIdentity:EmailIdentity", "sender")
    assert identity["emailIdentity"] == "alerts@fraud.example"


def test_outputs_are_complete_and_feed_fraud_aws_env(program):
    from fraud.app.aws_env import OUTPUT_SETTINGS, settings_from_outputs
    from fraud.core.settings import Settings

    required = {
        "region",
        "raw_bucket",
        "processed_bucket",
        "models_bucket",
        "reports_bucket",
        "glue_job_name",
        "generator_function_name",
        "scorer_function_name",
        "scorer_function_url",
        "db_secret_arn",
        "db_endpoint",
        "dagster_role_arn",
    }
    assert required | set(OUTPUT_SETTINGS) <= set(program.outputs)
    assert all(program.outputs[key] not in (None, "", []) for key in required)
    settings = settings_from_outputs(program.outputs)
    assert settings["FRAUD_RAW_BUCKET"] == program.one("aws:s3/bucket:Bucket", "-raw")[2]["bucket"]
    assert settings["FRAUD_SCORER_FUNCTION_NAME"] == program.one("aws:lambda/function:Function", "scorer")[2]["name"]
    assert set(settings) <= {f"FRAUD_{field.upper()}" for field in Settings.model_fields}


def test_incompatible_bundles_are_refused_unless_warned(tmp_path):
    from artifacts import read_artifacts
    from functions import check_runtime

    compatible = read_artifacts(write_fake_dist(tmp_path / "ok"), REPO)
    check_runtime([compatible.generator, compatible.scorer])
    incompatible = read_artifacts(write_fake_dist(tmp_path / "new-glibc", {"numpy/x.so": "2.35"}), REPO)
    with pytest.raises(
        pulumi.RunError, match="lambda-scorer: 1 shared objects need glibc > 2.34.*numpy/x.so needs 2.35"
    ):
        check_runtime([incompatible.generator, incompatible.scorer])
    check_runtime([incompatible.generator, incompatible.scorer], on_incompatible="warn")
    # and through the program: the default refuses before anything is registered
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError, match="lambdaRuntimeCheck=warn"):
        run_program(with_dist(tmp_path / "new-glibc"), mocks)
    assert mocks.resources == []


def test_a_missing_manifest_stops_the_program_with_one_message_before_anything_is_registered(tmp_path):
    dist = write_fake_dist(tmp_path / "dist")
    (dist / "lambda-scorer.manifest.json").unlink()
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError) as raised:
        run_program(with_dist(dist), mocks)
    assert str(raised.value) == f"run `make package` first ({dist}/lambda-scorer.manifest.json missing)"
    assert mocks.resources == []
    # nothing built at all: one message naming every manifest
    from artifacts import ArtifactsError, read_artifacts

    with pytest.raises(ArtifactsError) as raised:
        read_artifacts(REPO / "no-such-dist", REPO)
    assert str(raised.value) == (
        "run `make package` first (no-such-dist/lambda-generator.manifest.json missing; "
        "no-such-dist/lambda-scorer.manifest.json missing; no-such-dist/glue-fraud-lib.manifest.json missing; "
        "no-such-dist/glue-script.manifest.json missing; no-such-dist/glue-wheels.manifest.json missing)"
    )


def test_artifacts_that_no_longer_match_their_manifests_or_sources_are_refused(tmp_path):
    from artifacts import ArtifactsError, read_artifacts

    def problem(dist: Path, repo: Path = REPO) -> str:
        with pytest.raises(ArtifactsError, match=r"^run `make package` first \(") as raised:
            read_artifacts(dist, repo)
        return str(raised.value)

    missing_zip = write_fake_dist(tmp_path / "missing-zip")
    (missing_zip / "lambda-generator.zip").unlink()
    assert f"{missing_zip}/lambda-generator.zip missing" in problem(missing_zip)

    replaced = write_fake_dist(tmp_path / "replaced")  # a zip rebuilt or copied without its manifest
    (replaced / "glue-fraud-lib.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    assert f"{replaced}/glue-fraud-lib.zip does not match {replaced}/glue-fraud-lib.manifest.json" in problem(replaced)

    old_format = write_fake_dist(tmp_path / "old-format")
    manifest = json.loads((old_format / "glue-script.manifest.json").read_text())
    (old_format / "glue-script.manifest.json").write_text(json.dumps(manifest | {"format": 0}))
    assert "glue-script.manifest.json is not a format 1 glue-script manifest" in problem(old_format)

    host = write_fake_dist(tmp_path / "host")  # distDir pointed at dist/host: built for this machine, not Lambda
    manifest = json.loads((host / "lambda-scorer.manifest.json").read_text())
    manifest["function"]["target"] = "host"
    (host / "lambda-scorer.manifest.json").write_text(json.dumps(manifest))
    assert "lambda-scorer.zip is built for the host target, not the Lambda runtime" in problem(host)

    # a source edited after `make package`: the artifact is stale even though it matches its manifest
    repo = tmp_path / "repo"
    (repo / "glue").mkdir(parents=True)
    (repo / "glue" / "process_transactions.py").write_text("print('v1')\n")
    stale = write_fake_dist(repo / "dist")
    manifest = json.loads((stale / "glue-script.manifest.json").read_text())
    manifest["sources"] = {"glue/process_transactions.py": _sha256(repo / "glue" / "process_transactions.py")}
    (stale / "glue-script.manifest.json").write_text(json.dumps(manifest))
    assert read_artifacts(stale, repo).glue_script.path == stale / "process_transactions.py"
    (repo / "glue" / "process_transactions.py").write_text("print('v2')\n")
    assert problem(stale, repo) == (
        "run `make package` first (dist/process_transactions.py is stale: "
        "glue/process_transactions.py changed since it was built)"
    )


def test_the_dist_folder_comes_from_the_environment_then_the_stack_config(monkeypatch, tmp_path):
    from artifacts import DIST_ENV, dist_dir

    monkeypatch.delenv(DIST_ENV, raising=False)
    assert dist_dir(None, REPO) == REPO / "dist"
    assert dist_dir("build/dist", REPO) == REPO / "build" / "dist"
    monkeypatch.setenv(DIST_ENV, str(tmp_path))
    assert dist_dir("build/dist", REPO) == tmp_path


def test_the_program_never_imports_the_packaging_tool():
    """Packaging is a build step: nothing in infra/ imports fraud.app (the packager, the CLI), at any depth of
    the program's own modules."""
    for module in sorted(INFRA.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):  # `from fraud.app import x` and `from fraud import app`
                names = [f"{node.module}.{a.name}" for a in node.names]
            assert not [n for n in names if n == "fraud.app" or n.startswith("fraud.app.")], module.name


def test_fraud_aws_env_turns_the_outputs_into_settings(program, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fraud.app.cli import app
    from fraud.core.settings import Settings

    saved = tmp_path / "outputs.json"
    saved.write_text(json.dumps(program.outputs))  # what `pulumi stack output --json` prints
    result = CliRunner().invoke(app, ["aws-env", "--outputs", str(saved)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    for key in [k for k in os.environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(key)
    for line in lines:
        name, value = line.split("=", 1)
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.mode == "aws" and settings.aws_region == REGION
    assert (
        settings.raw_bucket == program.outputs["raw_bucket"]
        and settings.reports_bucket == program.outputs["reports_bucket"]
    )
    assert settings.glue_job_name == program.outputs["glue_job_name"]
    assert settings.db_host == program.outputs["db_endpoint"] and settings.db_port == 5432
    assert settings.db_secret_arn == program.outputs["db_secret_arn"]
    assert settings.scorer_function_name == program.outputs["scorer_function_name"]
    assert settings.mail_from == "alerts@fraud.example"
    assert "0" * 64 not in result.stdout  # the card-token key's value never appears, only its secret's ARN

    exported = CliRunner().invoke(app, ["aws-env", "--outputs", str(saved), "--export"]).stdout
    shell = subprocess.run(
        ["bash", "-c", exported + '\nprintf %s "$FRAUD_DB_SECRET_ARN"'], capture_output=True, text=True
    )
    assert shell.stdout == program.outputs["db_secret_arn"]  # `!` and all, through a real shell

    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({k: v for k, v in program.outputs.items() if k != "db_secret_arn"}))
    result = CliRunner().invoke(app, ["aws-env", "--outputs", str(incomplete)])
    assert result.exit_code == 2 and "db_secret_arn" in result.output
    # the Pulumi CLI is not installed on this machine: the command says what to do instead
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(app, ["aws-env", "--stack", "dev"])
    assert result.exit_code == 2 and "--outputs" in result.output
