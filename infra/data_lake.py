"""DataLake: the raw, processed, models and reports buckets (and one for deployment artifacts), all private,
encrypted with the project's KMS key, versioned and reachable only over TLS."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ZONES = ("raw", "processed", "models", "reports", "artifacts")  # artifacts: Glue script, libraries, Lambda zips


@dataclass
class DataLakeArgs:
    raw_retention_days: int  # raw transactions and labels are deleted after this many days
    quarantine_retention_days: int
    noncurrent_version_days: int  # overwritten or deleted object versions are kept this long
    force_destroy: bool = False  # let `pulumi destroy` delete non-empty buckets (never in production)


class DataLake(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataLakeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:DataLake", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = aws.kms.Key(
            f"{name}-key",
            description="fraud platform: buckets, database, secrets, logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=self.key.key_id, opts=child)
        self.buckets: dict[str, aws.s3.Bucket] = {zone: self._bucket(f"{name}-{zone}", args) for zone in ZONES}
        self._raw_lifecycle(f"{name}-raw", self.buckets["raw"], args)
        self.register_outputs(
            {f"{zone}_bucket": bucket.bucket for zone, bucket in self.buckets.items()} | {"key_arn": self.key.arn}
        )

    def _bucket(self, name: str, args: DataLakeArgs) -> aws.s3.Bucket:
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, force_destroy=args.force_destroy, opts=child)
        depends = pulumi.ResourceOptions(parent=bucket)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=depends
        )  # no ACLs
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=depends,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,  # one data key per bucket and period instead of a KMS call per object
                }
            ],
            opts=depends,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=depends
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                }
            ),
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[block]),
        )
        return bucket

    def _raw_lifecycle(self, name: str, bucket: aws.s3.Bucket, args: DataLakeArgs) -> None:
        expire = lambda rule_id, prefix, days: {  # noqa: E731
            "id": rule_id,
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "expiration": {"days": days},
        }
        transactions = expire("expire-transactions", "transactions/", args.raw_retention_days)
        if args.raw_retention_days > 60:  # Infrequent Access bills 30 days minimum: worth it only for longer stays
            transactions["transitions"] = [{"days": 30, "storage_class": "STANDARD_IA"}]
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                transactions,
                expire("expire-labels", "labels/", args.raw_retention_days),
                expire("expire-quarantine", "quarantine/", args.quarantine_retention_days),
                {
                    "id": "old-versions-and-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
            ],
            opts=pulumi.ResourceOptions(parent=bucket),
        )
