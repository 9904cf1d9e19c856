"""The one settings object: every endpoint and knob, read from `FRAUD_*` environment variables.

No other module reads os.environ; everything asks for a `Settings`.
"""
from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    s3_endpoint_url: str | None = None

    # database: empty means "start the embedded PostgreSQL in FRAUD_HOME/pg"
    database_url: SecretStr | None = None

    # card tokenization key; empty locally means "generate once into FRAUD_HOME/secrets"
    card_token_key: SecretStr | None = None

    # simulator
    sim_seed: int = 7
    sim_customers: int = 1500
    sim_start: date = date(2026, 11, 1)
    sim_days: int = 10
    sim_fraud_rate: float = 0.008
    label_delay_days: float = 2.0  # chargebacks arrive this long after the transaction

    # model and alerting
    model_name: str = "fraud-mlp"
    alert_budget_per_day: int = 40
    test_days: int = 3
    train_epochs: int = 30

    # mail
    mail_from: str = "alerts@fraud-platform.example"
    smtp_host: str | None = None
    smtp_port: int = 25

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
        if self.card_token_key is not None:
            return self.card_token_key.get_secret_value().encode()
        if self.mode == "aws":
            raise RuntimeError("FRAUD_CARD_TOKEN_KEY must be set in aws mode (from Secrets Manager)")
        path = self.home / "secrets" / "card_token_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32))
        return path.read_text().strip().encode()

