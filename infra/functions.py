"""Functions: the generator Lambda on an EventBridge schedule and the scorer Lambda in the private subnets
behind a function URL with IAM auth. Both run the zips `make package` builds (read through artifacts.py),
uploaded to the artifacts bucket (they exceed the 50 MB limit of a direct upload), each with its own role and
log group."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from artifacts import Bundle
from iam import assume_role_policy, kms_statement, objects, policy_document, statement, vpc_eni_statement


@dataclass
class FunctionsArgs:
    generator: Bundle
    scorer: Bundle
    artifacts_bucket: aws.s3.Bucket
    raw_bucket: aws.s3.Bucket
    models_bucket: aws.s3.Bucket
    kms_key_arn: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    scorer_security_group_id: pulumi.Input[str]
    db_secret_arn: pulumi.Input[str]
    settings_env: dict[str, pulumi.Input[str]]  # FRAUD_* settings (no secrets: ARNs and names only)
    generator_interval_minutes: int
    generator_memory_mb: int
    scorer_memory_mb: int
    log_retention_days: int


class Functions(pulumi.ComponentResource):
    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:Functions", name, None, opts)
        if not 1 <= args.generator_interval_minutes <= 1440:
            raise ValueError("generatorIntervalMinutes must be between 1 and 1440")
        self._name, self._args = name, args

        self.generator, generator_role = self._function(
            "generator",
            args.generator,
            args.generator_memory_mb,
            300,
            [
                statement(
                    ["s3:GetObject", "s3:PutObject"],
                    objects(args.raw_bucket.arn, "transactions/", "labels/", "simulator/"),
                    "WriteRawBatches",
                ),
                statement(["s3:ListBucket"], [args.raw_bucket.arn], "ListRaw"),
            ],
            vpc=None,
        )
        self.scorer, scorer_role = self._function(
            "scorer",
            args.scorer,
            args.scorer_memory_mb,
            900,
            [
                statement(["s3:GetObject"], objects(args.models_bucket.arn, "fraud-mlp/"), "ReadModels"),
                statement(["s3:ListBucket"], [args.models_bucket.arn], "ListModels"),
                statement(["secretsmanager:GetSecretValue"], [args.db_secret_arn], "DatabaseSecret"),
                vpc_eni_statement("VpcNetworkInterfaces"),
            ],
            vpc={"subnet_ids": args.private_subnet_ids, "security_group_ids": [args.scorer_security_group_id]},
        )

        # IAM auth: only principals whose own policy allows lambda:InvokeFunctionUrl on the scorer may call it
        self.scorer_url = aws.lambda_.FunctionUrl(
            f"{name}-scorer-url",
            function_name=self.scorer.name,
            authorization_type="AWS_IAM",
            opts=pulumi.ResourceOptions(parent=self.scorer),
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
                "scorer_url": self.scorer_url.function_url,
            }
        )

    def _function(
        self, role: str, bundle: Bundle, memory_mb: int, timeout_s: int, permissions: list[dict], vpc: dict | None
    ) -> tuple[aws.lambda_.Function, aws.iam.Role]:
        name, args = f"{self._name}-{role}", self._args
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}"  # fixed, so the log group can exist (encrypted, with retention) before the function
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/lambda/{function_name}", retention_in_days=args.log_retention_days, opts=child
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
                    kms_statement(args.kms_key_arn),
                    statement(
                        ["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(logs.arn, ":*")], "OwnLogs"
                    ),
                ]
            ),
            opts=pulumi.ResourceOptions(parent=execution_role),
        )
        code = aws.s3.BucketObjectv2(
            f"{name}-code",
            bucket=args.artifacts_bucket.id,
            key=f"lambda/{role}/{bundle.code_sha256.replace('/', '_')[:22]}.zip",
            source=pulumi.FileAsset(str(bundle.path)),
            opts=child,
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
            environment={"variables": args.settings_env},
            kms_key_arn=args.kms_key_arn,
            vpc_config=vpc,
            logging_config={"log_format": "JSON", "log_group": logs.name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, logs]),
        )
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
