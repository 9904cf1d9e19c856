"""The feature list: names and order of the model's input vector, per feature-set version, and the numpy
computations of the label-based risk features that the Glue job, the pandas reference and the tests share.

Three implementations compute these values and must agree on every one (tests/glue/test_pandas_parity.py,
tests/glue/test_online_parity.py): the Glue job (fraud/features/spark.py, whose vector glue/process_transactions.py
writes to `transaction_features` in exactly this order), the online path (fraud/features/online.py) and the pandas
reference (bench/pandas_features.py); the per-row features among them are defined once, in fraud/features/rows.py.
The model metadata records the version and order it was trained on.

Point in time: every feature looks only at data strictly before the transaction. Event windows are [t - w, t)
on whole seconds, so a transaction never sees itself or another transaction of the same second; a label counts
only once `labelled_at < t`.

Labels take time (days for a customer's report, weeks for a chargeback) and the delay differs between data
sets, so the label-based risk features do not count labels over a window of *transactions*, which is empty of
known labels whenever the delay is longer than the window. They count the labels that *arrived* in the last
w days ([t - w, t) on `labelled_at`), over the entity's transactions of the last LABEL_LOOKBACK days, and divide
by the labels that arrived, not by every transaction. With a constant delay d that is exactly the textbook
"risk over [t - d - w, t - d)" window, without having to know d; with delays that vary it is the latest
evidence the team has.
"""

from __future__ import annotations

import numpy as np

from fraud.core.schema import CATEGORIES

FEATURE_VERSION = "v3"

