"""Label sources and which label counts (fraud/db/labels.py): people's verdicts beside the ETL's file labels."""

from datetime import datetime, timedelta
from uuid import uuid4

import pandas as pd
import pytest
from sqlalchemy import text

from fraud.db.labels import record_verdicts
from fraud.db.load import load_processed


def _label(engine, trans_num: str):
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT is_fraud, labelled_at, source, actor FROM transaction_label WHERE trans_num = :t"),
            {"t": trans_num},
        ).one_or_none()


def _events(engine, trans_num: str) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text("SELECT verdict, source, actor, note FROM label_event WHERE trans_num = :t ORDER BY id"),
                {"t": trans_num},
            )
        ]


def _file_label(engine, trans_num: str, is_fraud: bool, labelled_at: datetime) -> None:
    labels = pd.DataFrame({"trans_num": [trans_num], "is_fraud": [is_fraud], "labelled_at": [labelled_at]})
    load_processed(engine, pd.DataFrame(), labels, [])


def test_a_verdict_becomes_the_label_and_a_later_one_replaces_it_keeping_history(engine):
    t = f"lbl-{uuid4().hex}"
    with engine.begin() as connection:
        first = record_verdicts(connection, [t], "fraud", "analyst", "ana", note="card testing")
    assert _label(engine, t) == (True, first, "analyst", "ana")
    with engine.begin() as connection:
        record_verdicts(connection, [t], "genuine", "customer", "alert#7")
    assert _label(engine, t)[0::2] == (False, "customer")
    with engine.begin() as connection:
        record_verdicts(connection, [t], "unsure", "analyst", "bob")
    assert _label(engine, t)[0::2] == (False, "customer")  # unsure never becomes a label
    assert _events(engine, t) == [
        ("fraud", "analyst", "ana", "card testing"),
        ("genuine", "customer", "alert#7", None),
        ("unsure", "analyst", "bob", None),
    ]


def test_a_verdict_is_stamped_with_the_platforms_clock(engine):
    t = f"lbl-{uuid4().hex}"
    with engine.begin() as connection:
        at = record_verdicts(connection, [t], "fraud", "analyst", "ana")
        newest = connection.execute(text("SELECT max(event_time) FROM fact_transaction")).scalar_one()
    assert at == (newest or at)


def test_the_etl_reloading_a_stored_verdict_leaves_it_a_verdict_and_a_later_file_label_replaces_it(engine):
    t = f"lbl-{uuid4().hex}"
    with engine.begin() as connection:
        at = record_verdicts(connection, [t], "fraud", "analyst", "ana")
    _file_label(engine, t, True, at)  # the ETL reloads the labels it read from the database: same time
    assert _label(engine, t)[2:] == ("analyst", "ana")
    _file_label(engine, t, True, at - timedelta(days=1))  # an older file label changes nothing
    assert _label(engine, t)[2:] == ("analyst", "ana")
    later = at + timedelta(days=3)
    _file_label(engine, t, False, later)  # a chargeback file after the verdict: the latest counts
    assert _label(engine, t) == (False, later, "file", None)
    assert _events(engine, t) == [("fraud", "analyst", "ana", None)]


def test_verdict_history_is_append_only_and_file_verdicts_are_refused(engine):
    t = f"lbl-{uuid4().hex}"
    with engine.begin() as connection:
        record_verdicts(connection, [t], "fraud", "analyst", "ana")
    for statement in ("UPDATE label_event SET verdict = 'genuine'", "DELETE FROM label_event"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
            connection.execute(text(f"{statement} WHERE trans_num = :t"), {"t": t})
    with pytest.raises(ValueError, match="label files"), engine.begin() as connection:
        record_verdicts(connection, [t], "fraud", "file", "etl")
