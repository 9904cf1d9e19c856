"""Day partitions (migration 0009) and the load's set-based checks (fraud/db/load.py): a new day gets its partitions,
a batch spanning midnight lands in two, references that do not exist and duplicate trans_nums are refused with the
SQLSTATEs a foreign key and a primary key gave, a rerun changes nothing, a batch that does not add up loads nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pandas as pd
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from fraud.db.engine import get_engine
from fraud.db.load import BatchAccounting, load_processed
from fraud.db.roles import DbRole
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION

NO_LABELS = pd.DataFrame(columns=["trans_num", "is_fraud", "labelled_at"])


def _rows(tag: str, times: list[datetime], batch_id: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "trans_num": f"{tag}-{i}",
                "event_time": at,
                "card_token": f"{tag}-card".ljust(64, "0"),
                "last4": "4242",
                "merchant": f"fraud_{tag} shop",
                "category": "grocery_pos",
                "amt": 12.5 + i,
                "merch_lat": 40.0,
                "merch_long": -75.0,
                "first": "Ann",
                "last": "Lee",
                "gender": "F",
                "dob": None,
                "street": "1 Main St",
                "city": "Springfield",
                "state": "PA",
                "zip": "19000",
                "lat": 40.1,
                "long": -75.1,
                "city_pop": 5000,
                "job": "Engineer",
                "batch_id": batch_id,
                "features": [float(i)] * len(FEATURE_NAMES),
            }
            for i, at in enumerate(times)
        ]
    )


def _load(engine, frame: pd.DataFrame, batch_id: str) -> dict[str, int]:
    accounting = BatchAccounting(batch_id, f"test/{batch_id}", len(frame), len(frame), 0, 0)
    return load_processed(engine, frame, NO_LABELS, [accounting])


def _where(engine, table: str, prefix: str) -> dict[str, str]:
    """trans_num → the partition its row of `table` is in."""
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text(f"SELECT trans_num, tableoid::regclass::text FROM {table} WHERE trans_num LIKE :p"),
                {"p": prefix + "%"},
            ).all()
        )


def _snapshot(engine, prefix: str) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("""
                SELECT t.trans_num, t.event_time, t.amount, t.batch_id, f.feature_version, f.values, f.event_day,
                       k.event_time
                FROM fact_transaction t
                JOIN transaction_features f ON f.trans_num = t.trans_num
                JOIN transaction_key k ON k.trans_num = t.trans_num
                WHERE t.trans_num LIKE :p ORDER BY t.trans_num"""),
                {"p": prefix + "%"},
            )
        ]


def _sqlstate(error: DBAPIError) -> str:
    return error.orig.sqlstate


def test_a_new_day_gets_its_partitions_made_by_the_owner_and_the_writer_can_load_it(engine, settings):
    tag = f"newday-{uuid4().hex[:8]}"
    frame = _rows(tag, [datetime(2001, 3, 4, 12, tzinfo=UTC), datetime(2001, 3, 4, 13, tzinfo=UTC)], tag)
    # the ETL's role loads it: it may run the partition maker, not create tables itself
    gained = _load(get_engine(settings, role=DbRole.WRITER), frame, tag)
    assert gained["fact_transaction"] == 2
    assert set(_where(engine, "fact_transaction", tag).values()) == {"fact_transaction_p20010304"}
    assert set(_where(engine, "transaction_features", tag).values()) == {"transaction_features_p20010304"}
    with engine.connect() as connection:
        owners = connection.execute(
            text("""
            SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class
            WHERE relname IN ('fact_transaction', 'fact_transaction_p20010304', 'transaction_features_p20010304')""")
        ).scalars()
        assert list(owners) == [connection.execute(text("SELECT current_user")).scalar()]


def test_a_batch_spanning_two_days_lands_in_both_days_partitions(engine):
    tag = f"span-{uuid4().hex[:8]}"
    midnight = datetime(2001, 5, 7, tzinfo=UTC)
    frame = _rows(tag, [midnight - timedelta(seconds=1), midnight, midnight + timedelta(hours=23, minutes=59)], tag)
    _load(engine, frame, tag)
    expected = {f"{tag}-0": "20010506", f"{tag}-1": "20010507", f"{tag}-2": "20010507"}
    assert _where(engine, "fact_transaction", tag) == {t: f"fact_transaction_p{d}" for t, d in expected.items()}
    assert _where(engine, "transaction_features", tag) == {t: f"transaction_features_p{d}" for t, d in expected.items()}


def test_rows_written_to_a_day_without_partition_move_into_it_when_it_is_made(engine):
    tag = f"default-{uuid4().hex[:8]}"
    at = datetime(2001, 8, 9, 10, tzinfo=UTC)
    frame = _rows(tag, [at], tag)
    with engine.begin() as connection:  # a writer other than the load: dimensions, then the fact row
        connection.execute(
            text("INSERT INTO dim_card (card_token, last4) VALUES (:c, '4242')"), {"c": frame.card_token[0]}
        )
        connection.execute(text("INSERT INTO dim_merchant (merchant) VALUES (:m)"), {"m": frame.merchant[0]})
        connection.execute(
            text("""
            INSERT INTO fact_transaction (trans_num, event_time, card_token, merchant, amount, batch_id)
            VALUES (:t, :at, :c, :m, 1, 'by-hand')"""),
            {"t": f"{tag}-early", "at": at, "c": frame.card_token[0], "m": frame.merchant[0]},
        )
    assert _where(engine, "fact_transaction", tag) == {f"{tag}-early": "fact_transaction_default"}
    _load(engine, frame, tag)
    assert set(_where(engine, "fact_transaction", tag).values()) == {"fact_transaction_p20010809"}


def test_a_reference_that_does_not_exist_is_refused_with_23503(engine):
    tag = f"ref-{uuid4().hex[:8]}"
    at = datetime(2001, 9, 1, 8, tzinfo=UTC)
    _load(engine, _rows(tag, [at], tag), tag)
    known = f"{tag}-0"
    features = (
        "INSERT INTO transaction_features (trans_num, feature_version, values, event_day) VALUES (:t, 'vx', '{1}', :d)"
    )
    refused = [
        (features, {"t": "no-such-transaction", "d": at.date()}),
        (features, {"t": known, "d": (at + timedelta(days=1)).date()}),  # the transaction, but another day's
        ("INSERT INTO customer_alert_transaction (alert_id, trans_num, channel) VALUES (1, 'no-such', 'email')", {}),
        (
            "INSERT INTO fact_transaction (trans_num, event_time, card_token, merchant, amount, batch_id) "
            "VALUES (:t, :at, 'no-such-card', 'no-such-merchant', 1, 'x')",
            {"t": f"{tag}-orphan", "at": at},
        ),
    ]
    for statement, params in refused:
        with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
            connection.execute(text(statement), params)
        assert isinstance(raised.value.orig, psycopg.errors.ForeignKeyViolation), statement
    with engine.begin() as connection:  # the same statement naming the transaction and its day is accepted
        connection.execute(text(features), {"t": known, "d": at.date()})
    # a card its transactions name cannot be removed from under them
    with pytest.raises(IntegrityError, match='referenced from table "fact_transaction"') as raised:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM dim_card WHERE card_token = :c"), {"c": f"{tag}-card".ljust(64, "0")})
    assert _sqlstate(raised.value) == "23503"
    # a transaction with features cannot be removed from under them
    with pytest.raises(IntegrityError, match='referenced from table "transaction_features"') as raised:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM fact_transaction WHERE trans_num = :t"), {"t": known})
    assert _sqlstate(raised.value) == "23503"


def test_a_duplicate_trans_num_on_another_day_is_refused_or_skipped(engine):
    tag = f"dup-{uuid4().hex[:8]}"
    first = datetime(2001, 10, 1, 9, tzinfo=UTC)
    _load(engine, _rows(tag, [first], tag), tag)
    later = first + timedelta(days=3)  # another partition: only transaction_key sees both
    with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
        connection.execute(
            text("""
            INSERT INTO fact_transaction (trans_num, event_time, card_token, merchant, amount, batch_id)
            SELECT trans_num, :later, card_token, merchant, amount, batch_id
            FROM fact_transaction WHERE trans_num = :t"""),
            {"t": f"{tag}-0", "later": later},
        )
    assert _sqlstate(raised.value) == "23505"
    # the load skips it as a duplicate (the earlier transaction stays), as ON CONFLICT (trans_num) did
    before = _snapshot(engine, tag)
    assert _load(engine, _rows(tag, [later], f"{tag}-again"), f"{tag}-again")["fact_transaction"] == 0
    assert _snapshot(engine, tag) == before
    assert set(_where(engine, "fact_transaction", tag).values()) == {"fact_transaction_p20011001"}


def test_a_rerun_changes_nothing(engine):
    tag = f"rerun-{uuid4().hex[:8]}"
    frame = _rows(tag, [datetime(2001, 11, 2, 23, 30, tzinfo=UTC), datetime(2001, 11, 3, 0, 30, tzinfo=UTC)], tag)
    assert _load(engine, frame, tag)["fact_transaction"] == 2
    loaded = _snapshot(engine, tag)
    assert len(loaded) == 2 and {row[4] for row in loaded} == {FEATURE_VERSION}
    assert _load(engine, frame, tag) == {"fact_transaction": 0, "dim_card": 0, "dim_merchant": 0}
    assert _snapshot(engine, tag) == loaded


def test_a_batch_whose_rows_do_not_add_up_loads_nothing(engine):
    tag = f"acct-{uuid4().hex[:8]}"
    frame = _rows(tag, [datetime(2001, 12, 5, 1, tzinfo=UTC)] * 1, tag)
    short = BatchAccounting(tag, f"test/{tag}", 3, 3, 0, 0)  # says 3 rows loaded; 1 is there
    with pytest.raises(ValueError, match="not what they account for"):
        load_processed(engine, frame, NO_LABELS, [short])
    assert _snapshot(engine, tag) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM batch_load WHERE batch_id = :b"), {"b": tag}).scalar() == 0