DAY = 86400
# The card's history windows (event time), in seconds.
WINDOWS = {"1h": 3600, "1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
LONGEST_WINDOW_SECONDS = max(WINDOWS.values())
# The merchant's volume windows (event time).
MERCHANT_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
# Label-arrival windows ([t - w, t) on labelled_at) of the merchant's risk.
LABEL_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
# Labels count only for the entity's transactions of this many last days: it bounds the history every path reads
# (a 30-day label window then covers labels up to 30 days late in full).
LABEL_LOOKBACK_SECONDS = 60 * DAY
HISTORY_SECONDS = max(LONGEST_WINDOW_SECONDS, LABEL_LOOKBACK_SECONDS)
# The spread of the card's amounts is floored at one currency unit in the z-score: a card that always paid the same
# amount has a spread of 0, and small rounding differences between engines must not blow the score up.
AMOUNT_SPREAD_FLOOR = 1.0

NUMERIC_FEATURES: tuple[str, ...] = (
    "amt_log",  # log1p(amount)
    "hour",  # hour of day, UTC
    "is_night",  # 22:00-05:59
    "is_weekend",
    # optional holder and merchant fields: each value comes with a flag saying whether it could be computed, so
    # an empty field (as in many real exports) is not mistaken for a newborn holder or a purchase next door
    "age_years",  # holder's age at transaction time (0 when dob unknown)
    "age_known",
    "city_pop_log",  # 0 when unknown
    "city_pop_known",
    "distance_km",  # holder home to merchant location, haversine (0 when either is unknown)
    "distance_known",
    # the card's history: how many transactions and their mean amount in each window (0 when none)
    *(f"card_count_{w}" for w in WINDOWS),
    *(f"card_mean_amt_{w}" for w in WINDOWS),
    "amt_over_card_mean_30d",  # amount / the card's 30-day mean (1 when no history)
    "amt_z_card_30d",  # (amount - 30-day mean) / (30-day population std + AMOUNT_SPREAD_FLOOR); 0 when no history
    "secs_since_prev_log",  # log1p(seconds since the card's previous transaction within 30 d; 30 d when none)
    "card_distinct_merchants_1h",
    "card_distinct_merchants_1d",
    "card_new_merchant_30d",  # 1 when the card has not paid at this merchant in the last 30 days
    "card_new_category_30d",  # 1 when not in this category (an empty category is a category of its own)
    "card_known_frauds_60d",  # the card's transactions of the last 60 days known to be fraud at t
    # the merchant's volume, and its spike against its own 30-day daily mean: (count_1d + 1) / (count_30d / 30 + 1)
    *(f"merchant_count_{w}" for w in MERCHANT_WINDOWS),
    "merchant_volume_ratio_1d",
    # the merchant's labels that arrived in each window, and the share of them that are fraud (0 when none)
    *(f"merchant_labels_{w}" for w in LABEL_WINDOWS),
    *(f"merchant_fraud_rate_{w}" for w in LABEL_WINDOWS),
)
CATEGORY_FEATURES: tuple[str, ...] = tuple(f"cat_{name}" for name in CATEGORIES)
FEATURE_NAMES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORY_FEATURES
MERCHANT_FEATURES: tuple[str, ...] = tuple(n for n in NUMERIC_FEATURES if n.startswith("merchant_"))


def amount_z(amount, mean, std, count):
    """The amount against the card's own history (works on floats and numpy arrays alike)."""
    return np.where(
        np.asarray(count) > 0, (amount - np.nan_to_num(mean)) / (np.nan_to_num(std) + AMOUNT_SPREAD_FLOOR), 0.0
    )


def volume_ratio(count_1d, count_30d):
    """Today's volume over the merchant's 30-day daily mean, both smoothed by one transaction."""
    return (np.asarray(count_1d, dtype=float) + 1.0) / (np.asarray(count_30d, dtype=float) / 30.0 + 1.0)


def rate(part, whole):
    """part / whole, 0 where whole is 0."""
    part, whole = np.asarray(part, dtype=float), np.asarray(whole, dtype=float)
    return np.divide(part, whole, out=np.zeros(np.broadcast(part, whole).shape), where=whole > 0)


def _chunked_count(query: np.ndarray, match) -> np.ndarray:
    """Per query time, how many items `match(q)` selects; q is a column of query times (bounded memory)."""
    out = np.zeros(len(query))
    for start in range(0, len(query), 4096):
        out[start : start + 4096] = match(query[start : start + 4096, None]).sum(axis=1)
    return out


def labels_arrived(
    event_unix: np.ndarray,
    labelled_unix: np.ndarray,
    query_unix: np.ndarray,
    windows: dict[str, int] = LABEL_WINDOWS,
    lookback: int = LABEL_LOOKBACK_SECONDS,
) -> dict[str, np.ndarray]:
    """For one entity's labelled transactions (event and label times; NaN = no label) and query times t: per
    window w, how many labels arrived in [t - w, t) for transactions in [t - lookback, t)."""
    known = ~np.isnan(np.asarray(labelled_unix, dtype=float))
    event = np.asarray(event_unix, dtype=float)[known]
    labelled = np.asarray(labelled_unix, dtype=float)[known]
    arrivals = np.sort(labelled)
    query = np.asarray(query_unix, dtype=np.int64)
    # A label that arrived in [t - w, t) whose transaction is in [t - lookback, t) is found by sorting on arrival
    # alone, unless it came more than lookback - longest window after its transaction, or before it (bad data):
    # those few are corrected one by one.
    odd = (labelled - event > lookback - max(windows.values())) | (labelled < event)
    odd_event, odd_labelled = event[odd], labelled[odd]
    out = {}
    for name, seconds in windows.items():
        count = (np.searchsorted(arrivals, query, "left") - np.searchsorted(arrivals, query - seconds, "left")).astype(
            float
        )
        if len(odd_event):
            count -= _chunked_count(
                query,
                lambda q, seconds=seconds: (
                    (odd_labelled >= q - seconds) & (odd_labelled < q) & ((odd_event < q - lookback) | (odd_event >= q))
                ),
            )
        out[name] = count
    return out


def known_frauds(
    event_unix: np.ndarray,
    is_fraud: np.ndarray,
    labelled_unix: np.ndarray,
    query_unix: np.ndarray,
    lookback: int = LABEL_LOOKBACK_SECONDS,
) -> np.ndarray:
    """For one entity: per query time t, its transactions in [t - lookback, t) known to be fraud at t."""
    fraud = np.asarray(is_fraud, dtype=bool) & ~np.isnan(np.asarray(labelled_unix, dtype=float))
    event = np.asarray(event_unix, dtype=float)[fraud]
    labelled = np.asarray(labelled_unix, dtype=float)[fraud]
    query = np.asarray(query_unix, dtype=np.int64)
    if not len(event):
        return np.zeros(len(query))
    return _chunked_count(query, lambda q: (event >= q - lookback) & (event < q) & (labelled < q))


def merchant_risk(
    event_unix: np.ndarray, is_fraud: np.ndarray, labelled_unix: np.ndarray, query_unix: np.ndarray
) -> dict[str, np.ndarray]:
    """For one merchant's transactions (event times, fraud flags, label times; NaN = no label yet) and query
    times t: the MERCHANT_FEATURES (volume in [t - w, t), its spike, and the labels that arrived in each label
    window with the share of them that are fraud)."""
    times = np.sort(np.asarray(event_unix, dtype=np.int64))
    query = np.asarray(query_unix, dtype=np.int64)
    labelled = np.asarray(labelled_unix, dtype=float)
    fraud = np.asarray(is_fraud, dtype=bool)
    out: dict[str, np.ndarray] = {}
    for name, seconds in MERCHANT_WINDOWS.items():
        out[f"merchant_count_{name}"] = (
            np.searchsorted(times, query, "left") - np.searchsorted(times, query - seconds, "left")
        ).astype(float)
    out["merchant_volume_ratio_1d"] = volume_ratio(out["merchant_count_1d"], out["merchant_count_30d"])
    arrived = labels_arrived(event_unix, labelled, query)
    frauds = labels_arrived(np.asarray(event_unix)[fraud], labelled[fraud], query)
    for name in LABEL_WINDOWS:
        out[f"merchant_labels_{name}"] = arrived[name]
    for name in LABEL_WINDOWS:
        out[f"merchant_fraud_rate_{name}"] = rate(frauds[name], arrived[name])
    assert tuple(out) == MERCHANT_FEATURES
    return out
