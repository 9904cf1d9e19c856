"""Database: RDS PostgreSQL 16 in the private subnets. Encrypted with the project key, never publicly
accessible, TLS enforced by its parameter group, master password generated and rotated by RDS in Secrets
Manager (it never passes through Pulumi or its state), automated backups, deletion protection from config.

Components log in as their own PostgreSQL role (fraud/db/roles.py, created by the migrations) with IAM database
authentication: `user_arn(role)` is what a component's IAM role gets `rds-db:connect` on. Only the migration step
uses the master secret. The server log goes to an explicit, encrypted log group with retention."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from logs import log_group

ENGINE_VERSION = "16"
DB_NAME = "fraud"
CA_CERT_IDENTIFIER = "rds-ca-rsa2048-g1"
# where each artifact carries the RDS CA bundle (deploy/rds-ca/global-bundle.pem): libpq verifies the server with it
CA_BUNDLE_IN_IMAGE = "/etc/ssl/certs/rds/global-bundle.pem"  # the Dockerfile copies deploy/rds-ca/ there
CA_BUNDLE_IN_LAMBDA = "/opt/rds-ca/global-bundle.pem"  # the CA layer (functions.py): layers unpack under /opt
CA_BUNDLE_IN_GLUE = "global-bundle.pem"  # --extra-files: copied into the job script's working directory


def db_login(role: str, ca_bundle_path: str) -> dict[str, str]:
    """A component's database settings: its PostgreSQL role (it logs in with an IAM token) and where its artifact
    carries the RDS CA bundle (verify-full)."""
    return {"FRAUD_DB_ROLE": role, "FRAUD_DB_SSL_ROOT_CERT": ca_bundle_path}


@dataclass
class DatabaseArgs:
    subnet_ids: list[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    instance_class: str
    allocated_storage_gb: int
    backup_retention_days: int
    deletion_protection: bool
    multi_az: bool
    region: str
    account: str
    log_retention_days: int


class Database(pulumi.ComponentResource):
    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:Database", name, None, opts)
        if args.backup_retention_days < 1:
            raise ValueError("automated backups need a retention of at least one day")
        child = pulumi.ResourceOptions(parent=self)
        self._region, self._account = args.region, args.account
        identifier = f"{name}-postgres"  # fixed: the exported log's group is named after it
        # RDS would create this group itself, unencrypted and kept forever
        self.log_group = log_group(
            f"{name}-postgres-logs",
            f"/aws/rds/instance/{identifier}/postgresql",
            args.kms_key_arn,
            args.log_retention_days,
            child,
        )
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=args.subnet_ids, opts=child)
        self.parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{ENGINE_VERSION}",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},  # refuse unencrypted client connections
                {"name": "log_connections", "value": "1"},
            ],
            opts=child,
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier=identifier,
            engine="postgres",
            engine_version=ENGINE_VERSION,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.allocated_storage_gb * 5,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_name=DB_NAME,
            username="fraud_admin",
            manage_master_user_password=True,
            iam_database_authentication_enabled=True,  # the components' roles log in with IAM tokens
            master_user_secret_kms_key_id=args.kms_key_arn,
            publicly_accessible=False,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[args.security_group_id],
            parameter_group_name=self.parameters.name,
            # the server certificate's CA, fixed so that clients verifying it (Dagster: sslmode=verify-full) know
            # which one to trust; the RDS global bundle in the image includes it
            ca_cert_identifier=CA_CERT_IDENTIFIER,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            backup_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{name}-final",
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            enabled_cloudwatch_logs_exports=["postgresql"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group]),
        )
        self.endpoint = self.instance.address
        self.port = self.instance.port
        self.secret_arn = self.instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)
        self.resource_id = self.instance.resource_id
        self.register_outputs({"endpoint": self.endpoint, "secret_arn": self.secret_arn})

    def user_arn(self, role: str) -> pulumi.Output[str]:
        """The `rds-db:connect` resource of one PostgreSQL role on this instance."""
        return pulumi.Output.format(
            "arn:aws:rds-db:{0}:{1}:dbuser:{2}/{3}", self._region, self._account, self.resource_id, role
        )
