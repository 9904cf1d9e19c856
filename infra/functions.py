"""Functions: the generator Lambda on an EventBridge schedule; the batch scorer Lambda Dagster invokes
(`fraud_flags`); the real-time scorer Lambda behind a function URL with IAM auth. Both scorers run in the private
subnets from the same zip, each with the database role its path needs: the batch scorer writes scores
(`fraud_writer`), the real-time one only reads and records its decisions (`fraud_realtime`) and alone reads the
card-token key, which it needs to tokenise the card numbers it is sent. All run the zips `make package` builds (read
through artifacts.py), uploaded to the artifacts bucket (they exceed the 50 MB limit of a direct upload), each
with its own role and log group (explicit, encrypted with the project key, with retention). The scorers get the
RDS CA bundle from a layer (`/opt/rds-ca/global-bundle.pem`) and verify the database's certificate with it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from artifacts import Artifact, Bundle
from database import CA_BUNDLE_IN_LAMBDA
from iam import (
    assume_role_policy,
    db_connect_statement,
    decrypt_via,
    kms_statement,
    objects,
    policy_document,
    secret_read_statements,
    statement,
    vpc_eni_statement,
)
from logs import log_group


@dataclass
class FunctionsArgs:
    generator: Bundle
    scorer: Bundle
    ca_bundle: Artifact  # the RDS CA bundle (artifacts.read_ca_bundle), shipped as a layer
    artifacts_bucket: aws.s3.Bucket
    raw_bucket: aws.s3.Bucket
    models_bucket: aws.s3.Bucket
    kms_key_arn: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    scorer_security_group_id: pulumi.Input[str]
    card_token_secret_arn: pulumi.Input[str]
    scorer_db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_writer (Database.user_arn)
    realtime_db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_realtime
    settings_env: dict[str, pulumi.Input[str]]  # FRAUD_* settings (no secrets: ARNs and names only)
    scorer_env: dict[str, pulumi.Input[str]]  # and the batch scorer's database login (role, CA bundle)
    realtime_env: dict[str, pulumi.Input[str]]  # and the real-time scorer's (role, CA bundle, card-token key ARN)
    generator_interval_minutes: int
    generator_memory_mb: int
    scorer_memory_mb: int
    log_retention_days: int
    region: str


class Functions(pulumi.ComponentResource):
    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:Functions", name, None, opts)
        if not 1 <= args.generator_interval_minutes <= 1440:
            raise ValueError("generatorIntervalMinutes must be between 1 and 1440")
        self._name, self._args = name, args
        self.roles: dict[str, aws.iam.Role] = {}
        child = pulumi.ResourceOptions(parent=self)

        self.generator, _ = self._function(
            "generator",
            args.generator,
            self._code("generator", args.generator),
            args.generator_memory_mb,
            300,
            [
                statement(
                    ["s3:GetObject", "s3:PutObject"],
                    objects(args.raw_bucket.arn, "transactions/", "labels/", "simulator/"),
                    "WriteRawBatches",
                ),
                statement(["s3:ListBucket"], [args.raw_bucket.arn], "ListRaw"),
                kms_statement(args.kms_key_arn),
            ],
            env=args.settings_env,
        )

        # the scorers' database login verifies the server against this bundle (CA_BUNDLE_IN_LAMBDA)
        self.ca_layer = aws.lambda_.LayerVersion(
            f"{name}-rds-ca",
            layer_name=f"{name}-rds-ca",
            description="RDS CA bundle (deploy/rds-ca/global-bundle.pem)",
            code=pulumi.AssetArchive(
                {CA_BUNDLE_IN_LAMBDA.removeprefix("/opt/"): pulumi.FileAsset(str(args.ca_bundle.path))}
            ),
            compatible_runtimes=[args.scorer.runtime],
            compatible_architectures=["x86_64"],
            opts=child,
        )
        scorer_code = self._code("scorer", args.scorer)
        models = [
            statement(["s3:GetObject"], objects(args.models_bucket.arn, "fraud-mlp/"), "ReadModels"),
            statement(["s3:ListBucket"], [args.models_bucket.arn], "ListModels"),
            decrypt_via(args.kms_key_arn, "s3", args.region, "ModelsKey"),  # the models bucket's SSE-KMS
            vpc_eni_statement("VpcNetworkInterfaces"),
        ]
        in_vpc = {"subnet_ids": args.private_subnet_ids, "security_group_ids": [args.scorer_security_group_id]}
        self.scorer, _ = self._function(
            "scorer",
            args.scorer,
            scorer_code,
            args.scorer_memory_mb,
            900,
            [*models, db_connect_statement(args.scorer_db_user_arn)],
            env=args.settings_env | args.scorer_env,
            vpc=in_vpc,
            layers=[self.ca_layer.arn],
        )
        self.realtime, _ = self._function(
            "realtime",
            args.scorer,
            scorer_code,
            args.scorer_memory_mb,
            60,  # one transaction per request (a cold start loads the model)
            [
                *models,
                db_connect_statement(args.realtime_db_user_arn),
                *secret_read_statements(args.card_token_secret_arn, args.kms_key_arn, args.region, "CardTokenKey"),
            ],
            env=args.settings_env | args.realtime_env,
            vpc=in_vpc,
            layers=[self.ca_layer.arn],
        )

        # IAM auth: only principals whose own policy allows lambda:InvokeFunctionUrl on it may call it
        self.scorer_url = aws.lambda_.FunctionUrl(
            f"{name}-realtime-url",
            function_name=self.realtime.name,
            authorization_type="AWS_IAM",
            opts=pulumi.ResourceOptions(parent=self.realtime),
        )

        minutes = args.generator_interval_minutes
        self.schedule = aws.cloudwatch.EventRule(
            f"{name}-generator-schedule",
            description="simulated card traffic into the raw zone",
            schedule_expression=f"rate({minutes} minute{'s' if minutes > 1 else ''})",
            opts=pulumi.ResourceOptions(parent=self.generator),
        )
        aws.cloudwatch.EventTarget(
            f"{name}-generator-target",
            rule=self.schedule.name,
            arn=self.generator.arn,
            input=json.dumps({"now": True, "minutes": minutes}),  # the window just ended
            opts=pulumi.ResourceOptions(parent=self.schedule),
        )
        aws.lambda_.Permission(
            f"{name}-generator-from-schedule",
            action="lambda:InvokeFunction",
            function=self.generator.name,
            principal="events.amazonaws.com",
            source_arn=self.schedule.arn,
            opts=pulumi.ResourceOptions(parent=self.schedule),
        )
        self.register_outputs(
            {
                "generator_name": self.generator.name,
                "scorer_name": self.scorer.name,
                "realtime_name": self.realtime.name,
                "scorer_url": self.scorer_url.function_url,
            }
        )

    def _code(self, role: str, bundle: Bundle) -> aws.s3.BucketObjectv2:
        return aws.s3.BucketObjectv2(
            f"{self._name}-{role}-code",
            bucket=self._args.artifacts_bucket.id,
            key=f"lambda/{role}/{bundle.code_sha256.replace('/', '_')[:22]}.zip",
            source=pulumi.FileAsset(str(bundle.path)),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _function(
        self,
        role: str,
        bundle: Bundle,
        code: aws.s3.BucketObjectv2,
        memory_mb: int,
        timeout_s: int,
        permissions: list[dict],
        env: dict[str, pulumi.Input[str]],
        vpc: dict | None = None,
        layers: list[pulumi.Input[str]] | None = None,
    ) -> tuple[aws.lambda_.Function, aws.iam.Role]:
        name, args = f"{self._name}-{role}", self._args
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}"  # fixed, so the log group can exist (encrypted, with retention) before the function
        logs = log_group(
            f"{name}-logs", f"/aws/lambda/{function_name}", args.kms_key_arn, args.log_retention_days, child
        )
        execution_role = aws.iam.Role(
            f"{name}-role", assume_role_policy=assume_role_policy("lambda.amazonaws.com"), opts=child
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=execution_role.id,
            policy=policy_document(
                [
                    *permissions,
                    statement(
                        ["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(logs.arn, ":*")], "OwnLogs"
                    ),
                ]
            ),
            opts=pulumi.ResourceOptions(parent=execution_role),
        )
        function = aws.lambda_.Function(
            name,
            name=function_name,
            role=execution_role.arn,
            runtime=bundle.runtime,
            handler=bundle.handler,
            architectures=["x86_64"],
            s3_bucket=args.artifacts_bucket.id,
            s3_key=code.key,
            code_sha256=bundle.code_sha256,
            memory_size=memory_mb,
            timeout=timeout_s,
            environment={"variables": env},
            kms_key_arn=args.kms_key_arn,
            vpc_config=vpc,
            layers=layers,
            logging_config={"log_format": "JSON", "log_group": logs.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, logs]),
        )
        self.roles[role] = execution_role
        return function, execution_role


def check_runtime(bundles: list[Bundle], on_incompatible: str = "error") -> None:
    """A bundle whose shared objects need a newer glibc than the Lambda runtime's OS would fail every invocation
    at import time: refuse it ("error"), or only warn ("warn")."""
    if on_incompatible not in ("error", "warn"):
        raise ValueError(f"lambdaRuntimeCheck must be 'error' or 'warn', not {on_incompatible!r}")
    problems = []
    for bundle in sorted(bundles, key=lambda b: b.name):
        if not bundle.runtime_compatible:
            needs = sorted(bundle.needs_newer_glibc.items())
            problems.append(
                f"{bundle.name}: {len(needs)} shared objects need glibc > {bundle.glibc_runtime} "
                f"(e.g. {needs[0][0]} needs {needs[0][1]})"
                if needs
                else f"{bundle.name}: {bundle.wheel_tag_problems}"
            )
    if problems:
        message = (
            f"Lambda bundles will not load on the {bundles[0].runtime} runtime: "
            + "; ".join(problems)
            + ". See infra/README.md, 'Lambda packaging'."
        )
        if on_incompatible == "error":
            raise pulumi.RunError(message + " Set lambdaRuntimeCheck=warn to deploy anyway.")
        pulumi.log.warn(message)
