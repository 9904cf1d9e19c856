"""The per-row features, defined once: every value of the vector that comes from the transaction's own fields and
its card's aggregates (30-day mean, spread and count, previous transaction), however an engine found those.

The online path (fraud/features/online.py, one row) and the pandas reference (bench/pandas_features.py, every
row) compute them with these numpy functions. The ETL cannot call Python per row without a UDF, so
fraud/features/spark.py writes each one as a Spark column expression under the same name (`row_feature_columns`,
with Spark's built-in `months_between` for the age), and tests/glue/test_row_features.py checks that Spark's values
equal these on edge cases (month ends, leap days, the time of day, unknown fields) and on random rows.

Every function takes numpy arrays of one length (NaN, NaT or None where a value is unknown) and works as well on
one row as on a million. No pandas here: the scorer Lambda ships without it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from fraud.core.schema import CATEGORIES
from fraud.features.catalog import CATEGORY_FEATURES, DAY, LONGEST_WINDOW_SECONDS, amount_z

EARTH_RADIUS_KM = 6371.0
NIGHT_FROM_HOUR, NIGHT_UNTIL_HOUR = 22, 6  # night is 22:00 to 05:59
WEEKEND_FROM = 5  # Saturday, counting Monday as 0
# months_between counts a part month in 31-day months and rounds to 8 decimals, as Spark (and Hive) do
MONTH_SECONDS = 31 * DAY
MONTH_DECIMALS = 8
ROW_FEATURES: tuple[str, ...] = (
    "amt_log",
    "hour",
    "is_night",
    "is_weekend",
    "age_years",
    "age_known",
    "city_pop_log",
    "city_pop_known",
    "distance_km",
    "distance_known",
    "amt_over_card_mean_30d",
    "amt_z_card_30d",
    "secs_since_prev_log",
    *CATEGORY_FEATURES,
)
_DTYPES = {"event_time": "datetime64[s]", "dob": "datetime64[D]", "category": object}
_CATEGORY_CODES = {name: code for code, name in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class RowInputs:
    """What the per-row features read, one array per field (a scalar is one row): cast to its dtype on creation."""

    event_time: np.ndarray  # datetime64[s], UTC
    amount: np.ndarray  # rounded to cents
    dob: np.ndarray  # datetime64[D]; NaT unknown
    city_pop: np.ndarray  # NaN unknown
    lat: np.ndarray  # the holder's home; NaN unknown
    long: np.ndarray
    merch_lat: np.ndarray  # the merchant's location; NaN unknown
    merch_long: np.ndarray
    category: np.ndarray  # str, or None when empty
    card_mean_30d: np.ndarray  # the card's mean amount in [t - 30 d, t); 0 with no history
    card_std_30d: np.ndarray  # its population standard deviation; NaN with no history
    card_count_30d: np.ndarray  # its transactions in [t - 30 d, t)
    previous_unix: np.ndarray  # the card's previous transaction in [t - 30 d, t); NaN when none

    def __post_init__(self) -> None:
        for field in fields(self):
            value = np.array(getattr(self, field.name), dtype=_DTYPES.get(field.name, float), ndmin=1, copy=None)
            object.__setattr__(self, field.name, value)


# --- the time of day and of the week -----------------------------------------------------------------------------


def hour_of_day(event_time: np.ndarray) -> np.ndarray:
    return ((event_time - event_time.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(float)


def is_night(event_time: np.ndarray) -> np.ndarray:
    hour = hour_of_day(event_time)
    return ((hour >= NIGHT_FROM_HOUR) | (hour < NIGHT_UNTIL_HOUR)).astype(float)


def is_weekend(event_time: np.ndarray) -> np.ndarray:
    weekday = (event_time.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    return (weekday >= WEEKEND_FROM).astype(float)


# --- the holder --------------------------------------------------------------------------------------------------


def _calendar(day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of datetime64[D] values: the month (counted from 1970-01), the day of the month, whether it is the last."""
    month = day.astype("datetime64[M]")
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    last = ((month + np.timedelta64(1, "M")).astype("datetime64[D]") - day).astype(np.int64) == 1
    return month.astype(np.int64), day_of_month, last


