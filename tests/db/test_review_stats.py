"""The report's review figures (fraud/db/review_stats.py) on a hand-made world: open cases by age, the verdicts people
gave, the time to a case's first decision and the labels by source, each checked against the world computed by
hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from fraud.db.cases import cases
from fraud.db.labels import record_verdicts
from fraud.db.review_stats import AGE_BUCKETS, age_buckets, review_stats
from tests.helpers.homes import own_migrated_home
from tests.helpers.scored_world import THRESHOLD, build_world

START = datetime(2047, 1, 1, tzinfo=UTC)
LABEL_DELAY = timedelta(days=2)  # build_world's file labels arrive two days after each transaction


@pytest.fixture(scope="module")
def review_db():
    """The platform's clock is the newest transaction in the database: a home of its own, so no other test's rows
    (some are dated 2090) move it."""
    with own_migrated_home("fraud-review-stats-") as home:
        yield home


def test_age_buckets_bounds():
    assert [b.label for b in age_buckets([])] == [label for label, _, _ in AGE_BUCKETS]
    assert [b.cases for b in age_buckets([0, 23.99, 24, 71.9, 72, 167.9, 168, 2000])] == [2, 2, 2, 2]


def test_review_figures_of_a_hand_made_world(review_db):
    settings, engine = review_db
    world = build_world(engine, settings, "rstats", cards=6, days=10, seed=8, start=START)
    frame = world.transactions
    clock = frame["event_time"].max()
    decided = frame[frame["score"] >= THRESHOLD]
    groups = {key: rows for key, rows in decided.groupby(["card_token", "day"])}
    first_seen = {key: rows["event_time"].min() for key, rows in groups.items()}
    recent = sorted(key for key, rows in groups.items() if (rows["event_time"] + LABEL_DELAY > clock).any())
    old = sorted(key for key in groups if key not in recent)
    assert len(recent) >= 3 and len(old) >= 3

    # two old cases whose labels never came (a chargeback that never arrives): open, 9 and 4 days old
    lost = [min(k for k in old if k[1] == START.date()), min(k for k in old if k[1] == (START + timedelta(5)).date())]
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM transaction_label WHERE trans_num = ANY(:t)"),
            {"t": [t for key in lost for t in groups[key]["trans_num"]]},
        )
    fraud_case, genuine_case, unsure_case = recent[:3]
    reviewed_again = next(k for k in old if k not in lost)  # closed by its file labels; an analyst says genuine
    given = [
        (fraud_case, "fraud", "analyst"),
        (genuine_case, "genuine", "customer"),
        (unsure_case, "unsure", "analyst"),
        (reviewed_again, "genuine", "analyst"),
    ]
    with engine.begin() as connection:
        for key, verdict, source in given:
            at = record_verdicts(connection, list(groups[key]["trans_num"]), verdict, source, "ana")
            assert at == clock  # the platform's clock: this world's newest transaction

    window = (frame["event_time"].min().to_pydatetime(), clock.to_pydatetime() + timedelta(microseconds=1))
    stats = review_stats(engine, world.model_version, window)
    assert stats.now == clock and stats.window == window

    # open cases: the recent ones nobody decided (the unsure one stays open) and the two whose labels never came
    still_open = [k for k in recent if k not in (fraud_case, genuine_case)] + lost
    ages = [(clock - first_seen[key]).total_seconds() / 3600 for key in still_open]
    assert stats.open_cases == age_buckets(ages)
    assert [b.cases for b in stats.open_cases][2:] == [1, 1]  # 3-7 days (day 5), > 7 days (day 0)
    assert stats.open_total == len(still_open) == len(cases(engine, world.model_version, limit=None))

    # the verdict mix: one label_event per transaction, every source and verdict of people listed
    mix = {(v.source, v.verdict): v.count for v in stats.verdicts}
    assert mix == {
        ("analyst", "fraud"): len(groups[fraud_case]),
        ("analyst", "genuine"): len(groups[reviewed_again]),
        ("analyst", "unsure"): len(groups[unsure_case]),
        ("customer", "fraud"): 0,
        ("customer", "genuine"): len(groups[genuine_case]),
        ("customer", "unsure"): 0,
    }

    # time to decision: from each case's first transaction to its first fraud or genuine verdict (unsure: none)
    hours = [(clock - first_seen[key]).total_seconds() / 3600 for key in (fraud_case, genuine_case, reviewed_again)]
    times = stats.decision_times
    assert (times.cases, times.decided) == (len(groups), 3)
    assert times.median_hours == pytest.approx(np.percentile(hours, 50))
    assert times.p90_hours == pytest.approx(np.percentile(hours, 90))  # linear, as percentile_cont

    # labels known at the clock by source: file labels that arrived, minus the ones lost or replaced by a verdict
    replaced = {t for key in (fraud_case, genuine_case, reviewed_again) for t in groups[key]["trans_num"]}
    gone = {t for key in lost for t in groups[key]["trans_num"]}
    known_files = frame[(frame["event_time"] + LABEL_DELAY <= clock) & ~frame["trans_num"].isin(replaced | gone)]
    assert stats.labels.transactions == len(frame)
    assert dict(stats.labels.by_source) == {
        "file": len(known_files),
        "analyst": len(groups[fraud_case]) + len(groups[reviewed_again]),
        "customer": len(groups[genuine_case]),
    }
    assert stats.labels.unlabelled == len(frame) - len(known_files) - len(replaced)

    # a narrower window: only its transactions' verdicts and the cases that start in it
    later = (START + timedelta(days=5), window[1])
    narrow = review_stats(engine, world.model_version, later)
    assert {(v.source, v.verdict): v.count for v in narrow.verdicts}[("analyst", "genuine")] == 0
    assert narrow.decision_times.decided == 2
    assert narrow.decision_times.cases == sum(first_seen[key] >= later[0] for key in groups)
    assert narrow.labels.transactions == int((frame["event_time"] >= later[0]).sum())
    assert narrow.open_cases == stats.open_cases  # open is open, whatever the window

    # no window (the model scored nothing): the open cases only
    empty = review_stats(engine, world.model_version, None)
    assert empty.open_cases == stats.open_cases and empty.decision_times.decided == 0
    assert empty.decision_times.median_hours is None and sum(v.count for v in empty.verdicts) == 0
