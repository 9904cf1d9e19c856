"""Resources: the platform settings (one object, from FRAUD_* variables) and the clients built from them."""

from __future__ import annotations

from dagster import ConfigurableResource
from sqlalchemy import Engine

from fraud.core import aws
from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store
from fraud.db.engine import get_engine
from fraud.db.migrate import upgrade


class FraudPlatform(ConfigurableResource):
    """Everything an asset needs to reach the platform: settings, buckets and the migrated database."""

    def settings(self) -> Settings:
        return Settings()

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

    def engine(self) -> Engine:
        engine = get_engine(self.settings())
        upgrade(engine)  # idempotent: a no-op once the schema is at head
        return engine
