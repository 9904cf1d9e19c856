"""DataLake: the raw, processed, models and reports buckets (and one for deployment artifacts), all private,
encrypted with the project's KMS key, versioned and reachable only over TLS; the project key, whose policy lets
CloudWatch Logs (this region's log groups of this account) and CloudTrail (this stack's trail) use it; and the
audit trail: a CloudTrail trail recording every object-level call on the raw zone (data events) into the private,
encrypted `audit` bucket.

The bucket policies are applied last (`protect`), once the roles exist: besides TLS only, the data buckets refuse
the roles of the components that run in the VPC (`in_vpc_roles`) any request that does not come through the
project's S3 gateway endpoint, so those roles' credentials are useless outside the VPC."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

ZONES = ("raw", "processed", "models", "reports", "artifacts")  # artifacts: Glue script, libraries, Lambda zips
AUDIT = "audit"  # the CloudTrail trail's log files: not a data zone, no component reads it


def key_policy(region: str, account: str, trail_arn: str) -> str:
    """The project key's policy: the account administers it through IAM (the default key policy: without it no IAM
    policy of the account could grant the key), CloudWatch Logs may use it for this account's log groups in this
    region only, CloudTrail for this stack's trail only."""
    logs = f"logs.{region}.amazonaws.com"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersTheKeyThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchLogsOfThisAccount",
                    "Effect": "Allow",
                    "Principal": {"Service": logs},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"
                        }
                    },
                },
                {
                    "Sid": "CloudTrailOfThisStack",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "kms:GenerateDataKey*",
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"aws:SourceArn": trail_arn},
                        "StringLike": {
                            "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{account}:trail/*"
                        },
                    },
                },
                {
                    # checked when the trail is created or updated: that call carries no encryption context
                    "Sid": "CloudTrailDescribesTheKey",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "kms:DescribeKey",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceArn": trail_arn}},
                },
            ],
        }
    )


@dataclass
class DataLakeArgs:
    raw_retention_days: int  # raw transactions and labels are deleted after this many days
    quarantine_retention_days: int
    noncurrent_version_days: int  # overwritten or deleted object versions are kept this long
    region: str
    account: str
    force_destroy: bool = False  # let `pulumi destroy` delete non-empty buckets (never in production)


class DataLake(pulumi.ComponentResource):
    def __init__(self, name: str, args: DataLakeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:DataLake", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name, self._args = name, args
        self._public_access_blocks: dict[str, aws.s3.BucketPublicAccessBlock] = {}
        self.trail_name = f"{name}-raw-data-events"
        self.trail_arn = f"arn:aws:cloudtrail:{args.region}:{args.account}:trail/{self.trail_name}"
        self.key = aws.kms.Key(
            f"{name}-key",
            description="fraud platform: buckets, database, secrets, logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy(args.region, args.account, self.trail_arn),
            opts=child,
        )
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=self.key.key_id, opts=child)
        self.buckets: dict[str, aws.s3.Bucket] = {zone: self._bucket(f"{name}-{zone}", args) for zone in ZONES}
        self.audit_bucket = self._bucket(f"{name}-{AUDIT}", args)
        self._raw_lifecycle(f"{name}-raw", self.buckets["raw"], args)
        self.register_outputs(
            {f"{zone}_bucket": bucket.bucket for zone, bucket in self.buckets.items()}
            | {"audit_bucket": self.audit_bucket.bucket, "key_arn": self.key.arn}
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
        self._public_access_blocks[name] = block  # a bucket policy is applied after its public access block
        return bucket

    def protect(self, s3_endpoint_id: pulumi.Input[str], in_vpc_roles: list[pulumi.Input[str]]) -> None:
        """The bucket policies and the trail, once the roles exist. Every bucket: TLS only. The data buckets: the
        roles in `in_vpc_roles` only through the S3 gateway endpoint `s3_endpoint_id`; only roles whose every S3
        call provably goes through it may be listed (not the generator Lambda, outside the VPC; not Glue, whose
        service reads the job's code itself). The audit bucket: CloudTrail writes this stack's trail into it."""
        for zone, bucket in self.buckets.items():
            extra = [] if zone == "artifacts" else [_only_through_endpoint(bucket, s3_endpoint_id, in_vpc_roles)]
            self._policy(f"{self._name}-{zone}", bucket, extra)
        audit = self.audit_bucket
        policy = self._policy(
            f"{self._name}-{AUDIT}",
            audit,
            [
                {
                    "Sid": "CloudTrailChecksTheBucket",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "s3:GetBucketAcl",
                    "Resource": audit.arn,
                    "Condition": {"StringEquals": {"aws:SourceArn": self.trail_arn}},
                },
                {
                    "Sid": "CloudTrailWritesThisTrail",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudtrail.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": pulumi.Output.concat(audit.arn, f"/AWSLogs/{self._args.account}/*"),
                    "Condition": {
                        "StringEquals": {
                            "aws:SourceArn": self.trail_arn,
                            "s3:x-amz-acl": "bucket-owner-full-control",
                        }
                    },
                },
            ],
        )
        raw = self.buckets["raw"]
        self.trail = aws.cloudtrail.Trail(
            f"{self._name}-raw-data-events",
            name=self.trail_name,
            s3_bucket_name=audit.id,
            kms_key_id=self.key.arn,
            enable_log_file_validation=True,  # digest files: a log file changed or deleted afterwards shows
            is_multi_region_trail=False,
            include_global_service_events=False,
            # every object-level call (read and write) on the raw zone, where card numbers are; management events
            # are the account's trail's business (a second copy would be billed)
            event_selectors=[
                {
                    "read_write_type": "All",
                    "include_management_events": False,
                    "data_resources": [{"type": "AWS::S3::Object", "values": [pulumi.Output.concat(raw.arn, "/")]}],
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _policy(self, name: str, bucket: aws.s3.Bucket, statements: list[dict]) -> aws.s3.BucketPolicy:
        return aws.s3.BucketPolicy(
            f"{name}-policy",
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
                        },
                        *statements,
                    ],
                }
            ),
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[self._public_access_blocks[name]]),
        )

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


def _only_through_endpoint(
    bucket: aws.s3.Bucket, endpoint_id: pulumi.Input[str], roles: list[pulumi.Input[str]]
) -> dict:
    """Deny the listed roles anything on the bucket unless the request comes through the VPC endpoint: the
    components holding these roles run in the VPC, so a request of theirs from anywhere else is stolen credentials."""
    return {
        "Sid": "InVpcRolesOnlyThroughTheEndpoint",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
        "Condition": {
            "StringNotEquals": {"aws:SourceVpce": endpoint_id},
            "ArnEquals": {"aws:PrincipalArn": roles},
        },
    }
