"""AWS clients built from settings (one place for region and endpoint) and Secrets Manager reads."""

from __future__ import annotations

import json
from functools import lru_cache

import boto3

from fraud.core.settings import Settings


def client(settings: Settings, service: str):
    endpoint = (settings.s3_endpoint_url or settings.aws_endpoint_url) if service == "s3" else settings.aws_endpoint_url
    return boto3.client(service, region_name=settings.aws_region, endpoint_url=endpoint)


@lru_cache(maxsize=16)
def _secret(region: str, endpoint: str | None, arn: str) -> str:
    response = boto3.client("secretsmanager", region_name=region, endpoint_url=endpoint).get_secret_value(SecretId=arn)
    return response["SecretString"]


def secret_string(settings: Settings, arn: str) -> str:
    """The secret's value, cached per process (Lambda warm starts, one ETL run); never logged."""
    return _secret(settings.aws_region, settings.aws_endpoint_url, arn)


def secret_json(settings: Settings, arn: str) -> dict:
    return json.loads(secret_string(settings, arn))
