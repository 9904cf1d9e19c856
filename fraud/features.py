"""The feature list: names and order of the model's input vector, per feature-set version, and the
point-in-time merchant-risk computation shared by the Glue job and (later) the online scorer.

The Glue job (glue/process_transactions.py) computes these and writes them to `transaction_features` in
exactly this order; the model metadata records the version and order it was trained on. Every feature
looks only at data strictly before the transaction: windows are [t - w, t), so a transaction never sees
itself or another transaction in the same second, and a label counts only once `labelled_at < t`.
"""
from __future__ import annotations

import numpy as np

from fraud.schema import CATEGORIES

FEATURE_VERSION = "v2"

# History windows, in seconds.
WINDOWS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MERCHANT_WINDOWS = {"7d": 7 * 86400, "30d": 30 * 86400}
LONGEST_WINDOW_SECONDS = max(WINDOWS.values())

NUMERIC_FEATURES: tuple[str, ...] = (
    "amt_log",  # log1p(amount)
    "hour",  # hour of day, UTC
    "is_night",  # 22:00-05:59
    "is_weekend",
    "age_years",  # holder's age at transaction time (0 when dob unknown)
    "city_pop_log",
    "distance_km",  # holder home to merchant location, haversine (0 when unknown)
    # the card's history: how many transactions and their mean amount in each window (0 when none)
    *(f"card_count_{w}" for w in WINDOWS),
    *(f"card_mean_amt_{w}" for w in WINDOWS),
    "amt_over_card_mean_30d",  # amount / the card's 30-day mean (1 when no history)
    "secs_since_prev_log",  # log1p(seconds since the card's previous transaction; 30 d when none)
    "card_distinct_merchants_1d",
    # the merchant's history: transactions, and the share of them known to be fraud at transaction time
    *(f"merchant_count_{w}" for w in MERCHANT_WINDOWS),
    *(f"merchant_fraud_rate_{w}" for w in MERCHANT_WINDOWS),
)
CATEGORY_FEATURES: tuple[str, ...] = tuple(f"cat_{name}" for name in CATEGORIES)
FEATURE_NAMES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORY_FEATURES
MERCHANT_FEATURES: tuple[str, ...] = tuple(n for n in NUMERIC_FEATURES if n.startswith("merchant_"))


def merchant_risk(event_unix: np.ndarray, is_fraud: np.ndarray, labelled_unix: np.ndarray,
                  query_unix: np.ndarray) -> dict[str, np.ndarray]:
    """For one merchant's transactions (event times, fraud flags, label times; NaN = no label yet) and query
    times t: per window w, the number of its transactions in [t - w, t) and the share of those already known
    to be fraud at t (is_fraud and labelled_at < t)."""
    order = np.argsort(event_unix, kind="stable")
    times = np.asarray(event_unix, dtype=np.int64)[order]
    fraud = np.asarray(is_fraud, dtype=bool)[order]
    labelled = np.asarray(labelled_unix, dtype=float)[order]
    fraud_times, fraud_labelled = times[fraud], labelled[fraud]
    query = np.asarray(query_unix, dtype=np.int64)
    out: dict[str, np.ndarray] = {}
    for name, seconds in MERCHANT_WINDOWS.items():
        count = np.searchsorted(times, query, "left") - np.searchsorted(times, query - seconds, "left")
        known = np.zeros(len(query))
        for start in range(0, len(query), 4096):  # bounded memory: query chunk x the merchant's frauds
            q = query[start:start + 4096, None]
            known[start:start + 4096] = ((fraud_times >= q - seconds) & (fraud_times < q) & (fraud_labelled < q)).sum(axis=1)
        out[f"merchant_count_{name}"] = count.astype(float)
        out[f"merchant_fraud_rate_{name}"] = np.divide(known, count, out=np.zeros(len(query)), where=count > 0)
    return out
