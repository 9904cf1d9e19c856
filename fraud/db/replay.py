"""Past transactions as the decision rules saw them, for backtests (fraud/rules/backtest.py): each transaction of
an event-time window [since, until) with its features (the current catalogue version), its amount, category and
merchant, a model score and its label.

The score: the promoted model version's when it scored the transaction, else the most recent score of any version
(so a backtest covers the days before the promoted model too). A transaction no version ever scored is left out
(the rules need a score) and counted by `count_history`, and so is one without features of the current version.
The label is the stored one, whenever it arrived (None while none has).

Rows are streamed in pages by a server-side cursor (binary: the float8[] of features arrives as doubles, not text
to parse), so a year of history never sits in memory; nothing here needs pandas. Also here: the decisions the
scorer recorded in a window, per rule set version and outcome (`recorded_outcomes`), which the report shows
beside the backtest."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Engine

from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.rules.backtest import HistoryRow

# A bound left out (None) is no bound. The statement is planned once, with its values: the `IS NULL OR` of a given
# bound folds away (an index range scan on event_time).
_WINDOW = """(%(since)s::timestamptz IS NULL OR t.event_time >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR t.event_time < %(until)s)"""

# The promoted version's score by a hash join; the most recent score of another version only for the
# transactions it did not score (the lateral's `p.trans_num IS NULL` is a one-time filter: no probe otherwise).
_HISTORY = """
SELECT /* replay_history */ t.trans_num, (t.event_time AT TIME ZONE 'UTC')::date, t.amount::float8, t.category,
       t.merchant, {values}, cardinality(f.values), COALESCE(p.score, o.score), COALESCE(p.threshold, o.threshold),
       COALESCE(p.flagged, o.flagged), l.is_fraud
FROM fact_transaction t
JOIN transaction_features f ON f.trans_num = t.trans_num AND f.feature_version = %(features)s
LEFT JOIN fraud_score p ON p.trans_num = t.trans_num AND p.model_version = %(model)s
LEFT JOIN LATERAL (
    SELECT s.score, s.threshold, s.flagged FROM fraud_score s
    WHERE p.trans_num IS NULL AND s.trans_num = t.trans_num
    ORDER BY s.scored_at DESC, s.model_version DESC LIMIT 1) o ON true
LEFT JOIN transaction_label l ON l.trans_num = t.trans_num
WHERE {window} AND (p.trans_num IS NOT NULL OR o.score IS NOT NULL)"""

_COUNT = f"""
SELECT count(*) FILTER (WHERE f.trans_num IS NOT NULL AND scored),
       count(*) FILTER (WHERE f.trans_num IS NOT NULL AND NOT scored),
       count(*) FILTER (WHERE f.trans_num IS NULL)
FROM (SELECT t.trans_num, EXISTS (SELECT 1 FROM fraud_score s WHERE s.trans_num = t.trans_num) AS scored
      FROM fact_transaction t WHERE {_WINDOW}) t
LEFT JOIN transaction_features f ON f.trans_num = t.trans_num AND f.feature_version = %(features)s"""


@dataclass(frozen=True)
class HistoryCount:
    """The window's transactions: `rows` the history returns; `unscored` left out because no model version scored
    them; `without_features` left out because they have no features of the current version."""

    rows: int
    unscored: int
    without_features: int


def count_history(engine: Engine, since: datetime | None = None, until: datetime | None = None) -> HistoryCount:
    """How many transactions `replay_history` returns for [since, until) and how many it leaves out (a bar's total;
    counted in a snapshot of its own, so rows written in between may make the two differ)."""
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        rows, unscored, without = cursor.execute(
            _COUNT, {"since": since, "until": until, "features": FEATURE_VERSION}
        ).fetchone()
    return HistoryCount(rows, unscored, without)


def replay_history(
    engine: Engine,
    model_version: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    page_rows: int = 5_000,
    fields: Collection[str] | None = None,
) -> Iterator[list[HistoryRow]]:
    """The scored transactions of [since, until) (None: no bound) as HistoryRows, in pages of up to `page_rows`,
    in no particular order. `model_version` is the promoted version, whose score is preferred (None: the most
    recent score of any version).

    Each row's `fields` holds every field of fraud.rules.FIELDS; with `fields` given (a rule set's `fields`), only
    those features are read (the raw fields and the score always are): a rule set names a few of the 50, and
    fetching and mapping the others is most of the reader's time."""
    if page_rows < 1:
        raise ValueError(f"page_rows must be at least 1, got {page_rows}")
    params = {"since": since, "until": until, "features": FEATURE_VERSION, "model": model_version or ""}
    width = len(FEATURE_NAMES)
    if fields is None:
        names, values = FEATURE_NAMES, "f.values::float8[]"
    else:
        positions = [i for i, name in enumerate(FEATURE_NAMES) if name in fields]  # catalogue order: safe to inline
        names = tuple(FEATURE_NAMES[i] for i in positions)
        values = f"ARRAY[{', '.join(f'f.values[{i + 1}]' for i in positions)}]::float8[]"
    query = _HISTORY.format(values=values, window=_WINDOW)
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        # a cursor plans for its first 10% by default (index probes per row); the backtest reads it all
        raw.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        with raw.cursor(name="replay_history", binary=True) as cursor:
            cursor.itersize = page_rows
            cursor.execute(query, params)
            while records := cursor.fetchmany(page_rows):
                # float32, as the model takes them and as batch scoring and the real-time path hand them to the rules
                # (fraud.rules.rule_fields): a value at a rule's boundary compares as it did when it was decided
                vectors = np.array([r[5] for r in records], dtype=np.float32).reshape(len(records), len(names))
                page = []
                for record, vector in zip(records, vectors.tolist(), strict=True):
                    trans_num, day, amount, category, merchant, _, stored, score, threshold, flagged, label = record
                    if stored != width:
                        raise ValueError(
                            f"transaction {trans_num}: {stored} feature values, the catalogue "
                            f"{FEATURE_VERSION} has {width}"
                        )
                    row: dict[str, float | str] = dict(zip(names, vector, strict=True))
                    row["amt"] = amount
                    row["category"] = category or ""
                    row["merchant"] = merchant
                    row["score"] = score
                    row["threshold"] = threshold
                    page.append(HistoryRow(trans_num, day, row, label, amount, bool(flagged)))
                yield page


_OUTCOMES = f"""
SELECT s.ruleset_version, s.outcome, count(*)
FROM fraud_score s JOIN fact_transaction t ON t.trans_num = s.trans_num
WHERE s.model_version = %(model)s AND {_WINDOW}
GROUP BY 1, 2 ORDER BY 1, 2"""


def recorded_outcomes(
    engine: Engine, model_version: str, since: datetime | None = None, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """The decisions `model_version`'s scores recorded for the transactions of [since, until): per rule set
    version (`none` for scores older than the rules, migration 0006), the count per outcome."""
    found: dict[str, dict[str, int]] = {}
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        for version, outcome, count in cursor.execute(
            _OUTCOMES, {"model": model_version, "since": since, "until": until}
        ):
            found.setdefault(version, {})[outcome] = count
    return found
