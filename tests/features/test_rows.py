"""The per-row features' one definition (fraud.features.rows) on hand-computed values: Spark's months_between
conventions, the time of day and week, unknown fields, the card's first transaction. That Spark's expressions give
the same values is tests/glue/test_row_features.py."""

import math
from datetime import date, datetime

import numpy as np
import pytest

from fraud.features.catalog import CATEGORY_FEATURES, LONGEST_WINDOW_SECONDS
from fraud.features.rows import ROW_FEATURES, RowInputs, months_between, row_features

DAY = 86400


def months(later: str, earlier: str) -> float:
    return float(months_between(np.array([later], "datetime64[s]"), np.array([earlier], "datetime64[D]"))[0])


def one(**changes) -> dict[str, float]:
    row = {
        "event_time": datetime(2026, 3, 10, 14, 30),  # a Tuesday
        "amount": 99.0,
        "dob": date(1990, 6, 15),
        "city_pop": 25000,
        "lat": 40.0,
        "long": -75.0,
        "merch_lat": 40.5,
        "merch_long": -75.5,
        "category": "misc_net",
        "card_mean_30d": 0.0,
        "card_std_30d": None,
        "card_count_30d": 0,
        "previous_unix": None,
        **changes,
    }
    return {name: float(column[0]) for name, column in row_features(RowInputs(**row)).items()}


def test_months_between_follows_spark():
    # 31-day months and the time of day, rounded to 8 digits (the Glue job's hand-built test: 35.74 years)
    assert months("2026-03-10T14:30", "1990-06-15") / 12 == pytest.approx(35.74, abs=0.01)
    assert months("2026-03-15T23:00", "1990-06-15") == 429.0  # the same day of the month: whole months
    assert months("2026-02-28T09:00", "2000-01-31") == 313.0  # both month ends
    assert months("2024-02-29T09:00", "2000-02-28") == 288 + round((DAY + 9 * 3600) / (31 * DAY), 8)  # not both ends
    assert months("2026-03-01T12:00", "2026-01-31") == round(2 + (-30 * DAY + 43200) / (31 * DAY), 8)
    assert months("1990-06-14T00:00", "1990-06-15") == round(-DAY / (31 * DAY), 8)  # before birth: negative


def test_the_first_transaction_of_a_card_with_every_field_known():
    f = one()
    assert tuple(f) == ROW_FEATURES
    assert f["amt_log"] == pytest.approx(math.log1p(99.0))
    assert f["hour"] == 14 and f["is_night"] == 0 and f["is_weekend"] == 0
    assert f["age_years"] == pytest.approx(months("2026-03-10T14:30", "1990-06-15") / 12) and f["age_known"] == 1
    assert f["city_pop_log"] == pytest.approx(math.log1p(25000)) and f["city_pop_known"] == 1
    assert f["distance_km"] == pytest.approx(69.9, abs=0.5) and f["distance_known"] == 1
    assert f["amt_over_card_mean_30d"] == 1 and f["amt_z_card_30d"] == 0  # no history
    assert f["secs_since_prev_log"] == pytest.approx(math.log1p(LONGEST_WINDOW_SECONDS))
    assert [name for name in CATEGORY_FEATURES if f[name]] == ["cat_misc_net"]


def test_night_weekend_and_the_card_history():
    assert one(event_time=datetime(2026, 3, 14, 22, 0))["is_night"] == 1  # Saturday 22:00
    assert one(event_time=datetime(2026, 3, 14, 22, 0))["is_weekend"] == 1
    assert one(event_time=datetime(2026, 3, 16, 5, 59))["is_night"] == 1  # Monday 05:59
    assert one(event_time=datetime(2026, 3, 16, 6, 0))["is_night"] == one()["is_weekend"] == 0
    f = one(card_mean_30d=33.0, card_std_30d=10.0, card_count_30d=3, previous_unix=1773153000 - 3600)
    assert f["amt_over_card_mean_30d"] == pytest.approx(3.0) and f["amt_z_card_30d"] == pytest.approx(66.0 / 11.0)
    assert f["secs_since_prev_log"] == pytest.approx(math.log1p(3600))


def test_unknown_fields_are_flagged_not_mistaken_for_values():
    f = one(dob=None, city_pop=None, lat=None, merch_long=float("nan"), category=None)
    assert f["age_years"] == f["age_known"] == f["city_pop_log"] == f["city_pop_known"] == 0
    assert f["distance_km"] == f["distance_known"] == 0
    assert not any(f[name] for name in CATEGORY_FEATURES)
    assert one(city_pop=-5)["city_pop_known"] == 0 and not any(one(category="crypto")[n] for n in CATEGORY_FEATURES)


def test_one_row_and_many_give_the_same_values():
    times = np.array(["2026-01-31T23:59:59", "2024-02-29T00:00:00", "2026-07-04T12:00:00"], "datetime64[s]")
    columns = {
        "event_time": times,
        "amount": [1.0, 2.5, 1e6],
        "dob": np.array(["2000-02-29", "NaT", "1950-12-31"], "datetime64[D]"),
        "city_pop": [1, np.nan, 0],
        "lat": [0.0, 10.0, -89.9],
        "long": [0.0, 20.0, 179.9],
        "merch_lat": [0.0, np.nan, 89.9],
        "merch_long": [180.0, 20.0, -179.9],
        "category": ["travel", None, "misc_pos"],
        "card_mean_30d": [0.0, 2.0, 5.0],
        "card_std_30d": [np.nan, 0.0, 1.0],
        "card_count_30d": [0, 1, 2],
        "previous_unix": [np.nan, times[1].astype(np.int64) - 5, times[2].astype(np.int64) - DAY],
    }
    many = row_features(RowInputs(**columns))
    for i in range(len(times)):
        single = row_features(RowInputs(**{name: values[i] for name, values in columns.items()}))
        assert {name: value[0] for name, value in single.items()} == {name: value[i] for name, value in many.items()}
    assert many["distance_km"][0] == pytest.approx(math.pi * 6371.0)  # antipodes: the cap keeps arcsin defined
