"""aws mode calls what was deployed: `raw_transactions` and `fraud_flags` invoke the generator and scorer Lambdas
through Dagster Pipes (PipesLambdaClient), never their handlers in-process. A moto server stands in for S3, Secrets
Manager and SES; a local stand-in for the Lambda Invoke API (tests/helpers/lambda_standin.py) runs the packaged
handlers (host builds of the zips) in subprocesses; the database is the home's embedded PostgreSQL, reached by the
Dagster process and the functions through `FRAUD_DATABASE_URL`. The processed data is loaded directly (moto's Glue
runs no job: tests/glue/test_glue_pipes.py covers the ETL's Pipes call) and a tiny LiteRT model published."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from dagster import materialize
from sqlalchemy import text

from assets.ingestion import raw_transactions
from assets.resources import FraudPlatform
from assets.scoring import fraud_flags
from fraud.core.schema import decode_jsonl_gz
from tests.helpers.homes import make_home
from tests.helpers.lambda_standin import LambdaStandIn, host_function_folder
from tests.helpers.litert_models import publish_logistic, weights_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
HANDLERS = ("lambdas.generator.handler", "lambdas.scorer.handler")
GENERATOR, SCORER = "fraud-generator-e2e", "fraud-scorer-e2e"


@pytest.fixture()
def aws_stack(moto_endpoint, aws_credentials, monkeypatch, tmp_path):
    """A deployed stack in miniature: buckets, the card-token secret and the SES sender in moto, the functions
    (host builds), the database of a fresh home. Yields `deployed()`: a context that starts the Lambda
    stand-in and puts aws mode's FRAUD_* settings in the environment, the Lambda endpoint pointing at the stand-in."""
    from fraud.db.engine import start_embedded, stop_embedded

    suffix = uuid.uuid4().hex[:8]
    buckets = {kind: f"e2e-{kind}-{suffix}" for kind in ("raw", "processed", "models", "reports")}
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    secrets = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    key_arn = secrets.create_secret(Name=f"e2e-card-key-{suffix}", SecretString="ab" * 32)["ARN"]
    sender = f"alerts-{suffix}@fraud-platform.example"
    boto3.client("ses", endpoint_url=moto_endpoint, region_name="us-east-1").verify_email_identity(EmailAddress=sender)

    home = make_home("fraud-aws-mode-")
    settings = {
        "FRAUD_MODE": "aws",
        "FRAUD_DATABASE_URL": start_embedded(home / "pg"),
        "FRAUD_AWS_ENDPOINT_URL": moto_endpoint,
        "FRAUD_AWS_REGION": "us-east-1",
        **{f"FRAUD_{kind.upper()}_BUCKET": bucket for kind, bucket in buckets.items()},
        "FRAUD_CARD_TOKEN_KEY_SECRET_ARN": key_arn,
        "FRAUD_MAIL_FROM": sender,
        "FRAUD_MODEL_NAME": f"e2e-mlp-{suffix}",
        "FRAUD_SIM_CUSTOMERS": "150",
        "FRAUD_SIM_DAYS": "2",
    }
    functions = {
        GENERATOR: (host_function_folder("generator", tmp_path / "generator"), "lambdas.generator.handler.handler"),
        SCORER: (host_function_folder("scorer", tmp_path / "scorer"), "lambdas.scorer.handler.handler"),
    }
    (tmp_path / "lambda-tmp").mkdir()
    function_env = {
        **settings,
        "FRAUD_HOME": str(tmp_path / "lambda-tmp"),  # like Lambda's /tmp: nothing of the Dagster home
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    for key in [k for k in os.environ if k.startswith("FRAUD_")]:
        monkeypatch.delenv(key)

    @contextmanager
    def deployed():
        with LambdaStandIn(functions, function_env) as standin:
            for key, value in {
                **settings,
                "FRAUD_HOME": str(home),
                "FRAUD_LAMBDA_ENDPOINT_URL": standin.url,
                "FRAUD_GENERATOR_FUNCTION_NAME": GENERATOR,
                "FRAUD_SCORER_FUNCTION_NAME": SCORER,
            }.items():
                monkeypatch.setenv(key, value)
            yield standin

    try:
        yield deployed
    finally:
        stop_embedded(home / "pg")


def test_the_generator_zip_runs_by_itself(aws_stack):
    # the zip holds no Parquet engine: the simulator's world must load without one (fraud/ingest/simulate.py)
    with aws_stack() as standin:
        generated = materialize([raw_transactions], resources={"fraud": FraudPlatform()}, raise_on_error=False)
    [invocation] = standin.invoked(GENERATOR)
    assert generated.success and not invocation.failed, invocation.log[-1500:]


@pytest.fixture()
def standin(aws_stack):
    with aws_stack() as standin:
        yield standin


def test_aws_mode_invokes_the_deployed_functions_through_pipes(standin, monkeypatch):
    from bench.scoring import load_world
    from fraud.core.settings import Settings
    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade

    for module in HANDLERS:  # any import of a handler in this process fails the run
        monkeypatch.setitem(sys.modules, module, None)

    generated = materialize([raw_transactions], resources={"fraud": FraudPlatform()})

    assert generated.success
    [invocation] = standin.invoked(GENERATOR)
    assert not invocation.failed, invocation.log[-3000:]
    assert "DAGSTER_PIPES_CONTEXT" in invocation.event and "report_asset_materialization" in invocation.log
    metadata = generated.asset_materializations_for_node("raw_transactions")[0].metadata
    settings = Settings()
    s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings.raw_bucket)["Contents"]]
    transactions = [k for k in keys if k.startswith("transactions/")]
    assert metadata["batches"].value == len(transactions) == 2  # FRAUD_SIM_DAYS, the function's own setting
    rows = sum(
        len(decode_jsonl_gz(s3.get_object(Bucket=settings.raw_bucket, Key=k)["Body"].read())) for k in transactions
    )
    assert metadata["rows"].value == rows > 0
    assert metadata["frauds_injected"].value >= metadata["frauds_never_labelled"].value >= 0
    assert all(k.split("/")[-1] in metadata["batch_keys"].value for k in transactions)  # the Markdown table

    engine = get_engine(settings)
    upgrade(engine)
    world = load_world(engine, settings, 400, "e2e-batch", seed=3)  # the ETL's result, loaded directly
    publish_logistic(settings, "aws-v1", weights_for(card_count_1h=3.0, amt_log=0.5), -2.0, 0.6)

    scored = materialize(
        [fraud_flags],
        resources={"fraud": FraudPlatform()},
        run_config={"ops": {"fraud_flags": {"config": {"batch_ids": ["e2e-batch"]}}}},
    )

    assert scored.success
    [invocation] = standin.invoked(SCORER)
    assert not invocation.failed, invocation.log[-3000:]
    assert invocation.event["batch_ids"] == ["e2e-batch"] and "DAGSTER_PIPES_CONTEXT" in invocation.event
    metadata = scored.asset_materializations_for_node("fraud_flags")[0].metadata
    assert metadata["model_version"].value == "aws-v1" and metadata["batches"].value == 1
    assert metadata["scored"].value == metadata["pending"].value == len(world)
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT count(*), count(*) FILTER (WHERE flagged) FROM fraud_score WHERE model_version = 'aws-v1'")
        ).one()
    assert stored == (len(world), metadata["flagged"].value)
    assert all(module not in sys.modules or sys.modules[module] is None for module in HANDLERS)
    engine.dispose()


def test_the_code_location_loads_no_handler():
    """The assets import the handlers only inside their local branch: loading the code location (as `dagster dev`
    and aws mode's deployment do) leaves them out of the process."""
    code = f"import sys, assets.definitions; print([m for m in {HANDLERS!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
