"""fraud_score → fact_transaction, enforced per statement by migration 0004's triggers: what the foreign key
refused is still refused, with the same SQLSTATE, and a delete racing a score writer cannot orphan a score."""

import threading

import numpy as np
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bench.scoring import load_world
from fraud.db.scores import write_scores

SCORE = (
    "INSERT INTO fraud_score (trans_num, model_version, score, flagged, threshold, outcome, ruleset_version) "
    "VALUES (:t, 'ref', 0.9, true, 0.5, 'review', 'none')"
)


@pytest.fixture(scope="module")
def transactions(engine, settings):
    return load_world(engine, settings, 12, "refcheck")["trans_num"].tolist()


def _remove(connection, trans_num: str):
    """Delete a transaction the way an operator would: its features (a plain foreign key) first."""
    connection.execute(text("DELETE FROM transaction_features WHERE trans_num = :t"), {"t": trans_num})
    connection.execute(text("DELETE FROM fact_transaction WHERE trans_num = :t"), {"t": trans_num})


def _is_reference_violation(error: IntegrityError) -> bool:
    return isinstance(error.orig, psycopg.errors.ForeignKeyViolation)


def test_a_score_of_an_unknown_transaction_is_refused(engine, transactions):
    with pytest.raises(IntegrityError, match='is not present in table "fact_transaction"') as raised:
        with engine.begin() as connection:
            connection.execute(text(SCORE), {"t": "no-such-transaction"})
    assert _is_reference_violation(raised.value)
    # the batch scorer's COPY path too, with a known transaction in the same page: nothing of the page is kept
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        write_scores(
            engine,
            "ref-copy",
            0.5,
            [transactions[0], "no-such-transaction"],
            np.array([0.1, 0.2]),
            np.array([False, False]),
            ["[]", "[]"],
        )
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM fraud_score WHERE model_version = 'ref-copy'")).scalar_one()
            == 0
        )
    with pytest.raises(IntegrityError) as raised:
        with engine.begin() as connection:
            connection.execute(text(SCORE), {"t": transactions[1]})
            connection.execute(
                text("UPDATE fraud_score SET trans_num = 'elsewhere' WHERE trans_num = :t"), {"t": transactions[1]}
            )
    assert _is_reference_violation(raised.value)


def test_a_scored_transaction_cannot_be_removed(engine, transactions):
    scored, unscored = transactions[2], transactions[3]
    with engine.begin() as connection:
        connection.execute(text(SCORE), {"t": scored})
    with pytest.raises(IntegrityError, match='still referenced from table "fraud_score"') as raised:
        with engine.begin() as connection:
            _remove(connection, scored)
    assert _is_reference_violation(raised.value)
    with pytest.raises(IntegrityError) as raised:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE fact_transaction SET trans_num = 'renamed' WHERE trans_num = :t"), {"t": scored}
            )
    assert _is_reference_violation(raised.value)
    with engine.begin() as connection:  # an unscored one goes; so does a scored one once its scores are gone
        _remove(connection, unscored)
        connection.execute(text("DELETE FROM fraud_score WHERE trans_num = :t"), {"t": scored})
        _remove(connection, scored)
        left = connection.execute(
            text("SELECT count(*) FROM fact_transaction WHERE trans_num IN (:a, :b)"), {"a": scored, "b": unscored}
        ).scalar_one()
    assert left == 0


def test_truncating_transactions_must_take_their_scores_along(engine, transactions):
    with engine.begin() as connection:
        connection.execute(text(SCORE), {"t": transactions[4]})
    with pytest.raises(IntegrityError) as raised:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text("TRUNCATE fact_transaction CASCADE"))
    assert _is_reference_violation(raised.value)
    with engine.connect() as connection:  # both in one command is allowed; rolled back, other tests keep their rows
        with connection.begin() as transaction:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text("TRUNCATE fact_transaction, fraud_score CASCADE"))
            assert connection.execute(text("SELECT count(*) FROM fact_transaction")).scalar_one() == 0
            transaction.rollback()
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM fraud_score WHERE trans_num = :t"), {"t": transactions[4]}
            ).scalar_one()
            == 1
        )


def test_a_delete_waits_for_a_score_writer_in_flight_and_then_fails(engine, transactions):
    target = transactions[5]
    writer = engine.connect()
    writer.begin()
    writer.execute(text(SCORE), {"t": target})  # not committed yet: nothing locks the transaction's row
    outcome: dict = {}
    deleting = threading.Event()

    def delete():
        try:
            with engine.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '20s'"))
                deleting.set()
                _remove(connection, target)
        except IntegrityError as error:
            outcome["error"] = error

    thread = threading.Thread(target=delete)
    thread.start()
    deleting.wait(10)
    thread.join(1.0)
    assert thread.is_alive(), "the delete did not wait for the score writer"
    writer.commit()
    writer.close()
    thread.join(30)
    assert not thread.is_alive()
    assert "error" in outcome and _is_reference_violation(outcome["error"])
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM fact_transaction WHERE trans_num = :t"), {"t": target}
            ).scalar_one()
            == 1
        )
        assert (
            connection.execute(
                text("SELECT count(*) FROM fraud_score WHERE trans_num = :t"), {"t": target}
            ).scalar_one()
            == 1
        )
