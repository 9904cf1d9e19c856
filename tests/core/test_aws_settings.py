"""aws mode: secrets from Secrets Manager (moto server), RDS over verified TLS as the owner (migrations: the managed
secret) or a component role (an IAM token, made locally by botocore), and the card-token key."""

import time
import uuid

import boto3
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fraud.core.settings import Settings
from fraud.db.engine import conninfo, database_url, get_engine
from fraud.db.roles import DbRole


@pytest.fixture()
def secrets(moto_endpoint, aws_credentials):
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]  # one moto server per test session
    db = client.create_secret(
        Name=f"rds!db-{suffix}", SecretString='{"username": "fraud_admin", "password": "p@ss word/1"}'
    )
    key = client.create_secret(Name=f"fraud/card-token-key-{suffix}", SecretString="0123456789abcdef\n")
    return db["ARN"], key["ARN"]


def rds_settings(secrets, moto_endpoint, tmp_path, **update) -> Settings:
    bundle = tmp_path / "rds-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")  # what is verified against, not read here
    given = {"db_ssl_root_cert": bundle, **update}
    return Settings(
        mode="aws",
        aws_endpoint_url=moto_endpoint,
        home=tmp_path,
        db_secret_arn=secrets[0],
        db_host="db.example.internal",
        db_name="fraud",
        **given,
    )


class Refused(Exception):
    pass


def connect_args(engine, monkeypatch, failures: list[Exception] | None = None) -> list[dict]:
    """What the engine hands the driver for each connection attempt (nothing is connected): the attempts fail
    with `failures` in turn, then with Refused."""
    attempts: list[dict] = []

    def connect(*cargs, **cparams):
        attempts.append(cparams)
        raise (failures or [Refused()]).pop(0) if failures else Refused()

    monkeypatch.setattr(engine.dialect, "connect", connect)
    with pytest.raises((Refused, DBAPIError)):  # SQLAlchemy wraps the driver's errors
        engine.connect()
    return attempts


def test_migrations_use_the_managed_secret_over_verified_tls(secrets, moto_endpoint, tmp_path, monkeypatch):
    settings = rds_settings(secrets, moto_endpoint, tmp_path)
    url = make_url(database_url(settings))  # the owner's: migrations
    assert (url.drivername, url.username, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "fraud_admin",
        "db.example.internal",
        5432,
        "fraud",
    )
    assert url.password is None  # read per connection, never kept in the URL
    assert url.query == {"sslmode": "verify-full", "sslrootcert": str(tmp_path / "rds-ca.pem")}
    [attempt] = connect_args(get_engine(settings), monkeypatch)
    assert attempt["password"] == "p@ss word/1"
    assert (attempt["user"], attempt["sslmode"], attempt["sslrootcert"]) == (
        "fraud_admin",
        "verify-full",
        str(tmp_path / "rds-ca.pem"),
    )


def test_a_component_connects_as_its_role_with_a_fresh_iam_token(secrets, moto_endpoint, tmp_path, monkeypatch):
    settings = rds_settings(secrets, moto_endpoint, tmp_path)
    engine = get_engine(settings, role=DbRole.REALTIME)
    first = connect_args(engine, monkeypatch)[0]
    time.sleep(1.1)  # a token is signed to the second
    second = connect_args(engine, monkeypatch)[0]
    assert (first["user"], first["host"], first["sslmode"], first["sslrootcert"]) == (
        "fraud_realtime",
        "db.example.internal",
        "verify-full",
        str(tmp_path / "rds-ca.pem"),
    )
    for attempt in (first, second):  # an IAM authentication token: a presigned rds-db connect request
        token = attempt["password"]
        assert token.startswith("db.example.internal:5432/?Action=connect&DBUser=fraud_realtime&")
        assert "X-Amz-Signature=" in token and "p@ss" not in token
    assert first["password"] != second["password"]  # made per connection: nothing to rotate


def test_the_realtime_pool_gets_a_fresh_iam_token_per_connection(secrets, moto_endpoint, tmp_path):
    settings = rds_settings(secrets, moto_endpoint, tmp_path, db_role="fraud_reporting")
    make = conninfo(settings, DbRole.REALTIME)
    first = conninfo_to_dict(make())  # FRAUD_DB_ROLE overrides the component's role
    assert (first["user"], first["host"], first["sslmode"]) == ("fraud_reporting", "db.example.internal", "verify-full")
    assert first["sslrootcert"] == str(tmp_path / "rds-ca.pem")
    assert first["password"].startswith("db.example.internal:5432/?Action=connect&DBUser=fraud_reporting&")
    time.sleep(1.1)
    assert conninfo_to_dict(make())["password"] != first["password"]


def test_a_rotated_master_secret_is_read_again_once(secrets, moto_endpoint, tmp_path, monkeypatch):
    settings = rds_settings(secrets, moto_endpoint, tmp_path)
    engine = get_engine(settings)
    database_url(settings)  # the secret is cached now
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.put_secret_value(SecretId=secrets[0], SecretString='{"username": "fraud_admin", "password": "rotated"}')
    rejected = psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "x"')
    attempts = connect_args(engine, monkeypatch, [rejected, Refused()])
    assert [a["password"] for a in attempts] == ["p@ss word/1", "rotated"]
    # any other failure is not an authentication one: no second read, no retry
    down = psycopg.OperationalError("connection failed: could not connect to server: Connection refused")
    assert [a["password"] for a in connect_args(engine, monkeypatch, [down])] == ["rotated"]


def test_verify_full_needs_the_rds_ca_bundle(secrets, moto_endpoint, tmp_path, monkeypatch):
    import fraud.db.engine as engine_module

    settings = rds_settings(secrets, moto_endpoint, tmp_path, db_ssl_root_cert=None)
    packaged = tmp_path / "global-bundle.pem"
    monkeypatch.setattr(engine_module, "RDS_CA_BUNDLES", (tmp_path / "absent.pem", packaged))
    with pytest.raises(RuntimeError, match="FRAUD_DB_SSL_ROOT_CERT"):
        database_url(settings, DbRole.WRITER)
    packaged.write_text("-----BEGIN CERTIFICATE-----\n")
    assert make_url(database_url(settings, DbRole.WRITER)).query["sslrootcert"] == str(packaged)


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
