"""The review figures of the stakeholder report (fraud/outreach/report.py, its Review section): open cases by age,
the verdicts people gave, the time from a case's first transaction to its first decision, and the labels that
count by where they came from.

Definitions are those of fraud/db/cases.py (a case is a card's transactions of one UTC day that the model's
decisions sent to review or blocked; open while one of them has no label known at the platform's clock) and
fraud/db/labels.py (sources `file`, `analyst`, `customer`; every verdict people give is a `label_event` row, one per
transaction; `unsure` never becomes a label). The window is the report's: the transactions the model scored with
`event_time` in [since, until).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from fraud.db.cases import cases
from fraud.db.labels import PLATFORM_NOW, LabelSource, Verdict

# (label, from hours, until hours): [from, until), the last one open-ended
AGE_BUCKETS: tuple[tuple[str, float, float | None], ...] = (
    ("< 1 day", 0, 24),
    ("1–3 days", 24, 72),
    ("3–7 days", 72, 168),
    ("> 7 days", 168, None),
)
PEOPLE = (LabelSource.ANALYST, LabelSource.CUSTOMER)  # the sources of verdicts (label files give labels, not verdicts)


@dataclass(frozen=True)
class AgeBucket:
    label: str
    from_hours: float
    until_hours: float | None  # None: no upper bound
    cases: int


@dataclass(frozen=True)
class VerdictCount:
    source: str  # analyst or customer
    verdict: str  # fraud, genuine or unsure
    count: int  # label_event rows: one per transaction the verdict was given on


@dataclass(frozen=True)
class DecisionTimes:
    """Hours from a case's first transaction to the first analyst's or customer's verdict on one of its transactions
    that says fraud or genuine (`unsure` decides nothing), over the cases whose first transaction is in the window;
    percentiles interpolated between cases (PostgreSQL's percentile_cont). A verdict's time is the platform's clock
    when it was given (fraud/db/labels.py)."""

    cases: int  # cases whose first transaction is in the window
    decided: int  # of them, with such a verdict
    median_hours: float | None  # None when none was decided
    p90_hours: float | None


@dataclass(frozen=True)
class LabelCounts:
    """The labels that count (`transaction_label`), known at the platform's clock, of the window's transactions."""

    transactions: int  # the model's scored transactions in the window
    by_source: tuple[tuple[str, int], ...]  # (source, labels) for file, analyst, customer, in that order

    @property
    def unlabelled(self) -> int:
        return self.transactions - sum(count for _, count in self.by_source)


@dataclass(frozen=True)
class ReviewStats:
    now: datetime | None  # the platform's clock (the newest transaction)
    window: tuple[datetime, datetime] | None
    open_cases: tuple[AgeBucket, ...]
    verdicts: tuple[VerdictCount, ...]  # every (source, verdict) of PEOPLE x Verdict, 0 included
    decision_times: DecisionTimes
    labels: LabelCounts

    @property
    def open_total(self) -> int:
        return sum(bucket.cases for bucket in self.open_cases)


def age_buckets(hours: Iterable[float]) -> tuple[AgeBucket, ...]:
    """How many of these ages (hours) fall in each of AGE_BUCKETS."""
    counts = [0] * len(AGE_BUCKETS)
    for age in hours:
        for i, (_, low, high) in enumerate(AGE_BUCKETS):
            if age >= low and (high is None or age < high):
                counts[i] += 1
                break
    return tuple(
        AgeBucket(label, low, high, count) for (label, low, high), count in zip(AGE_BUCKETS, counts, strict=True)
    )


def open_case_ages(engine: Engine, model_version: str) -> tuple[AgeBucket, ...]:
    """The model's open cases by age (hours since their first transaction, at the platform's clock)."""
    return age_buckets(case.age_hours for case in cases(engine, model_version, open_only=True, limit=None))


_WINDOW = """
window_tx AS (
    SELECT s.trans_num FROM fraud_score s JOIN fact_transaction t USING (trans_num)
    WHERE s.model_version = :model AND t.event_time >= :since AND t.event_time < :until)"""

_VERDICTS = f"""
WITH {_WINDOW}
SELECT e.source, e.verdict, count(*) AS n FROM label_event e JOIN window_tx w USING (trans_num)
GROUP BY e.source, e.verdict"""

_LABELS = f"""
WITH {_WINDOW}
SELECT l.source, count(*) AS n FROM transaction_label l JOIN window_tx w USING (trans_num)
WHERE l.labelled_at <= {PLATFORM_NOW}
GROUP BY l.source"""

_TRANSACTIONS = f"WITH {_WINDOW} SELECT count(*) FROM window_tx"

# the cases of fraud/db/cases.py, their first transaction in the window, and their first deciding verdict by people
_DECISION_TIMES = """
WITH decided AS (
    SELECT s.trans_num, t.card_token, (t.event_time AT TIME ZONE 'UTC')::date AS day, t.event_time
    FROM fraud_score s JOIN fact_transaction t USING (trans_num)
    WHERE s.model_version = :model AND s.outcome <> 'approve'),
