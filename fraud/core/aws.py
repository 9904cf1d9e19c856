"""AWS clients built from settings (one place for region and endpoint) and Secrets Manager reads."""

from __future__ import annotations

import json

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


# (region, endpoint, arn) → SecretString: read once per process, again after `invalidate_secret`
_cached_secrets: dict[tuple[str, str | None, str], str] = {}


def secret_string(settings: Settings, arn: str) -> str:
    """The secret's value, cached per process (Lambda warm starts, one ETL run); never logged."""
    key = (settings.aws_region, settings.aws_endpoint_url, arn)
    if key not in _cached_secrets:
        _cached_secrets[key] = client(settings, "secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return _cached_secrets[key]


def secret_json(settings: Settings, arn: str) -> dict:
    return json.loads(secret_string(settings, arn))


def invalidate_secret(settings: Settings, arn: str) -> None:
    """Forget the cached value (it was rotated: the next read asks Secrets Manager again)."""
    _cached_secrets.pop((settings.aws_region, settings.aws_endpoint_url, arn), None)


def db_auth_token(settings: Settings, host: str, port: int, user: str) -> str:
    """An IAM database authentication token for `user` on RDS (valid 15 minutes for opening a connection; made
    locally by botocore from the caller's credentials, no request sent)."""
    return client(settings, "rds").generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=settings.aws_region
    )
