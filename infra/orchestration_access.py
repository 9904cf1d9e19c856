"""OrchestrationAccess: the IAM role Dagster's runs work as: the task role of the run workers the daemon starts
on ECS (orchestration.py), trusted by ECS tasks of this account only (plus, when the stack's `dagsterPrincipalArn`
names one, that role or user; never an account root). It reads and writes the bucket prefixes the assets use,
starts and watches the Glue job, invokes the Lambdas, logs in to the database as `fraud_writer` (IAM database
authentication), reads the answer links' signing key and sends alert emails: nothing more. It cannot read the
database's master secret."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from iam import (
    aws_named,
    db_connect_statement,
    ecs_task_trust,
    kms_statement,
    objects,
    policy_document,
    statement,
)

READ = ["s3:GetObject"]
READ_WRITE = ["s3:GetObject", "s3:PutObject"]


@dataclass
class OrchestrationAccessArgs:
    raw_bucket: aws.s3.Bucket
    processed_bucket: aws.s3.Bucket
    models_bucket: aws.s3.Bucket
    reports_bucket: aws.s3.Bucket
    kms_key_arn: pulumi.Input[str]
    glue_job_name: pulumi.Input[str]
    function_arns: list[pulumi.Input[str]]  # invoked by the assets: the generator and the batch scorer
    function_url_arn: pulumi.Input[str]  # the real-time scorer, whose function URL the role may call
    db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_writer (Database.user_arn)
    review_key_secret_arn: pulumi.Input[str]
    sender_identity_arn: pulumi.Input[str]
    region: str
    account: str
    trusted_principal_arn: str | None = None  # config dagsterPrincipalArn: one more role or user that may assume it


class OrchestrationAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: OrchestrationAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:OrchestrationAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-dagster",
            # ECS tasks of this account (the run workers' task definition names it), one named principal if configured
            assume_role_policy=ecs_task_trust(args.account, args.trusted_principal_arn),
            max_session_duration=3600,
            opts=child,
        )
        job_arn = pulumi.Output.format("arn:aws:glue:{0}:{1}:job/{2}", args.region, args.account, args.glue_job_name)
        buckets = [args.raw_bucket, args.processed_bucket, args.models_bucket, args.reports_bucket]
        aws.iam.RolePolicy(
            f"{name}-dagster-policy",
            role=self.role.id,
            policy=policy_document(
                [
                    # raw zone: the sensor reads batches, `fraud ingest` writes them with their quarantine
                    statement(
                        READ_WRITE,
                        objects(args.raw_bucket.arn, "transactions/", "labels/", "quarantine/ingest/"),
                        "RawZone",
                    ),
                    statement(READ, objects(args.raw_bucket.arn, "quarantine/etl/"), "ReadEtlQuarantine"),
                    statement(READ, objects(args.processed_bucket.arn, "transactions/"), "ReadCurated"),
                    # Dagster Pipes hands the Glue job its context through the processed bucket
                    statement(
                        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        objects(args.processed_bucket.arn, "dagster-pipes/"),
                        "PipesContext",
                    ),
                    statement(READ_WRITE, objects(args.models_bucket.arn, "fraud-mlp/"), "ModelRegistry"),
                    statement(READ_WRITE, objects(args.reports_bucket.arn, ""), "Reports"),
                    statement(["s3:ListBucket", "s3:GetBucketLocation"], [b.arn for b in buckets], "ListBuckets"),
                    kms_statement(args.kms_key_arn),
                    statement(
                        ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"],
                        [job_arn],
                        "RunEtlJob",
                    ),
                    # Dagster Pipes reads the job run's logs from Glue's fixed log groups
                    statement(
                        ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"],
                        [
                            aws_named(
                                "arn:aws:logs:{region}:{account}:log-group:/aws-glue/jobs/*", args.region, args.account
                            )
                        ],
                        "ReadEtlLogs",
                    ),
                    statement(["lambda:InvokeFunction"], args.function_arns, "InvokeFunctions"),
                    statement(
                        ["lambda:InvokeFunctionUrl"],
                        [args.function_url_arn],
                        "InvokeScorerUrl",
                        {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
                    ),
                    db_connect_statement(args.db_user_arn),
                    statement(["secretsmanager:GetSecretValue"], [args.review_key_secret_arn], "AnswerLinkKey"),
                    statement(["ses:SendRawEmail", "ses:SendEmail"], [args.sender_identity_arn], "AlertEmails"),
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self.role),
        )
        self.register_outputs({"role_arn": self.role.arn})
