"""EtlJob: the Glue job that runs `glue/process_transactions.py`. The script, a zip of the `fraud/` package and
the wheels of its third-party distributions, as `make package` left them in dist/ (artifacts.py), are uploaded
to the artifacts bucket, with the RDS CA bundle (`--extra-files`: the job verifies the database's certificate); a
NETWORK Glue connection (no credentials) puts the job's workers in the private subnets next to RDS, where the job
logs in as `fraud_writer` with IAM database authentication; the job's role reaches only its own prefixes, the
card-token key's secret and Glue's log groups.

A Glue security configuration encrypts with the project key what Glue writes: S3 (SSE-KMS), CloudWatch Logs and job
bookmarks (CSE-KMS). Glue's log groups are created here (encrypted, with retention) under the names Glue uses with
a security configuration (`/aws-glue/jobs/<configuration>-role/<role>/output` and `/error`) and the continuous log
group is named explicitly; the role may not create log groups, so none appears implicitly.

No internet at run time: the private subnets have no NAT, so nothing may come from a package index when the job
starts. `--additional-python-modules` lists the S3 URIs of the wheels (the dependencies' whole closure for
CPython 3.11 on Amazon Linux 2023, without what Glue 5.0 provides) and `--python-modules-installer-option
--no-index` keeps Glue's pip from looking anywhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from artifacts import Artifact, Wheel
from iam import (
    assume_role_policy,
    aws_named,
    db_connect_statement,
    kms_statement,
    objects,
    policy_document,
    secret_read_statements,
    statement,
    vpc_eni_statement,
)
from logs import log_group

GLUE_VERSION = "5.0"  # Spark 3.5, Python 3.11: the interpreter this project targets
PIP_OFFLINE = "--no-index"  # Glue's pip installs the listed wheels and resolves among them only


@dataclass
class EtlJobArgs:
    script: Artifact  # glue/process_transactions.py
    library: Artifact  # the fraud/ package
    wheels: tuple[Wheel, ...]  # its third-party distributions (dist/glue-wheels/), installed with no index
    artifacts_bucket: aws.s3.Bucket
    raw_bucket: aws.s3.Bucket
    processed_bucket: aws.s3.Bucket
    kms_key_arn: pulumi.Input[str]
    subnet: aws.ec2.Subnet
    security_group_id: pulumi.Input[str]
    db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_writer (Database.user_arn)
    ca_bundle: Artifact  # the RDS CA bundle (artifacts.read_ca_bundle), shipped with --extra-files
    card_token_secret_arn: pulumi.Input[str]
    settings_env: dict[str, pulumi.Input[str]]  # FRAUD_* settings, passed as --fraud_* arguments (no secrets)
    worker_type: str
    workers: int
    timeout_minutes: int
    log_retention_days: int
    region: str
    account: str


class EtlJob(pulumi.ComponentResource):
    def __init__(self, name: str, args: EtlJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:EtlJob", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        artifacts = args.artifacts_bucket

        # content-addressed keys: a changed script, library or wheel is a new object (and the job definition changes
        # too); a wheel that did not change is not uploaded again, and keeps its file name, which pip reads the
        # distribution, version and tags from
        def upload(resource: str, prefix: str, artifact: Artifact, content_type: str) -> aws.s3.BucketObjectv2:
            return aws.s3.BucketObjectv2(
                resource,
                bucket=artifacts.id,
                key=f"{prefix}/{artifact.sha256[:16]}/{artifact.path.name}",
                source=pulumi.FileAsset(str(artifact.path)),
                content_type=content_type,
                opts=child,
            )

        self.script = upload(f"{name}-script", "glue/scripts", args.script, "text/x-python")
        self.library = upload(f"{name}-library", "glue/lib", args.library, "application/zip")
        self.ca_bundle = upload(f"{name}-rds-ca", "glue/ca", args.ca_bundle, "application/x-pem-file")
        self.wheels = [
            upload(
                f"{name}-wheel-{re.sub(r'[-_.]+', '-', wheel.name).lower()}", "glue/wheels", wheel, "application/zip"
            )
            for wheel in args.wheels
        ]
        additional_python_modules = pulumi.Output.all(
            *(pulumi.Output.format("s3://{0}/{1}", artifacts.bucket, wheel.key) for wheel in self.wheels)
        ).apply(",".join)

        # NETWORK: only where the workers run (subnet, security group); no credentials (the job logs in with IAM)
        self.connection = aws.glue.Connection(
            f"{name}-network",
            connection_type="NETWORK",
            physical_connection_requirements={
                "availability_zone": args.subnet.availability_zone,
                "subnet_id": args.subnet.id,
                "security_group_id_lists": [args.security_group_id],
            },
            opts=child,
        )
        self.security_configuration = aws.glue.SecurityConfiguration(
            f"{name}-security",
            name=f"{name}-security",
            encryption_configuration={
                "s3_encryption": {"s3_encryption_mode": "SSE-KMS", "kms_key_arn": args.kms_key_arn},
                "cloudwatch_encryption": {"cloudwatch_encryption_mode": "SSE-KMS", "kms_key_arn": args.kms_key_arn},
                "job_bookmarks_encryption": {
                    "job_bookmarks_encryption_mode": "CSE-KMS",
                    "kms_key_arn": args.kms_key_arn,
                },
            },
            opts=child,
        )
        role_name = f"{name}-role"  # fixed: Glue names its log groups after the role and the security configuration
        logs_base = f"/aws-glue/jobs/{name}-security-role/{role_name}"
        self.log_groups = {
            stream: log_group(
                f"{name}-{stream}-logs", f"{logs_base}/{stream}", args.kms_key_arn, args.log_retention_days, child
            )
            for stream in ("output", "error", "logs-v2")  # driver stdout (Dagster Pipes reads it), stderr, continuous
        }

        self.role = aws.iam.Role(
            f"{name}-role", name=role_name, assume_role_policy=assume_role_policy("glue.amazonaws.com"), opts=child
        )
        connection_arn = pulumi.Output.format(
            "arn:aws:glue:{0}:{1}:connection/{2}", args.region, args.account, self.connection.name
        )
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=policy_document(
                [
                    statement(
                        ["s3:GetObject"],
                        objects(artifacts.arn, "glue/scripts/", "glue/lib/", "glue/wheels/", "glue/ca/"),
                        "ReadCode",
                    ),
                    statement(
                        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        objects(artifacts.arn, "glue/temp/"),
                        "TempDir",
                    ),
                    statement(
                        ["s3:GetObject"], objects(args.raw_bucket.arn, "transactions/", "labels/"), "ReadRawBatches"
                    ),
                    statement(
                        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        objects(args.raw_bucket.arn, "quarantine/etl/"),
                        "WriteQuarantine",
                    ),
                    statement(
                        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                        objects(args.processed_bucket.arn, "transactions/"),
                        "CuratedParquet",
                    ),
                    statement(["s3:GetObject"], objects(args.processed_bucket.arn, "dagster-pipes/"), "PipesContext"),
                    statement(
                        ["s3:ListBucket", "s3:GetBucketLocation"],
                        [artifacts.arn, args.raw_bucket.arn, args.processed_bucket.arn],
                        "ListOwnBuckets",
                    ),
                    *secret_read_statements(args.card_token_secret_arn, args.kms_key_arn, args.region, "CardTokenKey"),
                    db_connect_statement(args.db_user_arn),
                    kms_statement(args.kms_key_arn),
                    # job bookmarks are encrypted client side (CSE-KMS) by the job itself
                    statement(["kms:Encrypt"], [args.kms_key_arn], "EncryptBookmarks"),
                    statement(
                        ["glue:GetConnection"],
                        [
                            connection_arn,
                            aws_named("arn:aws:glue:{region}:{account}:catalog", args.region, args.account),
                        ],
                        "OwnConnection",
                    ),
                    # the groups exist (above): no logs:CreateLogGroup, so Glue cannot make an unencrypted one
                    statement(
                        ["logs:AssociateKmsKey", "logs:CreateLogStream", "logs:PutLogEvents"],
                        [
                            aws_named(
                                "arn:aws:logs:{region}:{account}:log-group:/aws-glue/jobs/*", args.region, args.account
                            )
                        ],
                        "GlueLogs",
                    ),
                    vpc_eni_statement("ConnectionNetworkInterfaces"),
                    statement(
                        [
                            "ec2:DescribeVpcEndpoints",
                            "ec2:DescribeRouteTables",
                            "ec2:DescribeVpcs",
                            "ec2:DescribeSecurityGroups",
                            "ec2:DescribeVpcAttribute",
                        ],
                        ["*"],
                        "ConnectionChecks",
                    ),
                    statement(
                        ["ec2:CreateTags", "ec2:DeleteTags"],
                        [aws_named("arn:aws:ec2:{region}:{account}:network-interface/*", args.region, args.account)],
                        "TagOwnInterfaces",
                        {"ForAllValues:StringEquals": {"aws:TagKeys": ["aws-glue-service-resource"]}},
                    ),
                    statement(
                        ["cloudwatch:PutMetricData"],
                        ["*"],
                        "JobMetrics",
                        {"StringEquals": {"cloudwatch:namespace": "Glue"}},
                    ),
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self.role),
        )

        # Glue has no per-job environment variables (only CUSTOMER_-prefixed ones): the script reads its
        # settings from `--fraud_<setting> value` arguments (glue/process_transactions.py, settings_from)
        settings_arguments = {f"--{key.lower()}": value for key, value in args.settings_env.items()}
        self.job = aws.glue.Job(
            f"{name}-process-transactions",
            role_arn=self.role.arn,
            glue_version=GLUE_VERSION,
            worker_type=args.worker_type,
            number_of_workers=args.workers,
            timeout=args.timeout_minutes,
            max_retries=0,  # Dagster decides about reruns; the load is idempotent per batch anyway
            execution_property={"max_concurrent_runs": 4},
            connections=[self.connection.name],
            security_configuration=self.security_configuration.name,
            command={
                "name": "glueetl",
                "python_version": "3",
                "script_location": pulumi.Output.format("s3://{0}/{1}", artifacts.bucket, self.script.key),
            },
            default_arguments={
                "--job-language": "python",
                "--extra-py-files": pulumi.Output.format("s3://{0}/{1}", artifacts.bucket, self.library.key),
                "--additional-python-modules": additional_python_modules,
                "--python-modules-installer-option": PIP_OFFLINE,
                "--TempDir": pulumi.Output.format("s3://{0}/glue/temp/", artifacts.bucket),
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--continuous-log-logGroup": self.log_groups["logs-v2"].name,
                # the RDS CA bundle, copied into the script's working directory (CA_BUNDLE_IN_GLUE)
                "--extra-files": pulumi.Output.format("s3://{0}/{1}", artifacts.bucket, self.ca_bundle.key),
                "--raw_uri": pulumi.Output.format("s3://{0}", args.raw_bucket.bucket),
                "--processed_uri": pulumi.Output.format("s3://{0}", args.processed_bucket.bucket),
                **settings_arguments,
            },
            opts=child,
        )
        self.register_outputs({"job_name": self.job.name, "role_arn": self.role.arn})
