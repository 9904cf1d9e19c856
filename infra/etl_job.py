"""EtlJob: the Glue job that runs `glue/process_transactions.py`. The script, a zip of the `fraud/` package and
the wheels of its third-party distributions, as `make package` left them in dist/ (artifacts.py), are uploaded
to the artifacts bucket; a JDBC Glue connection puts the job's workers in the private subnets next to RDS; the
job's role reaches only its own prefixes, secrets and log groups.

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
from iam import assume_role_policy, aws_named, kms_statement, objects, policy_document, statement, vpc_eni_statement

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
    db_endpoint: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: str
    db_secret_arn: pulumi.Input[str]
    card_token_secret_arn: pulumi.Input[str]
    settings_env: dict[str, pulumi.Input[str]]  # FRAUD_* settings, passed as --fraud_* arguments (no secrets)
    worker_type: str
    workers: int
    timeout_minutes: int
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
        self.wheels = [
            upload(
                f"{name}-wheel-{re.sub(r'[-_.]+', '-', wheel.name).lower()}", "glue/wheels", wheel, "application/zip"
            )
            for wheel in args.wheels
        ]
        additional_python_modules = pulumi.Output.all(
            *(pulumi.Output.format("s3://{0}/{1}", artifacts.bucket, wheel.key) for wheel in self.wheels)
        ).apply(",".join)

        jdbc_url = pulumi.Output.format("jdbc:postgresql://{0}:{1}/{2}", args.db_endpoint, args.db_port, args.db_name)
        self.connection = aws.glue.Connection(
            f"{name}-postgres",
            connection_type="JDBC",
            connection_properties={
                "JDBC_CONNECTION_URL": jdbc_url,
                "SECRET_ID": args.db_secret_arn,
                "JDBC_ENFORCE_SSL": "true",
            },
            physical_connection_requirements={
                "availability_zone": args.subnet.availability_zone,
                "subnet_id": args.subnet.id,
                "security_group_id_lists": [args.security_group_id],
            },
            opts=child,
        )

        self.role = aws.iam.Role(
            f"{name}-role", assume_role_policy=assume_role_policy("glue.amazonaws.com"), opts=child
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
                        objects(artifacts.arn, "glue/scripts/", "glue/lib/", "glue/wheels/"),
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
                    statement(
                        ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                        [args.db_secret_arn, args.card_token_secret_arn],
                        "DatabaseAndTokenKey",
                    ),
                    kms_statement(args.kms_key_arn),
                    statement(
                        ["glue:GetConnection"],
                        [
                            connection_arn,
                            aws_named("arn:aws:glue:{region}:{account}:catalog", args.region, args.account),
                        ],
                        "OwnConnection",
                    ),
                    statement(
                        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
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
                "--raw_uri": pulumi.Output.format("s3://{0}", args.raw_bucket.bucket),
                "--processed_uri": pulumi.Output.format("s3://{0}", args.processed_bucket.bucket),
                **settings_arguments,
            },
            opts=child,
        )
        self.register_outputs({"job_name": self.job.name, "role_arn": self.role.arn})
