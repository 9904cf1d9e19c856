"""AWS clients built from settings (one place for region and endpoint) and Secrets Manager reads."""

from __future__ import annotations

import json
from functools import lru_cache

import boto3

from fraud.core.settings import Settings

# a synchronous Lambda invocation answers when the function ends: up to Lambda's 15-minute timeout
LAMBDA_READ_TIMEOUT_SECONDS = 15 * 60 + 10


def endpoint_url(settings: Settings, service: str) -> str | None:
    """The service's own endpoint setting (S3, Lambda), else the one for every AWS API, else AWS's default."""
    own = {"s3": settings.s3_endpoint_url, "lambda": settings.lambda_endpoint_url}.get(service)
    return own or settings.aws_endpoint_url


def client(settings: Settings, service: str):
    config = None
    if service == "lambda":
        from botocore.config import Config

        config = Config(read_timeout=LAMBDA_READ_TIMEOUT_SECONDS)  # botocore's default is 60 s
    return boto3.client(
        service, region_name=settings.aws_region, endpoint_url=endpoint_url(settings, service), config=config
    )


@lru_cache(maxsize=16)
def _secret(region: str, endpoint: str | None, arn: str) -> str:
    response = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint).get_secret_value(SecretId=arn)
    return response["SecretString"]


def secret_string(settings: Settings, arn: str) -> str:
    """The secret's value, cached per process (Lambda warm starts, one ETL run); never logged."""
    return _secret(settings.aws_region, settings.aws_endpoint_url, arn)


def secret_json(settings: Settings, arn: str) -> dict:
    return json.loads(secret_string(settings, arn))
