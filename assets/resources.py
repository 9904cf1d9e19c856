"""The resource every asset, check and sensor gets: `FraudPlatform`, the platform's settings and the clients built
from them.

Its fields are the settings a Dagster deployment sets (where the data and the database are, the model's name, the
automation knobs), typed and documented so the UI's resource page shows them. A field left unset (None) takes the
domain's value (`fraud.core.settings.Settings`: its `FRAUD_*` variable, else its default), so the defaults live in
one place and `make demo` runs with nothing set. `from_environment` binds each text or integer field whose variable
is set to an `EnvVar`, resolved when a run starts: the UI shows the variable's name, never its value.

The settings are built once per resource instance, that is once per run (in-process executor) or per step process,
and once per sensor tick; the database is migrated on the first `engine()` of that instance, not on every call.
"""

from __future__ import annotations

import threading
from typing import Any, get_args

from dagster import AssetExecutionContext, ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from fraud.core import aws
from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store
from fraud.db.engine import get_engine
from fraud.db.migrate import upgrade
from fraud.db.roles import DbRole


def _setting(name: str, what: str) -> Any:
    """An optional field mapped to the Settings field of the same name; its description names the variable and the
    domain's default."""
    default = Settings.model_fields[name].default
    shown = "none" if default is None else f"`{default}`"
    return Field(default=None, description=f"{what} Unset: `FRAUD_{name.upper()}`, else {shown}.")


def _resolved(value: Any) -> Any:
    return value.get_value() if hasattr(value, "env_var_name") else value  # EnvVar and EnvVar.int alike


