"""Resources: the platform settings (one object, from FRAUD_* variables) and the clients built from them."""
from __future__ import annotations

from dagster import ConfigurableResource
from sqlalchemy import Engine

from fraud.db.engine import get_engine
from fraud.db.migrate import upgrade
from fraud.settings import Settings
from fraud.storage import ObjectStore, object_store


class FraudPlatform(ConfigurableResource):
    """Everything an asset needs to reach the platform: settings, buckets and the migrated database."""

    def settings(self) -> Settings:
        return Settings()

    def store(self, bucket: str) -> ObjectStore:
        return object_store(self.settings(), bucket)

    def engine(self) -> Engine:
        engine = get_engine(self.settings())
        upgrade(engine)  # idempotent: a no-op once the schema is at head
        return engine
