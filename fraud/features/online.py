"""Online features: the feature vector of one new transaction, computed from the card's and the merchant's
history in PostgreSQL (`recent_transaction`, the last days of the facts in one unpartitioned table, migration 0011;
the day partitions for a window older than it holds) with the ETL's definitions: the per-row features are
fraud/features/rows.py's (the ETL's Spark expressions of them are checked against those), the window features are
SQL here of the windows the ETL computes in fraud/features/spark.py, and the feature list and shared formulas are
fraud/features/catalog.py's.

The same rules as the ETL, point in time:
- every window is [t - w, t) on whole seconds, so the history holds only transactions strictly before the
  transaction's second (it never sees itself, another one in the same second, or anything later);
- a label counts only once `labelled_at < t`; the merchant's risk counts the labels that arrived in [t - w, t) for
  its transactions of the last 60 days (fraud/features/catalog.py says why);
- the seconds since the card's previous transaction look back at most 30 days (the ETL reads 30 days of
  history; with none, the value is 30 days), so both paths agree whenever the gap is under 30 days.

Validation is the rules every engine applies (fraud/ingest/validation.py): a transaction the ETL would quarantine
raises `InvalidTransaction` with the same reason code. A known card's holder
fields (dob, city_pop, home) are its stored record's (`dim_card`), whatever the request says; merchant fields the
caller leaves out are taken from `dim_merchant`, where the batch path got them from the same raw row.

No pandas here: the scorer Lambda ships without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import psycopg
from psycopg.rows import dict_row

from fraud.core.privacy import card_token
from fraud.features.catalog import (
    FEATURE_NAMES,
    LABEL_LOOKBACK_SECONDS,
    LABEL_WINDOWS,
    LONGEST_WINDOW_SECONDS,
    MERCHANT_WINDOWS,
    WINDOWS,
    rate,
    volume_ratio,
)
from fraud.features.rows import RowInputs, row_features
from fraud.ingest import raw_values
from fraud.ingest.raw_values import parse_int32
from fraud.ingest.raw_values import text_of as _text
from fraud.ingest.validation import ONLINE_CHECKS, RawRow, failed_check, refusal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidTransaction(ValueError):
    """A transaction the ETL would quarantine (`code`: a fraud.ingest.validation.Reason), or one that cannot be
    scored (the serving layer's own codes)."""

    def __init__(self, code: str, field: str, message: str):
        super().__init__(message)
        self.code, self.field, self.message = code, field, message


# --- raw values, read the way the Spark job reads them --------------------------------------------------------


def parse_event_time(raw: Mapping[str, object]) -> datetime | None:
    """The transaction's time as the ETL reads it, in UTC."""
    parsed = raw_values.parse_event_time(raw)
    return parsed.replace(tzinfo=UTC) if parsed is not None else None


def spark_round2(amount: float) -> float:
    """Spark's round(x, 2): half up on the decimal value (Python's round() is half-even on the binary one)."""
    return float(Decimal(repr(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# --- the validated transaction --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transaction:
    """One validated raw transaction: the card as a token (the card number goes no further)."""

    trans_num: str
    event_time: datetime  # UTC, whole seconds
    card_token: str
    last4: str
    merchant: str
    amt: float
    category: str | None = None
    lat: float | None = None
    long: float | None = None
    merch_lat: float | None = None
    merch_long: float | None = None
    city_pop: int | None = None
    dob: date | None = None

    @property
    def event_unix(self) -> int:
        return int((self.event_time - EPOCH).total_seconds())


def parse_transaction(raw: Mapping[str, object], token_key: bytes) -> Transaction:
    """Validate one raw Sparkov transaction (string or JSON values) and tokenize its card."""
    row = RawRow.read(raw)
    check = failed_check(row, ONLINE_CHECKS)
    if check is not None:
        raise InvalidTransaction(check.reason, *refusal(check, raw))
    return Transaction(
        trans_num=row.trans_num,
        event_time=row.event_time.replace(tzinfo=UTC),
        card_token=card_token(row.card_digits, token_key),
        last4=row.card_digits[-4:],
        merchant=row.merchant,
        amt=spark_round2(row.amount),
        category=_text(raw.get("category")).lower() or None,
        lat=row.lat,
        long=row.long,
        merch_lat=row.merch_lat,
        merch_long=row.merch_long,
        city_pop=parse_int32(raw.get("city_pop")),
        dob=row.dob,
    )


# --- history ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """What the database knows before the transaction's second: card and merchant aggregates, and the
    cardholder's and merchant's stored attributes (None when unknown)."""

    card_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WINDOWS, 0))
    card_means: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(WINDOWS))
    card_std_30d: float | None = None
    previous_unix: int | None = None
    distinct_merchants_1h: int = 0
    distinct_merchants_1d: int = 0
    card_at_merchant_30d: int = 0  # the card's transactions at this merchant in the last 30 days
    card_in_category_30d: int = 0  # ... in this category (an empty one is a category of its own)
    card_known_frauds: int = 0
    merchant_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MERCHANT_WINDOWS, 0))
    merchant_labels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABEL_WINDOWS, 0))
    merchant_frauds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABEL_WINDOWS, 0))
    known_card: bool = False
    dob: date | None = None
    home_lat: float | None = None
    home_long: float | None = None
    city_pop: int | None = None
    merch_lat: float | None = None
    merch_long: float | None = None
    card_seen_before: bool = False  # a stored holder record, or an earlier real-time decision
    merchant_seen_before: bool = False


# Where the settled side of the history is read: `recent_transaction` (migration 0011: the last days of
# fact_transaction, unpartitioned) holds every transaction from `recent_horizon.since` on, so a window that starts
# there or later reads it (`complete`); an older window reads the day partitions of fact_transaction, whose prepared
# plan locks every partition (0011 has the figures).
RECENT = "recent_transaction"
SETTLED = "fact_transaction"


def _seen(key: str, parameter: str, source: str) -> str:
    """The transactions of a card (key card_token) or merchant in [label_since, t): the settled ones (`source`)
    and those only the real-time path has seen so far (realtime_decision, until the batch path loads the same
    trans_num: then the settled row counts, never both). Each side walks its (key, event_time) index; whether
    the batch path has loaded a trans_num is one probe of transaction_key's primary key."""
    return f"""
        SELECT trans_num, event_time, amount, merchant, category FROM {source}
        WHERE {key} = %({parameter})s AND event_time >= %(label_since)s AND event_time < %(t)s
        UNION ALL
        SELECT trans_num, event_time, amount, merchant, category FROM realtime_decision d
        WHERE {key} = %({parameter})s AND event_time >= %(label_since)s AND event_time < %(t)s
          AND NOT EXISTS (SELECT 1 FROM transaction_key k WHERE k.trans_num = d.trans_num)"""


def _history_sql(source: str) -> str:
    card = ",\n".join(
        f"count(*) FILTER (WHERE event_time >= %(card_{w})s) AS card_count_{w}, "
        f"(avg(amount) FILTER (WHERE event_time >= %(card_{w})s))::float8 AS card_mean_{w}"
        for w in WINDOWS
    )
    merchant_volume = ",\n".join(
        f"count(*) FILTER (WHERE event_time >= %(merchant_{w})s) AS merchant_count_{w}" for w in MERCHANT_WINDOWS
    )
    # labels that arrived in [t - w, t), for the merchant's transactions of the lookback (fraud/features/catalog.py)
    merchant_labels = ",\n".join(
        f"count(*) FILTER (WHERE l.labelled_at >= %(label_{w})s) AS merchant_labels_{w}, "
        f"count(*) FILTER (WHERE l.labelled_at >= %(label_{w})s AND l.is_fraud) AS merchant_frauds_{w}"
        for w in LABEL_WINDOWS
    )
    complete = "(SELECT since FROM recent_horizon) <= %(label_since)s" if source == RECENT else "true"
    # One round trip. "Seen before" (the answer's new_card / new_merchant): a stored record, or an earlier
    # real-time decision at any time.
    return f"""
    WITH card_seen AS ({_seen("card_token", "card", source)}
    ), merchant_seen AS ({_seen("merchant", "merchant", source)}
    ), card AS (
        SELECT {card},
               stddev_pop(amount)::float8 AS card_std_30d,
               floor(extract(epoch FROM max(event_time)))::bigint AS previous_unix,
               count(DISTINCT merchant) FILTER (WHERE event_time >= %(card_1h)s) AS distinct_merchants_1h,
               count(DISTINCT merchant) FILTER (WHERE event_time >= %(card_1d)s) AS distinct_merchants_1d,
               count(*) FILTER (WHERE merchant = %(merchant)s) AS card_at_merchant_30d,
               count(*) FILTER (WHERE coalesce(category,'') = %(category)s) AS card_in_category_30d
        FROM card_seen
        WHERE event_time >= %(card_since)s
    ), card_frauds AS (
        SELECT count(*) AS card_known_frauds
        FROM card_seen t JOIN transaction_label l ON l.trans_num = t.trans_num
        WHERE l.is_fraud AND l.labelled_at < %(t)s
    ), merchant AS (
        SELECT {merchant_volume},
               {merchant_labels}
        FROM merchant_seen t LEFT JOIN transaction_label l ON l.trans_num = t.trans_num AND l.labelled_at < %(t)s
    )
    SELECT {complete} AS complete, card.*, card_frauds.*, merchant.*, c.card_token IS NOT NULL AS known_card,
           c.dob, c.home_lat, c.home_long, c.city_pop, m.merch_lat, m.merch_long,
           c.card_token IS NOT NULL OR EXISTS (SELECT 1 FROM realtime_decision d
               WHERE d.card_token = %(card)s AND d.event_time < %(t)s) AS card_seen_before,
           m.merchant IS NOT NULL OR EXISTS (SELECT 1 FROM realtime_decision d
               WHERE d.merchant = %(merchant)s AND d.event_time < %(t)s) AS merchant_seen_before
    FROM card CROSS JOIN card_frauds CROSS JOIN merchant
    LEFT JOIN dim_card c ON c.card_token = %(card)s
    LEFT JOIN dim_merchant m ON m.merchant = %(merchant)s"""


def _one_line(sql: str) -> str:
    # psycopg caches the parsing of a query only up to 4,096 characters (with the decision lookup around it,
    # fraud/db/decisions.py, the real-time read is just under)
    return " ".join(sql.split())


HISTORY_SQL = _one_line(_history_sql(RECENT))  # `complete` says whether recent_transaction held the whole window
SETTLED_HISTORY_SQL = _one_line(_history_sql(SETTLED))  # for a window reaching below recent_transaction's horizon


def window_start(t: datetime, seconds: int) -> datetime:
    """t - seconds, or the first moment a datetime holds when that is earlier: a window reaching back before
    year 1 starts there (validation keeps times in 1970..2100, so this is a guard, not a path)."""
    first = datetime.min.replace(tzinfo=t.tzinfo)
    return first if t - first < timedelta(seconds=seconds) else t - timedelta(seconds=seconds)


def history_parameters(tx: Transaction) -> dict[str, object]:
    t = tx.event_time
    return {
        "card": tx.card_token,
        "merchant": tx.merchant,
        "category": tx.category or "",
        "t": t,
        "card_since": window_start(t, LONGEST_WINDOW_SECONDS),
        "label_since": window_start(t, LABEL_LOOKBACK_SECONDS),
        **{f"card_{w}": window_start(t, s) for w, s in WINDOWS.items()},
        **{f"merchant_{w}": window_start(t, s) for w, s in MERCHANT_WINDOWS.items()},
        **{f"label_{w}": window_start(t, s) for w, s in LABEL_WINDOWS.items()},
    }


def fetch_history(connection: psycopg.Connection, tx: Transaction) -> History:
    # prepared: with the (card_token, event_time) and (merchant, event_time) indexes the generic plan is the
    # right one, and planning was half of an unprepared query's time (p50 0.8 vs 1.7 ms)
    parameters = history_parameters(tx)
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(HISTORY_SQL, parameters, prepare=True).fetchone()
        if not row["complete"]:
            row = cursor.execute(SETTLED_HISTORY_SQL, parameters).fetchone()
    return history_from_row(row)


def history_from_row(row: Mapping[str, object]) -> History:
    return History(
        card_counts={w: int(row[f"card_count_{w}"]) for w in WINDOWS},
        card_means={w: row[f"card_mean_{w}"] for w in WINDOWS},
        card_std_30d=row["card_std_30d"],
        previous_unix=row["previous_unix"],
        distinct_merchants_1h=int(row["distinct_merchants_1h"]),
        distinct_merchants_1d=int(row["distinct_merchants_1d"]),
        card_at_merchant_30d=int(row["card_at_merchant_30d"]),
        card_in_category_30d=int(row["card_in_category_30d"]),
        card_known_frauds=int(row["card_known_frauds"]),
        merchant_counts={w: int(row[f"merchant_count_{w}"]) for w in MERCHANT_WINDOWS},
        merchant_labels={w: int(row[f"merchant_labels_{w}"]) for w in LABEL_WINDOWS},
        merchant_frauds={w: int(row[f"merchant_frauds_{w}"]) for w in LABEL_WINDOWS},
        known_card=bool(row["known_card"]),
        dob=row["dob"],
        home_lat=row["home_lat"],
        home_long=row["home_long"],
        city_pop=row["city_pop"],
        merch_lat=row["merch_lat"],
        merch_long=row["merch_long"],
        card_seen_before=bool(row["card_seen_before"]),
        merchant_seen_before=bool(row["merchant_seen_before"]),
    )


# --- the vector ------------------------------------------------------------------------------------------------


def _first_known(*values):
    return next((v for v in values if v is not None), None)


def row_inputs(tx: Transaction, history: History) -> RowInputs:
    """The per-row features' inputs. The holder's fields (dob, city_pop, home lat/long) of a known card are its
    stored record's (`dim_card`, from the batch path): a caller cannot make a holder older, younger or elsewhere
    by sending other values; the request's fill in only what the record lacks (for a card not loaded yet, all of
    them: fraud.serving.realtime scores new cards). The merchant's location: the request's first, the stored one
    otherwise (as the ETL got them from the same raw row)."""
    holder = (history.dob, history.city_pop, history.home_lat, history.home_long)
    sent = (tx.dob, tx.city_pop, tx.lat, tx.long)
    first, second = (holder, sent) if history.known_card else (sent, holder)
    dob, city_pop, lat, long = (_first_known(a, b) for a, b in zip(first, second, strict=True))
    return RowInputs(
        event_time=tx.event_time.replace(tzinfo=None),
        amount=tx.amt,
        dob=dob,
        city_pop=city_pop,
        lat=lat,
        long=long,
        merch_lat=_first_known(tx.merch_lat, history.merch_lat),
        merch_long=_first_known(tx.merch_long, history.merch_long),
        category=tx.category,
        card_mean_30d=history.card_means["30d"] or 0.0,
        card_std_30d=history.card_std_30d,
        card_count_30d=history.card_counts["30d"],
        previous_unix=history.previous_unix,
    )


def feature_vector(tx: Transaction, history: History) -> np.ndarray:
    """The model's input for `tx` in FEATURE_NAMES order (float64), from the transaction and its history."""
    counts, labels = history.merchant_counts, history.merchant_labels
    values: dict[str, float] = {
        **{name: float(column[0]) for name, column in row_features(row_inputs(tx, history)).items()},
        **{f"card_count_{w}": float(history.card_counts[w]) for w in WINDOWS},
        **{f"card_mean_amt_{w}": float(history.card_means[w] or 0.0) for w in WINDOWS},
        "card_distinct_merchants_1h": float(history.distinct_merchants_1h),
        "card_distinct_merchants_1d": float(history.distinct_merchants_1d),
        "card_new_merchant_30d": float(history.card_at_merchant_30d == 0),
        "card_new_category_30d": float(history.card_in_category_30d == 0),
        "card_known_frauds_60d": float(history.card_known_frauds),
        **{f"merchant_count_{w}": float(counts[w]) for w in MERCHANT_WINDOWS},
        "merchant_volume_ratio_1d": float(volume_ratio(counts["1d"], counts["30d"])),
        **{f"merchant_labels_{w}": float(labels[w]) for w in LABEL_WINDOWS},
        **{f"merchant_fraud_rate_{w}": float(rate(history.merchant_frauds[w], labels[w])) for w in LABEL_WINDOWS},
    }
    assert len(values) == len(FEATURE_NAMES)
    return np.fromiter((values[name] for name in FEATURE_NAMES), dtype=np.float64, count=len(FEATURE_NAMES))


def online_features(connection: psycopg.Connection, tx: Transaction) -> tuple[np.ndarray, History]:
    """The feature vector of `tx` and the history it came from, read on a psycopg connection."""
    history = fetch_history(connection, tx)
    return feature_vector(tx, history), history