cases AS (
    SELECT card_token, day, min(event_time) AS first_seen FROM decided GROUP BY card_token, day
    HAVING min(event_time) >= :since AND min(event_time) < :until),
first_verdict AS (
    SELECT d.card_token, d.day, min(e.at) AS at
    FROM decided d JOIN label_event e ON e.trans_num = d.trans_num
    WHERE e.source IN ('analyst', 'customer') AND e.verdict IN ('fraud', 'genuine')
    GROUP BY d.card_token, d.day),
times AS (
    SELECT greatest(0, EXTRACT(EPOCH FROM f.at - c.first_seen)::float8 / 3600) AS hours
    FROM cases c JOIN first_verdict f USING (card_token, day))
SELECT (SELECT count(*) FROM cases) AS cases, count(*) AS decided,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median_hours,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS p90_hours
FROM times"""


def _params(model_version: str, window: tuple[datetime, datetime]) -> dict:
    since, until = window
    return {"model": model_version, "since": since, "until": until}


def verdict_mix(
    connection: Connection, model_version: str, window: tuple[datetime, datetime]
) -> tuple[VerdictCount, ...]:
    """The verdicts people gave on the window's transactions, per source and verdict (every one, 0 included, those
    that no longer count too)."""
    counts = {
        (source, verdict): n
        for source, verdict, n in connection.execute(text(_VERDICTS), _params(model_version, window)).all()
    }
    return tuple(
        VerdictCount(source.value, verdict.value, int(counts.get((source.value, verdict.value), 0)))
        for source in PEOPLE
        for verdict in Verdict
    )


def decision_times(connection: Connection, model_version: str, window: tuple[datetime, datetime]) -> DecisionTimes:
    row = connection.execute(text(_DECISION_TIMES), _params(model_version, window)).mappings().one()

    def hours(value: float | None) -> float | None:
        return None if value is None or math.isnan(value) else float(value)

    return DecisionTimes(int(row["cases"]), int(row["decided"]), hours(row["median_hours"]), hours(row["p90_hours"]))


def labels_by_source(connection: Connection, model_version: str, window: tuple[datetime, datetime]) -> LabelCounts:
    params = _params(model_version, window)
    counts = dict(connection.execute(text(_LABELS), params).all())
    transactions = connection.execute(text(_TRANSACTIONS), params).scalar_one()
    return LabelCounts(int(transactions), tuple((s.value, int(counts.get(s.value, 0))) for s in LabelSource))


def review_stats(engine: Engine, model_version: str, window: tuple[datetime, datetime] | None) -> ReviewStats:
    """Every review figure of the model over the report's window ([since, until) of event times; None when the model
    scored nothing: only the open cases then)."""
    open_cases = open_case_ages(engine, model_version)
    with engine.connect() as connection:
        now = connection.execute(text(f"SELECT {PLATFORM_NOW}")).scalar_one()
        if window is None:
            empty = LabelCounts(0, tuple((s.value, 0) for s in LabelSource))
            verdicts = tuple(VerdictCount(s.value, v.value, 0) for s in PEOPLE for v in Verdict)
            return ReviewStats(now, None, open_cases, verdicts, DecisionTimes(0, 0, None, None), empty)
        return ReviewStats(
            now,
            window,
            open_cases,
            verdict_mix(connection, model_version, window),
            decision_times(connection, model_version, window),
            labels_by_source(connection, model_version, window),
        )
