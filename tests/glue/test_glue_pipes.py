"""aws mode: `processed_transactions` starts the deployed Glue job through Dagster's PipesGlueClient (moto server
stands in for Glue, S3 and CloudWatch Logs); the job script reads its settings from `--fraud_*` job arguments."""

from datetime import datetime

import boto3
import pandas as pd
import pytest
from dagster import PipesSubprocessClient, materialize

from assets.processing import processed_transactions
from assets.resources import FraudPlatform
from fraud.core.storage import S3ObjectStore
from fraud.ingest.raw_zone import write_transactions
from glue.process_transactions import parse_arguments, settings_from


def test_job_arguments_carry_settings_but_not_pipes_flags():
    argv = [
        "script.py",
        "--raw_uri",
        "s3://r",
        "--fraud_mode",
        "aws",
        "--fraud_db_host",
        "db.internal",
        "--dagster-pipes-context",
        "x",
        "--raw-uri",
        "s3://r",
    ]
    settings = settings_from(argv)
    assert (settings.mode, settings.db_host) == ("aws", "db.internal")
    assert parse_arguments(argv)["raw_uri"] == "s3://r"


@pytest.fixture()
def aws_platform(engine, moto_endpoint, aws_credentials, monkeypatch):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for bucket in ("pipes-raw", "pipes-processed"):
        s3.create_bucket(Bucket=bucket)
    glue = boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1")
    glue.create_job(
        Name="fraud-etl-test",
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://pipes-processed/glue/process_transactions.py"},
    )
    for key, value in {
        "MODE": "aws",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "RAW_BUCKET": "pipes-raw",
        "PROCESSED_BUCKET": "pipes-processed",
        "GLUE_JOB_NAME": "fraud-etl-test",
    }.items():
        monkeypatch.setenv(f"FRAUD_{key}", value)
    return s3, glue


def test_processed_transactions_runs_the_glue_job_through_pipes(aws_platform, monkeypatch):
    s3, glue = aws_platform
    # moto's Glue never writes the job's CloudWatch output stream: don't wait the default minute for it
    monkeypatch.setattr("dagster._core.pipes.utils.WAIT_FOR_LOGS_TIMEOUT", 1)
    row = {
        "trans_num": "g1",
        "cc_num": "4111111111111111",
        "trans_date_trans_time": "2026-01-01 10:00:00",
        "amt": "5.5",
        "merchant": "m",
    }
    key = write_transactions(S3ObjectStore("pipes-raw", s3), "glue-batch-1", pd.DataFrame([row]), datetime(2026, 1, 1))

    result = materialize(
        [processed_transactions],
        resources={"fraud": FraudPlatform(), "pipes_subprocess_client": PipesSubprocessClient()},
    )

    assert result.success
    runs = glue.get_job_runs(JobName="fraud-etl-test")["JobRuns"]
    assert len(runs) == 1
    arguments = runs[0]["Arguments"]
    assert arguments["--raw_uri"] == "s3://pipes-raw/" and arguments["--processed_uri"] == "s3://pipes-processed/"
    assert arguments["--transactions_keys"] == key
    assert {"--dagster-pipes-context", "--dagster-pipes-messages"} <= set(arguments)
    # the context went through the processed bucket and was removed once the run ended
    assert "Contents" not in s3.list_objects_v2(Bucket="pipes-processed", Prefix="dagster-pipes/")