def months_between(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Spark's months_between(timestamp, date): whole months when the days of month agree or both are month ends,
    otherwise the day and time difference in 31-day months, rounded to 8 decimals half up (Java's Math.round)."""
    later_day = later.astype("datetime64[D]")
    later_month, later_day_of_month, later_last = _calendar(later_day)
    earlier_month, earlier_day_of_month, earlier_last = _calendar(earlier.astype("datetime64[D]"))
    months = (later_month - earlier_month).astype(float)
    # `earlier` is a date: its time of day is midnight
    seconds = (later_day_of_month - earlier_day_of_month) * DAY + (later - later_day).astype(np.int64)
    scale = 10.0**MONTH_DECIMALS
    partial = np.floor((months + seconds / MONTH_SECONDS) * scale + 0.5) / scale
    return np.where((later_day_of_month == earlier_day_of_month) | (later_last & earlier_last), months, partial)


def age_years(event_time: np.ndarray, dob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The holder's age at the transaction (0 when the date of birth is unknown), and whether it is known."""
    known = ~np.isnat(dob)
    return np.where(known, months_between(event_time, dob) / 12, 0.0), known.astype(float)


def city_pop_log(population: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log1p of the holder's city population (0 when unknown or negative), and whether it is known."""
    known = np.isfinite(population) & (population >= 0)
    return np.log1p(np.where(known, population, 0.0)), known.astype(float)


# --- place -------------------------------------------------------------------------------------------------------


def haversine_km(lat1: np.ndarray, long1: np.ndarray, lat2: np.ndarray, long2: np.ndarray) -> np.ndarray:
    """Great-circle distance; NaN when a coordinate is unknown. The cap keeps rounding out of arcsin."""
    a = (
        np.sin(np.radians(lat2 - lat1) / 2) ** 2
        + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * np.sin(np.radians(long2 - long1) / 2) ** 2
    )
    return EARTH_RADIUS_KM * 2 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def distance_km(rows: RowInputs) -> tuple[np.ndarray, np.ndarray]:
    """Home to merchant (0 when either place is unknown), and whether it is known."""
    km = haversine_km(rows.lat, rows.long, rows.merch_lat, rows.merch_long)
    known = ~np.isnan(km)
    return np.where(known, km, 0.0), known.astype(float)


# --- the amount against the card's habits ------------------------------------------------------------------------


def amount_over_mean(amount: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The amount over the card's 30-day mean; 1 with no history."""
    return np.divide(amount, mean, out=np.ones(np.broadcast(amount, mean).shape), where=mean > 0)


def seconds_since_previous_log(event_time: np.ndarray, previous_unix: np.ndarray) -> np.ndarray:
    """log1p of the seconds since the card's previous transaction within 30 days (30 days when none)."""
    gap = event_time.astype(np.int64) - previous_unix
    return np.log1p(np.where(np.isnan(previous_unix), float(LONGEST_WINDOW_SECONDS), gap))


def category_one_hot(category: np.ndarray) -> dict[str, np.ndarray]:
    """One column per known category; all 0 for an empty or unknown one."""
    codes = np.fromiter((_CATEGORY_CODES.get(c, -1) for c in category.tolist()), dtype=np.int64, count=len(category))
    hot = (codes[:, None] == np.arange(len(CATEGORIES))).astype(float)
    return {feature: hot[:, code] for code, feature in enumerate(CATEGORY_FEATURES)}


def row_features(rows: RowInputs) -> dict[str, np.ndarray]:
    """Every per-row feature by name (ROW_FEATURES), float64."""
    event_time = rows.event_time
    age, age_known = age_years(event_time, rows.dob)
    population, population_known = city_pop_log(rows.city_pop)
    distance, distance_known = distance_km(rows)
    out = {
        "amt_log": np.log1p(rows.amount),
        "hour": hour_of_day(event_time),
        "is_night": is_night(event_time),
        "is_weekend": is_weekend(event_time),
        "age_years": age,
        "age_known": age_known,
        "city_pop_log": population,
        "city_pop_known": population_known,
        "distance_km": distance,
        "distance_known": distance_known,
        "amt_over_card_mean_30d": amount_over_mean(rows.amount, rows.card_mean_30d),
        "amt_z_card_30d": amount_z(rows.amount, rows.card_mean_30d, rows.card_std_30d, rows.card_count_30d),
        "secs_since_prev_log": seconds_since_previous_log(event_time, rows.previous_unix),
        **category_one_hot(rows.category),
    }
    assert tuple(out) == ROW_FEATURES
    return out
