"""recent_transaction (migration 0011): the last days of loaded transactions, in one unpartitioned table, for the
real-time read (fraud/features/online.py). fact_transaction's triggers write it with the facts; this module says
how far back it reaches and trims it.

It keeps the label lookback (the longest window the read looks back over) plus `SLACK` days: a real-time request
up to that far behind the newest loaded transaction still reads it; an older one reads the day partitions (the
read checks the horizon itself, so trimming never makes an answer wrong, only slower)."""

from __future__ import annotations

from datetime import timedelta

from fraud.features.catalog import HISTORY_SECONDS

SLACK = timedelta(days=30)
KEEP = timedelta(seconds=HISTORY_SECONDS) + SLACK

# moves the horizon to the newest transaction's UTC day minus KEEP and deletes what fell below: at most once a day
TRIM_SQL = "SELECT fraud_trim_recent(%(keep)s)"


def trim_recent(cursor) -> int:
    """Trim recent_transaction on a psycopg cursor (its own transaction: the caller commits); returns the rows
    removed, 0 when the horizon did not move."""
    cursor.execute(TRIM_SQL, {"keep": KEEP})
    return int(cursor.fetchone()[0])
