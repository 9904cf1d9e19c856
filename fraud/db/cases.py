"""Review cases: what an analyst works through in the review app (fraud/app/review/) and what the report's review
section counts.

A **case** is a card's transactions of one UTC day that the promoted model's decisions sent to review or blocked
(`fraud_score.outcome`, fraud/rules/), the same grouping as a customer alert's (fraud/outreach/alerts.py), under
the same key: `<card token>:<YYYY-MM-DD>`. It is **open** while one of its transactions has no label known at the
platform's clock (fraud/db/labels.py: an analyst's verdict, a customer's answer or a label file), and closed once
all have one. Open cases are worked in order of risk (the highest score among its transactions), then age (the
oldest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, text

from fraud.db.labels import PLATFORM_NOW

_CASES = f"""
WITH clock AS (SELECT {PLATFORM_NOW} AS now),
decided AS (
    SELECT s.trans_num, s.score, t.card_token, (t.event_time AT TIME ZONE 'UTC')::date AS day, t.event_time, t.amount
    FROM fraud_score s JOIN fact_transaction t USING (trans_num)
    WHERE s.model_version = :model AND s.outcome <> 'approve'
)
SELECT d.card_token || ':' || d.day AS case_id, d.card_token, d.day, count(*) AS transactions, max(d.score) AS risk,
       min(d.event_time) AS first_seen, sum(d.amount)::float8 AS amount, count(l.trans_num) AS labelled,
       count(l.trans_num) = count(*) AS closed, (SELECT now FROM clock) AS now
FROM decided d
LEFT JOIN transaction_label l ON l.trans_num = d.trans_num AND l.labelled_at <= (SELECT now FROM clock)
GROUP BY d.card_token, d.day"""


@dataclass(frozen=True)
class CaseSummary:
    case_id: str
    card_token: str
    day: date
    transactions: int
    risk: float
    first_seen: datetime
    amount: float
    labelled: int
    closed: bool
    now: datetime  # the platform's clock when read

    @property
    def age_hours(self) -> float:
        return max(0.0, (self.now - self.first_seen).total_seconds() / 3600)


def cases(engine: Engine, model_version: str, *, open_only: bool = True, limit: int | None = 100) -> list[CaseSummary]:
    """The model's cases, open ones only by default, in working order (risk, then age)."""
    query = f"SELECT * FROM ({_CASES}) c {'WHERE NOT c.closed' if open_only else ''} ORDER BY risk DESC, first_seen"
    query += " LIMIT :limit" if limit is not None else ""
    with engine.connect() as connection:
        rows = connection.execute(text(query), {"model": model_version, "limit": limit}).mappings().all()
    return [CaseSummary(**row) for row in rows]


def case_of(engine: Engine, model_version: str, case_id: str) -> CaseSummary | None:
    card_token, _, day = case_id.rpartition(":")
    try:
        day_value = date.fromisoformat(day)
    except ValueError:
        return None
    query = f"SELECT * FROM ({_CASES}) c WHERE c.card_token = :card AND c.day = :day"
    with engine.connect() as connection:
        row = (
            connection.execute(text(query), {"model": model_version, "card": card_token, "day": day_value})
            .mappings()
            .one_or_none()
        )
    return CaseSummary(**row) if row is not None else None


def case_transactions(engine: Engine, model_version: str, case_id: str) -> list[str]:
    """The trans_nums of a case (the ones a verdict on the case labels)."""
    card_token, _, day = case_id.rpartition(":")
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("""
                SELECT s.trans_num FROM fraud_score s JOIN fact_transaction t USING (trans_num)
                WHERE s.model_version = :model AND s.outcome <> 'approve' AND t.card_token = :card
                  AND (t.event_time AT TIME ZONE 'UTC')::date = :day
                ORDER BY t.event_time, s.trans_num"""),
                {"model": model_version, "card": card_token, "day": date.fromisoformat(day)},
            ).scalars()
        )
