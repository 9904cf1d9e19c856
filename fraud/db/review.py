"""Which transactions a newly promoted model rescores: the unreviewed ones of the last days.

A transaction counts as reviewed once a person or the cardholder has seen it: it has a known label (a
chargeback or an analyst's verdict) or it belongs to a customer alert that was sent. Rescoring leaves those
alone, so a new model never reopens a case that is already closed or already in the customer's inbox.

"Known" is point in time, as everywhere else in the project: a label counts from its `labelled_at` on, and
"now" is the newest transaction in the database (live traffic: the clock; replayed or simulated history,
whose label files carry future `labelled_at` times: the end of that history).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

from fraud.db.labels import PLATFORM_NOW

# a SQL condition on `fact_transaction t`
UNREVIEWED = f"""NOT EXISTS (SELECT 1 FROM transaction_label l WHERE l.trans_num = t.trans_num
                    AND l.labelled_at <= {PLATFORM_NOW})
    AND NOT EXISTS (SELECT 1 FROM customer_alert_transaction x JOIN customer_alert a ON a.id = x.alert_id
                    WHERE x.trans_num = t.trans_num AND a.status = 'sent')"""


def recent_window(engine: Engine, days: int) -> tuple[datetime, datetime]:
    """[since, until): the last `days` days up to and including the newest transaction. Anchored at the newest
    event rather than the clock, so replayed or simulated history is treated like live traffic."""
    with engine.connect() as connection:
        newest = connection.execute(text("SELECT max(event_time) FROM fact_transaction")).scalar_one()
    until = (newest or datetime.now(UTC)) + timedelta(microseconds=1)
    return until - timedelta(days=days), until


def count_unreviewed(engine: Engine, since: datetime, until: datetime) -> int:
    with engine.connect() as connection:
        return connection.execute(
            text(f"""
            SELECT count(*) FROM fact_transaction t
            WHERE t.event_time >= :since AND t.event_time < :until AND {UNREVIEWED}"""),
            {"since": since, "until": until},
        ).scalar_one()
