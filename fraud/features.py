"""The feature list: names and order of the model's input vector, per feature-set version.

The Glue job computes these (glue/process_transactions.py) and writes them to `transaction_features`
in exactly this order; the model metadata records the version and order it was trained on.
"""
from __future__ import annotations

from fraud.schema import CATEGORIES

FEATURE_VERSION = "v1"

# Card-history windows, in seconds: counts and mean amounts look strictly before the transaction.
WINDOWS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
LONGEST_WINDOW_SECONDS = max(WINDOWS.values())

NUMERIC_FEATURES: tuple[str, ...] = (
    "amt_log",  # log1p(amount)
    "hour",  # hour of day, UTC
    "is_night",  # 22:00-05:59
    "is_weekend",
    "age_years",  # holder's age at transaction time (0 when dob unknown)
    "city_pop_log",
    "distance_km",  # holder home to merchant location (0 when unknown)
    "card_count_1h", "card_count_1d", "card_count_7d",
    "card_mean_amt_7d", "card_mean_amt_30d",
    "amt_over_card_mean_30d",  # amount / mean of the card's previous 30 days (1 when no history)
    "secs_since_prev_log",  # log1p(seconds since the card's previous transaction; 30 d when none)
)
CATEGORY_FEATURES: tuple[str, ...] = tuple(f"cat_{name}" for name in CATEGORIES)
FEATURE_NAMES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORY_FEATURES
