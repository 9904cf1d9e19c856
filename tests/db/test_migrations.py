"""The Alembic migration against a real (embedded) PostgreSQL."""

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from fraud.db.migrate import MIGRATIONS, current_revision, downgrade, upgrade
from fraud.db.models import Base
from tests.db.test_partitions import _load, _rows, _where

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
        # the day partitions (migration 0009) are the partitioned tables' parts, not tables of the model
        partitions = set(connection.execute(text("SELECT relname FROM pg_class WHERE relispartition")).scalars())
        assert {"fact_transaction_default", "transaction_features_default"} <= partitions
        context = MigrationContext.configure(
            connection, opts={"include_name": lambda name, kind, _: not (kind == "table" and name in partitions)}
        )
        diff = compare_metadata(context, Base.metadata)
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


def test_day_partitions_keep_the_rows_through_a_downgrade_and_an_upgrade(engine):
    """0009 moves existing rows into day partitions (and its downgrade moves them back into plain tables)."""
    tag = "migrated"
    _load(engine, _rows(tag, [datetime(2002, 1, 1, 23, tzinfo=UTC), datetime(2002, 1, 2, 1, tzinfo=UTC)], tag), tag)
    read = (
        "SELECT t.trans_num, t.event_time, f.values FROM fact_transaction t"
        " JOIN transaction_features f USING (trans_num) WHERE t.trans_num LIKE 'migrated-%'"
    )
    kind = "SELECT relkind FROM pg_class WHERE relname = 'fact_transaction'"
    with engine.connect() as connection:
        before = connection.execute(text(f"{read} ORDER BY 1")).all()
    downgrade(engine, "0008")
    with engine.connect() as connection:
        assert connection.execute(text(f"{read} ORDER BY 1")).all() == before
        assert connection.execute(text(kind)).scalar() == "r"  # a plain table again
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text(f"{read} ORDER BY 1")).all() == before
        assert connection.execute(text(kind)).scalar() == "p"
        keys = connection.execute(text("SELECT count(*) FROM transaction_key WHERE trans_num LIKE 'migrated-%'"))
        assert keys.scalar() == len(before) == 2
    assert _where(engine, "fact_transaction", tag) == {
        f"{tag}-0": "fact_transaction_p20020101",
        f"{tag}-1": "fact_transaction_p20020102",
    }
    assert _where(engine, "transaction_features", tag) == {
        f"{tag}-0": "transaction_features_p20020101",
        f"{tag}-1": "transaction_features_p20020102",
    }
