"""The one settings object: every endpoint and knob, read from `FRAUD_*` environment variables.

No other module reads os.environ; everything asks for a `Settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

    mode: Literal["local", "aws"] = "local"
    home: Path = Field(default=REPO_ROOT / ".fraud", description="Local state: object store, database, outbox.")

    # object store (bucket names are the same in both modes; local buckets are folders)
    raw_bucket: str = "fraud-raw"
    processed_bucket: str = "fraud-processed"
    models_bucket: str = "fraud-models"
    reports_bucket: str = "fraud-reports"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # one endpoint for every AWS API (tests: a moto server on 127.0.0.1)
    s3_endpoint_url: str | None = None  # S3 only; falls back to aws_endpoint_url
    lambda_endpoint_url: str | None = None  # Lambda only (tests: a stand-in for the Invoke API); else aws_endpoint_url

    # aws mode: names of the deployed pieces (stack outputs, see `fraud aws-env`); secrets stay in Secrets Manager
    glue_job_name: str = "fraud-process-transactions"
    db_secret_arn: str | None = None  # RDS-managed master secret: {"username", "password"}
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "fraud"
    # the PostgreSQL role to connect as instead of the component's own (fraud/db/roles.py); migrations ignore it
    db_role: str | None = None
    # the CA bundle RDS's certificate is verified against (verify-full); unset: the packaged bundle (deploy/rds-ca)
    db_ssl_root_cert: Path | None = None
    card_token_key_secret_arn: str | None = None  # a SecretString holding the HMAC key
    review_key_secret_arn: str | None = None  # a SecretString: the review app's signing key (sessions, answer links)
    # the deployed Lambdas (infra/ stack outputs): aws mode's raw_transactions and fraud_flags invoke them
    generator_function_name: str | None = None
    scorer_function_name: str | None = None
    scorer_function_url: str | None = None  # IAM-authenticated function URL of the scorer

    # local PySpark (the Glue job off AWS): the JVM heap; the driver is the executor too. 2g keeps a million-row
    # run under 4 GiB in all (bench/README.md); Spark spills its caches to local disk beyond it
    spark_driver_memory: str = "2g"

    # database: empty means "start the embedded PostgreSQL in FRAUD_HOME/pg"
    database_url: SecretStr | None = None

    # card tokenization key; empty locally means "generate once into FRAUD_HOME/secrets"
    card_token_key: SecretStr | None = None

    # the review app's signing key (sessions, CSRF, customers' answer links); empty locally means "generate once"
    review_key: SecretStr | None = None
    # the review app's address as customers' answer links name it: customers must reach its /answer path (in AWS an
    # HTTPS endpoint the Pulumi program does not provision yet: docs/review.md)
    review_base_url: str = "http://127.0.0.1:8100"
    answer_link_days: int = 14  # how long a customer's "was this you?" link stays valid

    # bearer token of the real-time API (`fraud serve`); empty locally means "generate once into FRAUD_HOME/secrets"
    api_token: SecretStr | None = None
    # proxies (CIDRs) whose X-Forwarded-For names the client, for the API's and the review app's rate limits;
    # empty: the socket peer is the client, whatever the headers say (fraud/serving/clients.py). Env as JSON
    trusted_proxies: list[str] = Field(default_factory=list)

    # simulator
    sim_seed: int = 7
    sim_customers: int = 1500
    sim_start: date = date(2026, 11, 1)
    sim_days: int = 10
    sim_fraud_rate: float = 0.008
    label_delay_days: float = 2.0  # maturity: a transaction nobody disputed is labelled genuine this long after it
    # when the simulator's fraud labels arrive (docs/simulator.md#labels); constant: every label at
    # label_delay_days and none missing (what the benchmarks use)
    sim_label_timing: Literal["realistic", "constant"] = "realistic"
    sim_report_mean_days: float = 2.0  # realistic: mean delay of card-testing and account-takeover labels (reports)
    sim_chargeback_days: tuple[float, float] = (7.0, 45.0)  # realistic: compromised-merchant and outlier labels
    # (chargebacks) arrive uniformly this many days after the transaction; env as JSON: FRAUD_SIM_CHARGEBACK_DAYS=[7,45]
    sim_unlabelled_share: float = 0.05  # realistic: share of frauds never labelled (no label row at all)
    # the fraud mix, e.g. FRAUD_SIM_SCENARIO_SHARE={"card_testing":1}; normalised; empty: the documented mix
    sim_scenario_share: dict[str, float] | None = None

    # model and alerting
    model_name: str = "fraud-mlp"
    alert_budget_per_day: int = 40
    test_days: int = 3
    train_epochs: int = 60  # the most epochs a training may run (early stopping ends it sooner); as bench/robustness.py
    # quality gate: a model is promoted only with at least this average precision on its test window
    min_average_precision: float = 0.2

    # decisions: the rule set (fraud/rules/ruleset.py documents the file); unset: the one shipped in the package
    rules_path: Path | None = None
    # batch scoring: top reasons for the flagged, the reviewed and blocked, and this top share of each page by score
    reasons_top_share: float = Field(default=0.0, ge=0.0, le=1.0)

    # automation (assets/sensors.py)
    rescore_days: int = 7  # a newly promoted model rescores unreviewed transactions of this many last days
    retrain_min_new_labels: int = 2000  # labels loaded since the last retraining that trigger the next one

    # mail
    mail_from: str = "alerts@fraud-platform.example"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = None  # PEM CA bundle STARTTLS trusts instead of the system's (a private mail relay)
    smtp_timeout_seconds: float = 10.0
    smtp_retry_attempts: int = 3  # per alert and run, for transient errors (4xx, connection refused/dropped)
    smtp_retry_backoff_seconds: float = 1.0  # first wait; doubles per attempt
    # auto: SES in aws mode, SMTP when FRAUD_SMTP_HOST is set, else .eml files in FRAUD_HOME/outbox
    mail_channel: Literal["auto", "outbox", "smtp", "ses"] = "auto"
    ses_configuration_set: str | None = None
    alert_daily_cap_per_customer: int = 2  # alert emails per customer (email address) for one day's transactions

    @property
    def store_root(self) -> Path:
        return self.home / "s3"

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def token_key(self) -> bytes:
        """The HMAC key for card tokens: from settings, else a local key generated once (mode 0600)."""
        return self._key("card_token_key", self.card_token_key, self.card_token_key_secret_arn)

    def review_signing_key(self, purpose: str) -> bytes:
        """A key of the review app's for one `purpose` ("session", "answer-link"), derived from FRAUD_REVIEW_KEY (or
        its secret in aws mode, or a local key generated once): one secret to rotate, a different key per use."""
        root = self._key("review_key", self.review_key, self.review_key_secret_arn)
        return hmac.new(root, purpose.encode(), hashlib.sha256).digest()

    def _key(self, name: str, configured: SecretStr | None, secret_arn: str | None) -> bytes:
        """A secret key: from settings, else from Secrets Manager in aws mode, else generated once into
        FRAUD_HOME/secrets/<name> (mode 0600, created atomically; refused if others may read it)."""
        if configured is not None:
            return configured.get_secret_value().encode()
        if self.mode == "aws":
            if secret_arn is None:
                variable = f"FRAUD_{name.upper()}"
                raise RuntimeError(f"aws mode needs {variable}_SECRET_ARN (or {variable})")
            from fraud.core.aws import secret_string

            return secret_string(self, secret_arn).strip().encode()
        from fraud.core.storage import private_secret  # storage imports this module

        return private_secret(self.home / "secrets" / name, lambda: secrets.token_hex(32)).encode()
