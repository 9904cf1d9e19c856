"""aws mode reads its secrets from Secrets Manager (moto server): the RDS credentials and the card-token key."""

import uuid

import boto3
import pytest
from sqlalchemy.engine import make_url

from fraud.core.settings import Settings
from fraud.db.engine import database_url


@pytest.fixture()
def secrets(moto_endpoint, aws_credentials):
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]  # one moto server per test session
    db = client.create_secret(
        Name=f"rds!db-{suffix}", SecretString='{"username": "fraud_admin", "password": "p@ss word/1"}'
    )
    key = client.create_secret(Name=f"fraud/card-token-key-{suffix}", SecretString="0123456789abcdef\n")
    return db["ARN"], key["ARN"]


def test_rds_url_comes_from_the_managed_secret(secrets, moto_endpoint, tmp_path):
    settings = Settings(
        mode="aws",
        aws_endpoint_url=moto_endpoint,
        home=tmp_path,
        db_secret_arn=secrets[0],
        db_host="db.example.internal",
        db_name="fraud",
    )
    url = make_url(database_url(settings))
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "fraud_admin",
        "db.example.internal",
        5432,
        "fraud",
    )
    assert url.password == "p@ss word/1"  # escaped in the URL, not mangled
    assert url.query == {"sslmode": "require"}


def test_rds_needs_a_host(secrets, moto_endpoint, tmp_path):
    settings = Settings(mode="aws", aws_endpoint_url=moto_endpoint, home=tmp_path, db_secret_arn=secrets[0])
    with pytest.raises(RuntimeError, match="FRAUD_DB_HOST"):
        database_url(settings)


def test_card_token_key_from_secrets_manager(secrets, moto_endpoint, tmp_path):
    settings = Settings(mode="aws", aws_endpoint_url=moto_endpoint, home=tmp_path, card_token_key_secret_arn=secrets[1])
    assert settings.token_key() == b"0123456789abcdef"
    assert not (tmp_path / "secrets").exists()  # nothing written locally in aws mode


def test_aws_mode_without_a_key_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="CARD_TOKEN_KEY_SECRET_ARN"):
        Settings(mode="aws", home=tmp_path).token_key()


def test_each_service_takes_its_own_endpoint_else_the_shared_one(tmp_path):
    from fraud.core.aws import LAMBDA_READ_TIMEOUT_SECONDS, client, endpoint_url

    shared = Settings(home=tmp_path, aws_endpoint_url="http://127.0.0.1:5000")
    own = shared.model_copy(update={"s3_endpoint_url": "http://s3.test", "lambda_endpoint_url": "http://lambda.test"})
    assert [endpoint_url(shared, s) for s in ("s3", "lambda", "glue")] == ["http://127.0.0.1:5000"] * 3
    assert [endpoint_url(own, s) for s in ("s3", "lambda", "glue")] == [
        "http://s3.test",
        "http://lambda.test",
        "http://127.0.0.1:5000",
    ]
    lambda_client = client(own, "lambda")  # a synchronous invocation may last as long as the function runs
    assert lambda_client.meta.endpoint_url == "http://lambda.test"
    assert lambda_client.meta.config.read_timeout == LAMBDA_READ_TIMEOUT_SECONDS > 15 * 60


def test_aws_env_prints_the_function_names_aws_mode_invokes():
    from fraud.app.aws_env import OUTPUT_SETTINGS, settings_from_outputs

    outputs = {output: f"value-{output}" for output in OUTPUT_SETTINGS} | {"db_port": 5432}
    printed = settings_from_outputs(outputs)
    assert printed["FRAUD_GENERATOR_FUNCTION_NAME"] == "value-generator_function_name"
    assert printed["FRAUD_SCORER_FUNCTION_NAME"] == "value-scorer_function_name"
