"""recent_transaction (migration 0011, fraud/db/recent.py): the real-time read's unpartitioned table of the last
days. fact_transaction's triggers keep it equal to the facts from its horizon on, whoever writes them; the load
trims it a day at a time; a read whose window reaches below the horizon reads the day partitions and gets the
same history. Each test has a database of its own: trimming moves the horizon for everything in it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr
from sqlalchemy import text

from bench.scoring import load_world, requests_for
from fraud.db.decisions import DECISION_SQL, SETTLED_DECISION_SQL
from fraud.db.engine import conninfo, create_database_if_missing, database_url, get_engine
from fraud.db.migrate import upgrade
from fraud.db.recent import KEEP
from fraud.db.roles import DbRole
from fraud.features.online import (
    Transaction,
    feature_vector,
    fetch_history,
    history_from_row,
    history_parameters,
    parse_transaction,
)
from fraud.serving.realtime import RealtimeScorer
from tests.db.test_partitions import _load, _rows
from tests.helpers.litert_models import publish_logistic, weights_for

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
COLUMNS = "trans_num, event_time, card_token, merchant, category, amount"


@pytest.fixture
def own(settings):
    """A migrated database of this test's own: (settings, owner engine)."""
    url = create_database_if_missing(database_url(settings), f"recent_{uuid.uuid4().hex[:8]}")
    fresh = settings.model_copy(update={"database_url": SecretStr(url.render_as_string(hide_password=False))})
    engine = get_engine(fresh)
    upgrade(engine)
    yield fresh, engine
    engine.dispose()


def _recent(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(f"SELECT {COLUMNS} FROM recent_transaction ORDER BY 1"))]


def _facts(engine, since: datetime | None = None) -> list[tuple]:
    where = "WHERE event_time >= :since" if since else ""
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT {COLUMNS} FROM fact_transaction {where} ORDER BY 1"), {"since": since})
        return [tuple(r) for r in rows]


def _horizon(engine) -> datetime | None:
    """None while the horizon is -infinity (recent_transaction holds every transaction)."""
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT CASE WHEN since = '-infinity' THEN NULL ELSE since END FROM recent_horizon")
        ).scalar_one()


def _tx(card: str, merchant: str, at: datetime) -> Transaction:
    return Transaction(
        trans_num=f"rt-{uuid.uuid4().hex}",
        event_time=at,
        card_token=card,
        last4="4242",
        merchant=merchant,
        category="grocery_pos",
        amt=20.0,
        merch_lat=40.0,
        merch_long=-75.0,
        city_pop=5000,
        lat=40.1,
        long=-75.1,
    )


def test_a_load_writes_its_rows_and_a_rerun_changes_nothing(own):
    settings, engine = own
    frame = _rows("a", [T0 + timedelta(hours=h) for h in range(0, 72, 5)], "a")
    _load(get_engine(settings, role=DbRole.WRITER), frame, "a")  # as the ETL loads: the writer's triggers
    assert _recent(engine) == _facts(engine) and len(_recent(engine)) == len(frame)
    _load(engine, frame, "a")
    assert len(_recent(engine)) == len(frame)


def test_the_load_trims_whole_days_older_than_keep_and_leaves_the_facts(own):
    settings, engine = own
    assert _horizon(engine) is None  # a new database: every transaction
    old = [T0 + timedelta(days=d) for d in range(5)]  # 1-5 March, noon
    _load(engine, _rows("old", old, "old"), "old")
    assert _horizon(engine) == datetime.combine((old[-1] - KEEP).date(), datetime.min.time(), UTC)
    newest = T0 + KEEP + timedelta(days=2, hours=3)
    _load(get_engine(settings, role=DbRole.WRITER), _rows("new", [newest], "new"), "new")
    cut = datetime.combine((newest - KEEP).date(), datetime.min.time(), UTC)
    assert _horizon(engine) == cut
    assert _recent(engine) == _facts(engine, since=cut)  # the days below the cut are gone, the rest stay
    assert {r[0] for r in _recent(engine)} == {"old-2", "old-3", "old-4", "new-0"}  # from 3 March, 00:00 UTC
    assert len(_facts(engine)) == 6  # the facts themselves are never trimmed
    # a transaction dated years ahead (validation admits up to 2100) does not move the horizon: the newest up to now
    _load(engine, _rows("future", [datetime(2099, 1, 1, tzinfo=UTC)], "future"), "future")
    assert _horizon(engine) == cut and "old-2" in {r[0] for r in _recent(engine)}
    # a backfilled day older than the horizon stays out of it; the facts take it
    _load(engine, _rows("back", [T0 - timedelta(days=9)], "back"), "back")
    assert "back-0" not in {r[0] for r in _recent(engine)} and len(_facts(engine)) == 8