class FraudPlatform(ConfigurableResource):
    """The platform's settings, object stores, Glue and Lambda calls and migrated database, for assets, checks and
    sensors."""

    mode: str | None = _setting(
        "mode", "`local` (folders, embedded PostgreSQL, local PySpark) or `aws` (S3, RDS, the deployed Glue job)."
    )
    home: str | None = _setting("home", "Local state: the folder object store, the embedded database, the outbox.")
    database_url: str | None = _setting(
        "database_url", "PostgreSQL URL (a secret: bind it to an EnvVar). Empty: the embedded server in `home`."
    )
    db_host: str | None = _setting("db_host", "aws mode: the RDS endpoint.")
    db_secret_arn: str | None = _setting("db_secret_arn", "aws mode: the RDS-managed secret with the credentials.")
    raw_bucket: str | None = _setting("raw_bucket", "Raw zone: transaction batches and labels as they arrive.")
    processed_bucket: str | None = _setting("processed_bucket", "Curated Parquet written by the ETL.")
    models_bucket: str | None = _setting("models_bucket", "Model registry: versions and the LATEST pointer.")
    reports_bucket: str | None = _setting("reports_bucket", "Stakeholder reports and flagged-transaction CSVs.")
    aws_region: str | None = _setting("aws_region", "AWS region of every client.")
    aws_endpoint_url: str | None = _setting("aws_endpoint_url", "One endpoint for every AWS API (tests: moto).")
    s3_endpoint_url: str | None = _setting("s3_endpoint_url", "S3 only; falls back to the AWS endpoint.")
    lambda_endpoint_url: str | None = _setting("lambda_endpoint_url", "Lambda only; falls back to the AWS endpoint.")
    glue_job_name: str | None = _setting("glue_job_name", "aws mode: the deployed Glue ETL job.")
    generator_function_name: str | None = _setting(
        "generator_function_name", "aws mode: the deployed generator Lambda `raw_transactions` invokes."
    )
    scorer_function_name: str | None = _setting(
        "scorer_function_name", "aws mode: the deployed scorer Lambda `fraud_flags` invokes."
    )
    model_name: str | None = _setting("model_name", "The model's name in the registry.")
    min_average_precision: float | None = _setting(
        "min_average_precision", "Quality gate: the least average precision a promoted model has on its test window."
    )
    test_days: int | None = _setting("test_days", "Days in the test window of training and the gate.")
    train_epochs: int | None = _setting("train_epochs", "The most epochs a training runs (early stopping ends sooner).")
    alert_budget_per_day: int | None = _setting("alert_budget_per_day", "Alerts a day the threshold is set for.")
    rescore_days: int | None = _setting(
        "rescore_days", "A newly promoted model rescores the unreviewed transactions of this many last days."
    )
    retrain_min_new_labels: int | None = _setting(
        "retrain_min_new_labels", "Labels loaded since the last retraining that start the next one."
    )

    _settings: Settings | None = PrivateAttr(default=None)
    _engine: Engine | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls) -> FraudPlatform:
        """A platform whose text and integer fields are EnvVars for the `FRAUD_*` variables set now (when the code
        location loads); the rest stay unset and take Settings' values."""
        set_now = Settings().model_fields_set  # pydantic-settings: the fields the environment sets
        bound: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            kinds = get_args(field.annotation)  # e.g. (str, NoneType)
            if name not in set_now:
                continue
            if str in kinds:
                bound[name] = EnvVar(f"FRAUD_{name.upper()}")
            elif int in kinds:
                bound[name] = EnvVar.int(f"FRAUD_{name.upper()}")
            # a float (Dagster has no float EnvVar) stays unset: Settings reads its variable itself
        return cls(**bound)

    def overrides(self) -> dict[str, Any]:
        """The fields set on this resource, as Settings arguments. A run gets them resolved; outside a run an
        EnvVar (text or integer) is read now, and an unset one counts as unset."""
        values = {name: _resolved(getattr(self, name)) for name in type(self).model_fields}
        return {name: value for name, value in values.items() if value is not None}

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._settings = Settings(**self.overrides())  # a bad value fails here, before any step starts

    def settings(self) -> Settings:
        with self._lock:
            if self._settings is None:  # used outside a run (a script, a test): built on first use
                self._settings = Settings(**self.overrides())
            return self._settings

    def store(self, bucket: str) -> ObjectStore:
        return object_store(self.settings(), bucket)

    def glue_pipes_client(self):
        """aws mode: runs the deployed Glue job; context goes through the processed bucket, messages and logs
        come back from the job's CloudWatch output stream."""
        from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesGlueClient, PipesS3ContextInjector

        settings = self.settings()
        return PipesGlueClient(
            client=aws.client(settings, "glue"),
            context_injector=PipesS3ContextInjector(
                bucket=settings.processed_bucket, client=aws.client(settings, "s3"), key_prefix="dagster-pipes/"
            ),
            message_reader=PipesCloudWatchMessageReader(client=aws.client(settings, "logs")),
        )

    def invoke_function(self, context: AssetExecutionContext, function: str, event: dict) -> dict[str, Any]:
        """aws mode: invoke the deployed `generator` or `scorer` Lambda with the event through Dagster Pipes
        (PipesLambdaClient: the Pipes parameters ride in the event, the messages come back in the log tail) and
        return the figures it reported as this asset's materialization, as plain values."""
        from dagster_aws.pipes import PipesLambdaClient

        settings = self.settings()
        name = getattr(settings, f"{function}_function_name")
        if not name:
            raise RuntimeError(f"aws mode needs FRAUD_{function.upper()}_FUNCTION_NAME (see `fraud aws-env`)")
        client = PipesLambdaClient(client=aws.client(settings, "lambda"))
        invocation = client.run(context=context, function_name=name, event=event)
        reported = invocation.get_materialize_result(implicit_materialization=False)
        if not reported.metadata:
            raise RuntimeError(f"the {function} Lambda {name} reported no figures through Dagster Pipes")
        return {key: getattr(value, "value", value) for key, value in reported.metadata.items()}

    def engine(self) -> Engine:
        """The platform database, migrated to head on the first call of this instance (once per run)."""
        settings = self.settings()
        with self._lock:
            if self._engine is None:
                engine = get_engine(settings, role=DbRole.WRITER)
                upgrade(engine)
                self._engine = engine
            return self._engine
