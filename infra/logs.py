"""The one way the stack makes a log group: explicit (not left to the service to create on first write), encrypted
with the project's KMS key (whose policy lets CloudWatch Logs use it: data_lake.py) and kept for a set time."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def log_group(
    resource_name: str, name: str, kms_key_arn: pulumi.Input[str], retention_days: int, opts: pulumi.ResourceOptions
) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(
        resource_name, name=name, kms_key_id=kms_key_arn, retention_in_days=retention_days, opts=opts
    )
