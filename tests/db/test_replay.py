"""The backtest's history reader (fraud/db/replay.py) on a small history in the session's database: which score it
takes (the promoted version's, else the most recent), what it leaves out and counts (never scored, no features of
the current version), the label, the fields the rules see, pages, the half-open window; and the decisions recorded
per rule set version and outcome.

The database is shared with other modules: these rows have their own trans_num prefix and event times in June 2033
(no other module writes then), and are removed afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine

from fraud.db.replay import HistoryCount, count_history, recorded_outcomes, replay_history
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.rules import FIELDS

PREFIX = "rpl-"
START = datetime(2033, 6, 1, tzinfo=UTC)
END = START + timedelta(days=3)


@dataclass(frozen=True)
class Past:
    """One transaction of a hand-made history: its scores are (model version, score, threshold, flagged, scored
    at, outcome, rule set version); `features` None: none of the current version."""

    trans_num: str
    event_time: datetime
    amount: float
    category: str | None
    scores: tuple[tuple[str, float, float, bool, datetime, str, str], ...] = ()
    label: bool | None = None
    features: tuple[float, ...] | None = None
    merchant: str = "fraud_Replay Shop"
    card_token: str = "replay-card".ljust(64, "0")


def vector(seed: float) -> tuple[float, ...]:
    return tuple(seed + i / 100 for i in range(len(FEATURE_NAMES)))


def insert_history(engine: Engine, rows: list[Past], prefix: str) -> None:
    """The rows, their dimensions, features, labels and scores, with plain INSERTs (after removing the prefix's)."""
    forget_history(engine, prefix)
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:
            for row in rows:
                cursor.execute(
                    "INSERT INTO dim_card (card_token, last4) VALUES (%s, '0000') ON CONFLICT DO NOTHING",
                    (row.card_token,),
                )
                cursor.execute(
                    "INSERT INTO dim_merchant (merchant) VALUES (%s) ON CONFLICT DO NOTHING", (row.merchant,)
                )
                if row.category:
                    cursor.execute(
                        "INSERT INTO dim_category (category) VALUES (%s) ON CONFLICT DO NOTHING", (row.category,)
                    )
                cursor.execute(
                    "INSERT INTO fact_transaction (trans_num, event_time, card_token, merchant, category, amount,"
                    " batch_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        row.trans_num,
                        row.event_time,
                        row.card_token,
                        row.merchant,
                        row.category,
                        row.amount,
                        f"{prefix}batch",
                    ),
                )
                cursor.execute(
                    "INSERT INTO transaction_features (trans_num, feature_version, values, event_day)"
                    " VALUES (%s, %s, %s, (%s AT TIME ZONE 'UTC')::date)",
                    (
                        row.trans_num,
                        FEATURE_VERSION if row.features else "v0",
                        list(row.features or vector(0.0)),
                        row.event_time,
                    ),
                )
                if row.label is not None:
                    cursor.execute(
                        "INSERT INTO transaction_label (trans_num, is_fraud, labelled_at) VALUES (%s, %s, %s)",
                        (row.trans_num, row.label, row.event_time + timedelta(days=9)),
                    )
                for model, score, threshold, flagged, scored_at, outcome, ruleset in row.scores:
                    cursor.execute(
                        "INSERT INTO fraud_score (trans_num, model_version, score, flagged, threshold, scored_at,"
                        " outcome, ruleset_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (row.trans_num, model, score, flagged, threshold, scored_at, outcome, ruleset),
                    )
        raw.commit()


def forget_history(engine: Engine, prefix: str) -> None:
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        like = (prefix + "%",)
        for table in ("fraud_score", "transaction_label", "transaction_features", "fact_transaction"):
            raw.execute(f"DELETE FROM {table} WHERE trans_num LIKE %s", like)
        raw.commit()


def at(day: int, hour: int) -> datetime:
    return START + timedelta(days=day, hours=hour)


HISTORY = [
    # scored by the promoted version and, later, by an older one: the promoted one's score is taken
    Past(
        "rpl-1",
        at(0, 10),
        1234.5,
        "travel",
        (
            ("rpl-promoted", 0.9, 0.5, True, at(0, 11), "review", "r-1"),
            ("rpl-old", 0.2, 0.6, False, at(0, 12), "approve", "none"),
        ),
        label=True,
        features=vector(1.0),
    ),
    # one score only, of another version; no category
    Past(
        "rpl-2",
        at(1, 9),
        20.0,
        None,
        (("rpl-old", 0.7, 0.6, True, at(1, 10), "review", "r-1"),),
        label=False,
        features=vector(2.0),
    ),
    # two other versions: the most recent score is taken; no label
    Past(
        "rpl-3",
        at(1, 20),
        55.25,
        "grocery_pos",
        (
            ("rpl-old", 0.1, 0.6, False, at(1, 21), "approve", "r-1"),
            ("rpl-newer", 0.4, 0.3, True, at(1, 22), "review", "r-1"),
        ),
        features=vector(3.0),
    ),
    # never scored: left out, counted
    Past("rpl-4", at(2, 8), 10.0, "travel", features=vector(4.0)),
    # scored but without features of the current version: left out, counted
    Past("rpl-5", at(2, 9), 10.0, "travel", (("rpl-old", 0.3, 0.6, False, at(2, 10), "approve", "r-1"),)),
    # after the window
    Past(
        "rpl-6",
        END + timedelta(hours=1),
        99.0,
        "travel",
        (("rpl-promoted", 0.95, 0.5, True, END + timedelta(hours=2), "review", "r-1"),),
        features=vector(6.0),
    ),
]


