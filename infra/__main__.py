"""The fraud platform on AWS: `pulumi up` in this folder (see README.md).

Buckets and key (DataLake), a private VPC (Network), RDS PostgreSQL (Database), the Glue ETL job (EtlJob), the
generator, batch scorer and real-time scorer Lambdas (Functions), the SES sender (Notifications), the role
Dagster's runs work as (OrchestrationAccess) and Dagster itself on ECS Fargate (DagsterService: image, webserver,
daemon, run workers, review app). Last, what needs every role and resource: the bucket policies and the raw zone's
audit trail (DataLake.protect) and the VPC endpoints' policies (Network.limit_endpoints).
The stack outputs are what `fraud aws-env` turns into the Dagster code location's FRAUD_* settings. The code it
uploads comes from `make package` (dist/, see artifacts.py), the RDS CA bundle from deploy/rds-ca/; the Dagster
image is built from the repository's Dockerfile by the program itself.

Each component logs in to PostgreSQL as its own role (fraud/db/roles.py) with IAM database authentication and
verifies the server against the RDS CA bundle its artifact carries (`db_login`); only the daemon's migration step
reads the master secret."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws
from artifacts import dist_dir, read_artifacts, read_ca_bundle
from data_lake import DataLake, DataLakeArgs
from database import (
    CA_BUNDLE_IN_GLUE,
    CA_BUNDLE_IN_LAMBDA,
    DB_NAME,
    Database,
    DatabaseArgs,
    db_login,
)
from etl_job import EtlJob, EtlJobArgs
from functions import Functions, FunctionsArgs, check_runtime
from network import Network, NetworkArgs
from notifications import Notifications, NotificationsArgs
from orchestration import DagsterService, DagsterServiceArgs, TaskSize
from orchestration_access import OrchestrationAccess, OrchestrationAccessArgs

from fraud.db.roles import DbRole

REPO_ROOT = Path(__file__).resolve().parent.parent

config = pulumi.Config()
# what `make package` built (the Lambda zips, the Glue job's script and copy of fraud/), checked before anything
# is registered: the program reads the manifests in dist/ and never runs the packager
artifacts = read_artifacts(dist_dir(config.get("distDir"), REPO_ROOT), REPO_ROOT)
check_runtime([artifacts.generator, artifacts.scorer], on_incompatible=config.get("lambdaRuntimeCheck") or "error")
ca_bundle = read_ca_bundle(config.get("rdsCaBundle"), REPO_ROOT)  # the scorers' layer and the Glue job ship it

region = pulumi.Config("aws").require("region")
account = aws.get_caller_identity().account_id
prefix = f"fraud-{pulumi.get_stack()}"
log_retention_days = config.get_int("logRetentionDays") or 30

lake = DataLake(
    prefix,
    DataLakeArgs(
        raw_retention_days=config.get_int("rawRetentionDays") or 365,
        quarantine_retention_days=config.get_int("quarantineRetentionDays") or 90,
        noncurrent_version_days=config.get_int("noncurrentVersionDays") or 30,
        force_destroy=config.get_bool("forceDestroyBuckets") or False,
        region=region,
        account=account,
    ),
)
buckets = lake.buckets

zones = config.get_object("availabilityZones") or aws.get_availability_zones(state="available").names[:2]
network = Network(
    prefix,
    NetworkArgs(
        cidr=config.get("vpcCidr") or "10.40.0.0/16",
        availability_zones=zones,
        region=region,
        extra_interface_endpoints=tuple(config.get_object("extraInterfaceEndpoints") or ()),
    ),
)

database = Database(
    prefix,
    DatabaseArgs(
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.database_sg.id,
        kms_key_arn=lake.key.arn,
        instance_class=config.get("dbInstanceClass") or "db.t4g.micro",
        allocated_storage_gb=config.get_int("dbAllocatedStorageGb") or 20,
        backup_retention_days=config.get_int("dbBackupRetentionDays") or 7,
        deletion_protection=config.get_bool("dbDeletionProtection") is not False,  # on unless explicitly false
        multi_az=config.get_bool("dbMultiAz") or False,
        region=region,
        account=account,
        log_retention_days=log_retention_days,
    ),
)


def stack_secret(name: str, config_key: str, description: str) -> aws.secretsmanager.Secret:
    """A Secrets Manager secret under the lake's KMS key, holding a secret of the stack's config (set with
    `pulumi config set --secret <config_key> "$(openssl rand -hex 32)"`; encrypted in state)."""
    secret = aws.secretsmanager.Secret(f"{prefix}-{name}", kms_key_id=lake.key.arn, description=description)
    aws.secretsmanager.SecretVersion(
        f"{prefix}-{name}", secret_id=secret.id, secret_string=config.require_secret(config_key)
    )
    return secret


card_token_key = stack_secret(
    "card-token-key", "cardTokenKey", "HMAC-SHA256 key for card tokens (fraud/core/privacy.py)"
)
# sessions, CSRF and customers' answer links in alert emails (fraud/outreach/answers.py)
review_key = stack_secret(
    "review-key", "reviewKey", "Signing key of the review app and of customers' answer links (fraud/core/settings.py)"
)

notifications = Notifications(prefix, NotificationsArgs(sender_email=config.require("senderEmail")))

# fraud/core/settings.py names; ARNs and names only, never secret values. No FRAUD_DB_SECRET_ARN: components log in
# as their own role (db_login); only the daemon's migration step gets the master secret (orchestration.py)
settings_env: dict[str, pulumi.Input[str]] = {
    "FRAUD_MODE": "aws",
    "FRAUD_AWS_REGION": region,
    "FRAUD_RAW_BUCKET": buckets["raw"].bucket,
    "FRAUD_PROCESSED_BUCKET": buckets["processed"].bucket,
    "FRAUD_MODELS_BUCKET": buckets["models"].bucket,
    "FRAUD_REPORTS_BUCKET": buckets["reports"].bucket,
    "FRAUD_DB_HOST": database.endpoint,
    "FRAUD_DB_PORT": database.port.apply(str),
    "FRAUD_DB_NAME": DB_NAME,
    "FRAUD_HOME": "/tmp/fraud",  # the only writable path in Lambda and Glue containers
}


etl = EtlJob(
    f"{prefix}-etl",
    EtlJobArgs(
        script=artifacts.glue_script,
        library=artifacts.glue_library,
        artifacts_bucket=buckets["artifacts"],
        raw_bucket=buckets["raw"],
        processed_bucket=buckets["processed"],
        kms_key_arn=lake.key.arn,
        subnet=network.private_subnets[0],
        security_group_id=network.glue_sg.id,
        db_user_arn=database.user_arn(DbRole.WRITER),
        ca_bundle=ca_bundle,
        card_token_secret_arn=card_token_key.arn,
        settings_env=settings_env
        | {"FRAUD_CARD_TOKEN_KEY_SECRET_ARN": card_token_key.arn}
        | db_login(DbRole.WRITER, CA_BUNDLE_IN_GLUE),
        wheels=artifacts.glue_wheels,  # installed from the artifacts bucket with --no-index: no internet needed
        worker_type=config.get("glueWorkerType") or "G.1X",
        workers=config.get_int("glueWorkers") or 2,
        timeout_minutes=config.get_int("glueTimeoutMinutes") or 60,
        log_retention_days=log_retention_days,
        region=region,
        account=account,
    ),
)

functions = Functions(
    prefix,
    FunctionsArgs(
        generator=artifacts.generator,
        scorer=artifacts.scorer,
        ca_bundle=ca_bundle,
        artifacts_bucket=buckets["artifacts"],
        raw_bucket=buckets["raw"],
        models_bucket=buckets["models"],
        kms_key_arn=lake.key.arn,
        private_subnet_ids=network.private_subnet_ids,
        scorer_security_group_id=network.scorer_sg.id,
        card_token_secret_arn=card_token_key.arn,
        scorer_db_user_arn=database.user_arn(DbRole.WRITER),  # batch scoring writes fraud_score
        realtime_db_user_arn=database.user_arn(DbRole.REALTIME),
        settings_env=settings_env,
        scorer_env=db_login(DbRole.WRITER, CA_BUNDLE_IN_LAMBDA),
        realtime_env=db_login(DbRole.REALTIME, CA_BUNDLE_IN_LAMBDA)
        | {"FRAUD_CARD_TOKEN_KEY_SECRET_ARN": card_token_key.arn},  # it tokenises the card numbers it is sent
        generator_interval_minutes=config.get_int("generatorIntervalMinutes") or 60,
        generator_memory_mb=config.get_int("generatorMemoryMb") or 1024,
        scorer_memory_mb=config.get_int("scorerMemoryMb") or 2048,
        log_retention_days=log_retention_days,
        region=region,
    ),
)

access = OrchestrationAccess(
    prefix,
    OrchestrationAccessArgs(
        raw_bucket=buckets["raw"],
        processed_bucket=buckets["processed"],
        models_bucket=buckets["models"],
        reports_bucket=buckets["reports"],
        kms_key_arn=lake.key.arn,
        glue_job_name=etl.job.name,
        function_arns=[functions.generator.arn, functions.scorer.arn],
        function_url_arn=functions.realtime.arn,
        db_user_arn=database.user_arn(DbRole.WRITER),
        review_key_secret_arn=review_key.arn,  # the alert emails' answer links
        sender_identity_arn=notifications.identity.arn,
        region=region,
        account=account,
        trusted_principal_arn=config.get("dagsterPrincipalArn"),
    ),
)

image_context = Path(config.get("imageContext") or ".")
dagster = DagsterService(
    prefix,
    DagsterServiceArgs(
        image_context=image_context if image_context.is_absolute() else (REPO_ROOT / image_context).resolve(),
        private_subnet_ids=network.private_subnet_ids,
        webserver_security_group_id=network.webserver_sg.id,
        daemon_security_group_id=network.dagster_sg.id,
        run_worker_role=access.role,
        kms_key_arn=lake.key.arn,
        raw_bucket=buckets["raw"],
        models_bucket=buckets["models"],
        model_name="fraud-mlp",
        db_endpoint=database.endpoint,
        db_port=database.port,
        db_secret_arn=database.secret_arn,
        writer_db_user_arn=database.user_arn(DbRole.WRITER),
        review_db_user_arn=database.user_arn(DbRole.REVIEW),
        writer_db_role=DbRole.WRITER.value,
        review_db_role=DbRole.REVIEW.value,
        review_key_secret_arn=review_key.arn,
        settings_env=settings_env
        | {
            "FRAUD_GLUE_JOB_NAME": etl.job.name,
            "FRAUD_GENERATOR_FUNCTION_NAME": functions.generator.name,
            "FRAUD_SCORER_FUNCTION_NAME": functions.scorer.name,
            "FRAUD_SCORER_FUNCTION_URL": functions.scorer_url.function_url,
            "FRAUD_CARD_TOKEN_KEY_SECRET_ARN": card_token_key.arn,
            "FRAUD_REVIEW_KEY_SECRET_ARN": review_key.arn,
            "FRAUD_MAIL_FROM": notifications.sender,
        },
        region=region,
        account=account,
        webserver=TaskSize(
            config.get_int("dagsterWebserverCpu") or 512, config.get_int("dagsterWebserverMemoryMb") or 2048
        ),
        daemon=TaskSize(config.get_int("dagsterDaemonCpu") or 512, config.get_int("dagsterDaemonMemoryMb") or 2048),
        run_worker=TaskSize(config.get_int("dagsterRunCpu") or 2048, config.get_int("dagsterRunMemoryMb") or 8192),
        review=TaskSize(config.get_int("reviewCpu") or 256, config.get_int("reviewMemoryMb") or 1024),
        log_retention_days=log_retention_days,
        force_delete_images=config.get_bool("forceDestroyBuckets") or False,
    ),
)

# Last, what names every role and resource. The bucket policies refuse the roles of the components in the VPC
# anything not through the S3 endpoint: the scorers and the Dagster tasks (not the generator, outside the VPC, nor
# Glue, whose service fetches the job's code itself; see README.md, "Security").
lake.protect(
    network.s3_endpoint.id,
    in_vpc_roles=[
        functions.roles["scorer"].arn,
        functions.roles["realtime"].arn,
        access.role.arn,
        dagster.daemon_role.arn,
        dagster.webserver_role.arn,
        dagster.review_role.arn,
    ],
)
network.limit_endpoints(
    bucket_arns=[bucket.arn for bucket in buckets.values()],
    secret_arns=[database.secret_arn, card_token_key.arn, review_key.arn],
    function_arns=[functions.generator.arn, functions.scorer.arn, functions.realtime.arn],
)

# What the Dagster code location needs in aws mode; `fraud aws-env --stack <stack>` maps these to FRAUD_* lines.
outputs: dict[str, pulumi.Input] = {
    "region": region,
    "raw_bucket": buckets["raw"].bucket,
    "processed_bucket": buckets["processed"].bucket,
    "models_bucket": buckets["models"].bucket,
    "reports_bucket": buckets["reports"].bucket,
    "artifacts_bucket": buckets["artifacts"].bucket,
    "glue_job_name": etl.job.name,
    "generator_function_name": functions.generator.name,
    "scorer_function_name": functions.scorer.name,
    "scorer_function_url": functions.scorer_url.function_url,  # the real-time scorer's
    "realtime_function_name": functions.realtime.name,
    "db_endpoint": database.endpoint,
    "db_port": database.port,
    "db_name": DB_NAME,
    "db_secret_arn": database.secret_arn,
    "card_token_key_secret_arn": card_token_key.arn,
    "review_key_secret_arn": review_key.arn,
    "sender_email": notifications.sender,
    "dagster_role_arn": access.role.arn,
    "dagster_security_group_id": network.dagster_sg.id,
    "private_subnet_ids": network.private_subnet_ids,
    "kms_key_arn": lake.key.arn,
    "audit_bucket": lake.audit_bucket.bucket,  # CloudTrail: every object-level call on the raw zone
    # Dagster in AWS: open the UI with dagster_port_forward_command, then http://127.0.0.1:3000
    "dagster_cluster_name": dagster.cluster.name,
    "dagster_webserver_service": dagster.webserver.name,
    "dagster_daemon_service": dagster.daemon.name,
    "dagster_image_uri": dagster.image_uri,
    "dagster_port_forward_command": dagster.port_forward_command,
    # the review app: open it with review_port_forward_command, then http://127.0.0.1:8100
    "review_service": dagster.review.name,
    "review_port_forward_command": dagster.review_port_forward_command,
}
for key, value in outputs.items():
    pulumi.export(key, value)
