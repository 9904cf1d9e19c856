"""The decision log's read side (fraud/db/decisions.py): listing with filters, newest first, and the per-day and
per-channel figures, on rows recorded with the serving path's own RECORD_SQL into the session's database.

The database is shared with other modules of the worker: these rows have their own trans_num prefix and
received_at in 2031 (no other module records then), and are removed afterwards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest
from psycopg.types.json import Jsonb

from fraud.db.decisions import (
    RECORD_SQL,
    DecisionFilter,
    channel_decisions,
    daily_decisions,
    day_window,
    recent_decisions,
)

PREFIX = "tdl-"
CARD_A = "a1b2c3d4" + "0" * 56
CARD_B = "ffee0011" + "1" * 56
DAY1 = datetime(2031, 3, 1, tzinfo=UTC)
NOW = datetime(2031, 3, 3, 12, tzinfo=UTC)  # the report's "now": the window is 2031-03-01..03 for days=3


def decision(n: int, received_at: datetime, **overrides) -> dict:
    row = {
        "trans_num": f"{PREFIX}{n:03d}",
        "request_digest": f"{n:064x}",
        "received_at": received_at,
        "event_time": received_at - timedelta(seconds=1),
        "card_token": CARD_A,
        "last4": "4242",
        "merchant": "fraud_Kirlin and Sons",
        "category": "shopping_net",
        "amount": 12.5 + n,
        "merch_lat": 40.0,
        "merch_long": -73.0,
        "new_card": False,
        "new_merchant": False,
        "score": 0.1,
        "flagged": False,
        "threshold": 0.7,
        "reasons": Jsonb([{"feature": "amt_log", "contribution": 0.25}]),
        "model_version": "m-one",
        "feature_version": "v3",
        "features": [0.0, 1.0],
        "latency_ms": 4.0,
        "channel": "api",
        "rules_fired": [],
        "ruleset_version": "test-rules",
    }
    row = {**row, **overrides}
    flagged = row["flagged"]
    return {"outcome": "review" if flagged else "approve", "decided_by": "model-threshold" if flagged else None, **row}


ROWS = [
    decision(1, DAY1 + timedelta(hours=1), latency_ms=2.0, new_card=True),
    decision(2, DAY1 + timedelta(hours=2), latency_ms=4.0, flagged=True, score=0.91),
    decision(3, DAY1 + timedelta(hours=23, minutes=59, seconds=59), latency_ms=10.0, channel="lambda"),
    # 00:30 UTC on day 2, given at +02:00: counted on the UTC day
    decision(
        4,
        datetime(2031, 3, 2, 2, 30, tzinfo=timezone(timedelta(hours=2))),
        card_token=CARD_B,
        last4="1111",
        flagged=True,
        score=0.8,
        model_version="m-two",
        latency_ms=7.0,
        new_card=True,
    ),
    decision(5, datetime(2031, 3, 3, 9, tzinfo=UTC), card_token=CARD_B, last4="1111", model_version="m-two"),
    decision(6, datetime(2031, 3, 3, 10, tzinfo=UTC), latency_ms=100.0, channel="lambda", flagged=True),
]
IN_2031 = DecisionFilter(since=datetime(2031, 1, 1, tzinfo=UTC), until=datetime(2032, 1, 1, tzinfo=UTC))


def record(engine, rows: list[dict]) -> None:
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor:
            cursor.executemany(RECORD_SQL, rows)
        driver.commit()


def forget(engine, prefix: str = PREFIX) -> None:
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute("DELETE FROM realtime_decision WHERE trans_num LIKE %s", (prefix + "%",))
        driver.commit()


@pytest.fixture(scope="module")
def logged(engine):
    forget(engine)
    record(engine, ROWS)
    yield engine
    forget(engine)


def listed(engine, **where) -> list[str]:
    kept = recent_decisions(engine, replace(IN_2031, **where))
    return [d.trans_num.removeprefix(PREFIX) for d in kept if d.trans_num.startswith(PREFIX)]


def test_recent_decisions_newest_first_with_their_fields(logged):
    decisions = recent_decisions(logged, IN_2031)
    assert [d.trans_num for d in decisions] == [f"{PREFIX}{n:03d}" for n in (6, 5, 4, 3, 2, 1)]
    newest = decisions[0]
    assert newest.received_at == datetime(2031, 3, 3, 10, tzinfo=UTC) and newest.channel == "lambda"
    assert newest.amount == 18.5 and isinstance(newest.amount, float)  # NUMERIC comes back as a float
    assert newest.reasons == [{"feature": "amt_log", "contribution": 0.25}]
    assert (newest.flagged, newest.new_card, newest.latency_ms) == (True, False, 100.0)
    assert not hasattr(newest, "features")  # the vector stays in the database


def test_limit(logged):
    assert listed(logged, limit=2) == ["006", "005"]
    assert listed(logged, limit=0) == []


def test_filters(logged):
    assert listed(logged, card_token=CARD_B) == ["005", "004"]
    assert listed(logged, card_token=CARD_B[:8]) == ["005", "004"]  # the prefix the CLI's table shows
    assert listed(logged, card_token=CARD_B[:8] + "x") == []
    assert listed(logged, last4="4242") == ["006", "003", "002", "001"]
    assert listed(logged, flagged=True) == ["006", "004", "002"]
    assert listed(logged, flagged=False) == ["005", "003", "001"]
    assert listed(logged, model_version="m-two") == ["005", "004"]
    assert listed(logged, model_version="m-two", flagged=True, card_token=CARD_B) == ["004"]
    # since inclusive, until exclusive
    assert listed(logged, since=datetime(2031, 3, 2, 0, 30, tzinfo=UTC)) == ["006", "005", "004"]
    assert listed(logged, until=datetime(2031, 3, 2, 0, 30, tzinfo=UTC)) == ["003", "002", "001"]


def test_filter_values_are_bound_not_spliced(logged):
    assert listed(logged, model_version="m-one' OR '1'='1") == []
    assert listed(logged, card_token="' OR 1=1 --") == []


def test_daily_figures(logged):
    days = {d.key: d for d in daily_decisions(logged, 3, now=NOW)}
    assert list(days) == [date(2031, 3, 1), date(2031, 3, 2), date(2031, 3, 3)]
    first = days[date(2031, 3, 1)]  # 23:59:59 UTC is still day 1
    assert (first.decisions, first.flagged, first.new_cards) == (3, 1, 1)
    assert first.flag_rate == pytest.approx(1 / 3)
    # percentile_cont interpolates linearly, as numpy's default percentile does
    for name, q in (("latency_p50", 50), ("latency_p95", 95), ("latency_p99", 99)):
        assert getattr(first, name) == pytest.approx(np.percentile([2.0, 4.0, 10.0], q))
    second = days[date(2031, 3, 2)]  # 02:30 at +02:00 is 00:30 UTC
    assert (second.decisions, second.flagged, second.new_cards, second.latency_p99) == (1, 1, 1, 7.0)
    third = days[date(2031, 3, 3)]
    assert (third.decisions, third.flagged, third.flag_rate) == (2, 1, 0.5)
    assert third.latency_p50 == pytest.approx(52.0)


def test_daily_figures_cover_the_last_n_days_only(logged):
    assert [d.key for d in daily_decisions(logged, 1, now=NOW)] == [date(2031, 3, 3)]
    assert [d.key for d in daily_decisions(logged, 2, now=NOW)] == [date(2031, 3, 2), date(2031, 3, 3)]
    # a `now` before some decisions: they are not counted
    assert [d.key for d in daily_decisions(logged, 3, now=datetime(2031, 3, 1, 5, tzinfo=UTC))] == [date(2031, 3, 1)]
    assert daily_decisions(logged, 7, now=datetime(2031, 6, 1, tzinfo=UTC)) == []


def test_channel_figures(logged):
    channels = {c.key: c for c in channel_decisions(logged, 3, now=NOW)}
    assert list(channels) == ["api", "lambda"]
    assert (channels["api"].decisions, channels["api"].flagged) == (4, 2)
    assert (channels["lambda"].decisions, channels["lambda"].flagged) == (2, 1)
    assert channels["lambda"].latency_p50 == pytest.approx(55.0)


def test_day_window():
    start, end = day_window(3, datetime(2031, 3, 3, 23, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert (start, end) == (datetime(2031, 3, 2, tzinfo=UTC), datetime(2031, 3, 5, tzinfo=UTC))  # 04:30 UTC on 4 March
    assert (
        day_window(0, NOW) == day_window(1, NOW) == (datetime(2031, 3, 3, tzinfo=UTC), datetime(2031, 3, 4, tzinfo=UTC))
    )