@pytest.fixture(scope="module")
def history(engine):
    insert_history(engine, HISTORY, PREFIX)
    yield engine
    forget_history(engine, PREFIX)


def replayed(engine, model, since=START, until=END, page_rows=5_000):
    pages = list(replay_history(engine, model, since, until, page_rows))
    return pages, {row.trans_num: row for page in pages for row in page}


def test_the_count_of_rows_and_of_what_is_left_out(history):
    assert count_history(history, START, END) == HistoryCount(rows=3, unscored=1, without_features=1)
    assert count_history(history, END, END + timedelta(days=1)) == HistoryCount(1, 0, 0)


def test_the_promoted_score_else_the_most_recent(history):
    _, rows = replayed(history, "rpl-promoted")
    assert sorted(rows) == ["rpl-1", "rpl-2", "rpl-3"]
    taken = {t: (r.fields["score"], r.fields["threshold"], r.model_flagged) for t, r in rows.items()}
    assert taken == {"rpl-1": (0.9, 0.5, True), "rpl-2": (0.7, 0.6, True), "rpl-3": (0.4, 0.3, True)}
    # no promoted version (or one that scored none of them): the most recent score of each
    for model in (None, "rpl-unknown"):
        _, rows = replayed(history, model)
        assert {t: r.fields["score"] for t, r in rows.items()} == {"rpl-1": 0.2, "rpl-2": 0.7, "rpl-3": 0.4}
        assert rows["rpl-1"].model_flagged is False


def test_what_the_rules_see(history):
    _, rows = replayed(history, "rpl-promoted")
    first = rows["rpl-1"]
    assert FIELDS <= first.fields.keys()
    assert [first.fields[name] for name in FEATURE_NAMES] == pytest.approx(vector(1.0))
    assert (first.fields["amt"], first.amount, first.fields["category"]) == (1234.5, 1234.5, "travel")
    assert first.fields["merchant"] == "fraud_Replay Shop"
    assert (first.day.isoformat(), first.is_fraud) == ("2033-06-01", True)
    assert rows["rpl-2"].fields["category"] == "" and rows["rpl-2"].is_fraud is False  # no category: ""
    assert rows["rpl-3"].is_fraud is None and rows["rpl-3"].amount == 55.25  # no label yet
    # features as float32, as the scorer hands them to the rules: 2.01 is not a float32
    assert rows["rpl-2"].fields[FEATURE_NAMES[1]] == float(np.float32(2.01)) != 2.01


def test_only_the_features_a_rule_set_names(history):
    _, rows = replayed_fields(history, {"card_count_1h", "amt", "score"})
    first = rows["rpl-1"].fields
    assert set(first) == {"card_count_1h", "amt", "category", "merchant", "score", "threshold"}
    assert first["card_count_1h"] == float(np.float32(vector(1.0)[FEATURE_NAMES.index("card_count_1h")]))
    assert set(replayed_fields(history, {"amt"})[1]["rpl-2"].fields) == {
        "amt",
        "category",
        "merchant",
        "score",
        "threshold",
    }


def replayed_fields(engine, fields):
    pages = list(replay_history(engine, "rpl-promoted", START, END, fields=fields))
    return pages, {row.trans_num: row for page in pages for row in page}


def test_pages_and_the_half_open_window(history):
    pages, _ = replayed(history, "rpl-promoted", page_rows=2)
    assert [len(page) for page in pages] == [2, 1]
    # [since, until): a transaction at `since` is in, one at `until` is not
    _, rows = replayed(history, "rpl-promoted", since=at(0, 10), until=at(1, 20))
    assert sorted(rows) == ["rpl-1", "rpl-2"]
    with pytest.raises(ValueError, match="page_rows"):
        next(replay_history(history, None, START, END, page_rows=0))


def test_recorded_outcomes_per_rule_set_version(history):
    assert recorded_outcomes(history, "rpl-old", START, END) == {
        "none": {"approve": 1},  # rpl-1 (scored before the rules)
        "r-1": {"approve": 2, "review": 1},  # rpl-3, rpl-5; rpl-2
    }
    assert recorded_outcomes(history, "rpl-promoted", START, END) == {"r-1": {"review": 1}}  # rpl-6 is after END
