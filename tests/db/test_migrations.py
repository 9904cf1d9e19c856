"""The Alembic migration against a real (embedded) PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from fraud.db.migrate import MIGRATIONS, current_revision, downgrade, upgrade
from fraud.db.models import Base

STAR_SCHEMA = {
    "dim_card",
    "dim_merchant",
    "dim_category",
    "fact_transaction",
    "transaction_features",
    "transaction_label",
    "fraud_score",
    "customer_alert",
    "customer_alert_transaction",
    "batch_load",
}


def test_upgrade_creates_the_star_schema(engine):
    assert STAR_SCHEMA <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == ScriptDirectory(str(MIGRATIONS)).get_current_head()


def test_migration_matches_the_models(engine):
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_no_raw_card_number_column_and_address_on_the_card(engine):
    inspector = inspect(engine)
    columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in STAR_SCHEMA}
    assert not any("cc_num" in cols for cols in columns.values())
    assert {"street", "city", "state", "zip", "home_lat", "home_long"} <= columns["dim_card"]
    assert not {"street", "city", "state", "zip"} & columns["dim_merchant"]


def test_downgrade_and_upgrade_round_trip(engine):
    downgrade(engine, "base")
    assert not STAR_SCHEMA & set(inspect(engine).get_table_names())
    upgrade(engine)
    upgrade(engine)  # idempotent at head
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM dim_category")).scalar_one() == 14