def test_the_owners_updates_deletes_and_truncation_reach_it(own):
    _, engine = own
    _load(engine, _rows("u", [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)], "u"), "u")
    with engine.begin() as connection:
        connection.execute(text("UPDATE fact_transaction SET amount = 99 WHERE trans_num = 'u-0'"))
        connection.execute(text("DELETE FROM transaction_features WHERE trans_num = 'u-1'"))  # its references first
        connection.execute(text("DELETE FROM fact_transaction WHERE trans_num = 'u-1'"))
    assert _recent(engine) == _facts(engine)
    assert [r[0] for r in _recent(engine)] == ["u-0", "u-2"] and _recent(engine)[0][5] == 99
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE fact_transaction, fraud_score"))
    assert _recent(engine) == []


def test_a_window_below_the_horizon_reads_the_day_partitions_and_gets_the_same_history(own):
    settings, engine = own
    # a card's (and its merchant's) transactions over 70 days, then another card's far enough ahead that the trim
    # moves the horizon to day 4 of them
    times = [T0 + timedelta(days=d, hours=d % 7) for d in range(70)]
    frame = _rows("h", times, "h")
    _load(engine, frame, "h")
    card, merchant = frame["card_token"][0], frame["merchant"][0]
    late = _tx(card, merchant, T0 + timedelta(days=69, hours=12))  # looks back to day 9: above the horizon
    early = _tx(card, merchant, T0 + timedelta(days=20))  # its 30 days reach days 0-3, below it
    with psycopg.connect(conninfo(settings, DbRole.REALTIME), autocommit=True) as connection:
        before = {tx.trans_num: fetch_history(connection, tx) for tx in (late, early)}
        assert before[early.trans_num].card_counts["30d"] == 20
        _load(engine, _rows("n", [T0 + timedelta(days=5) + KEEP], "n"), "n")
        assert T0 < _horizon(engine) < T0 + timedelta(days=5)
        with connection.cursor(row_factory=dict_row) as cursor:
            for tx in (late, early):
                parameters = {**history_parameters(tx), "trans_num": tx.trans_num}
                fast = cursor.execute(DECISION_SQL, parameters).fetchone()
                settled = cursor.execute(SETTLED_DECISION_SQL, parameters).fetchone()
                assert fast["complete"] is (tx is late)  # only the early window reaches below the horizon
                assert history_from_row(settled) == before[tx.trans_num]
                # the fast read's history is whole only when complete; fetch_history falls back when it is not
                assert (history_from_row(fast) == before[tx.trans_num]) is (tx is late)
                assert fetch_history(connection, tx) == before[tx.trans_num]


def test_the_real_time_scorer_reads_the_day_partitions_for_a_window_below_the_horizon(own):
    """The request path itself (RealtimeScorer): a known card's request whose 30 days reach below the horizon is
    decided on its whole history, the one the day partitions hold."""
    settings, engine = own
    mine = settings.model_copy(update={"model_name": f"recent-{uuid.uuid4().hex[:6]}"})
    frame = load_world(engine, mine, 3_000, "recent", seed=5)  # 20 days from 1 January 2026
    publish_logistic(mine, "recent-v1", weights_for(amt_log=0.6, card_count_30d=0.2), -4.0, 0.5)
    raw = requests_for(frame, 1, seed=9)[0]  # an hour to a day after the world's last transaction
    tx = parse_transaction(raw, mine.token_key())
    with psycopg.connect(conninfo(mine, DbRole.REALTIME), autocommit=True) as connection:
        whole = fetch_history(connection, tx)
    assert whole.card_counts["30d"] > 0
    # another card far ahead: the horizon moves past the world's first ten days
    _load(engine, _rows("ahead", [datetime(2026, 1, 11, tzinfo=UTC) + KEEP], "ahead"), "ahead")
    assert _horizon(engine) == datetime(2026, 1, 11, tzinfo=UTC)
    RealtimeScorer(mine, recheck_seconds=3600).score(raw)
    with engine.connect() as connection:
        recorded = connection.execute(
            text("SELECT features FROM realtime_decision WHERE trans_num = :t"), {"t": tx.trans_num}
        ).scalar_one()
    assert recorded == pytest.approx(feature_vector(tx, whole).tolist())
