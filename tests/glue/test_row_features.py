"""The Spark job's per-row feature expressions (fraud.features.spark.row_feature_columns) give the values of their one
definition (fraud.features.rows, which the online path and the pandas reference call): on edge cases (month ends,
leap days, dates of birth after the transaction, the last second of a day, unknown fields, antipodes) and on random
rows. Spark computes the age with its built-in months_between, so this is also the proof that rows.months_between
is Spark's."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from fraud.core.schema import CATEGORIES
from fraud.features.rows import ROW_FEATURES, RowInputs, row_features
from fraud.features.spark import row_feature_columns

# log1p, sin, cos, asin and sqrt come from Java's StrictMath in Spark and the C library in numpy: an ulp apart at most
TRANSCENDENTAL = {"amt_log", "city_pop_log", "distance_km", "secs_since_prev_log"}
SCHEMA = (
    "id long, event_unix long, amt double, dob string, city_pop int, lat double, long double, merch_lat double, "
    "merch_long double, category string, card_mean_amt_30d double, card_std_amt_30d double, card_count_30d double, "
    "prev_unix long"
)
NAMES = [column.split()[0] for column in SCHEMA.split(", ")]
EDGE_CASES = [
    # event time (UTC), date of birth: month ends, leap days, the same day of the month, the last second of a day
    ("2026-02-28 09:00:00", "2000-01-31"),
    ("2024-02-29 09:00:00", "2000-02-28"),
    ("2024-02-29 00:00:00", "2000-02-29"),
    ("2025-02-28 23:59:59", "2000-02-29"),
    ("2026-03-01 12:00:00", "2026-01-31"),
    ("2026-03-15 23:00:00", "1990-06-15"),
    ("2026-12-31 23:59:59", "1900-01-01"),
    ("2026-01-01 00:00:00", "2026-01-02"),  # born after the transaction: a negative age, as Spark says
    ("1970-01-01 00:00:00", None),
    ("2026-03-14 22:00:00", "1990-06-15"),  # Saturday night
    ("2026-03-16 05:59:59", "1990-06-15"),  # Monday before dawn
]


def _inputs(rng: np.random.Generator) -> list[tuple]:
    rows = []
    for i, (when, dob) in enumerate(EDGE_CASES):
        unix = int(np.datetime64(when.replace(" ", "T"), "s").astype(np.int64))
        rows.append((i, unix, 12.34, dob, 5000, 40.0, -75.0, -40.0, 105.0, "travel", 0.0, None, 0.0, None))
    rows.append((len(rows), 0, 0.0, None, None, None, 1.0, 2.0, 3.0, None, 10.0, 0.0, 1.0, -3600))  # nothing known
    rows.append((len(rows), 0, 1.0, None, -1, 0.0, 0.0, 0.0, 180.0, "crypto", 2.0, 5.0, 2.0, -1))  # antipodes
    categories = [*CATEGORIES, None, "unknown"]
    for _ in range(2000):
        unix = int(rng.integers(-631152000, 1893456000))  # 1950 to 2030
        day_of_birth = unix // 86400 - int(rng.integers(-400, 40000))
        dob = None if rng.random() < 0.1 else str(np.datetime64(day_of_birth, "D"))
        known = rng.random(4) > 0.05
        lat, long, merch_lat, merch_long = (
            float(v) if k else None
            for v, k in zip(rng.uniform([-90, -180, -90, -180], [90, 180, 90, 180]), known, strict=True)
        )
        count = float(rng.integers(0, 5))
        rows.append(
            (
                len(rows),
                unix,
                round(float(rng.lognormal(3, 1.5)), 2),
                dob,
                None if rng.random() < 0.1 else int(rng.integers(-10, 3_000_000)),
                lat,
                long,
                merch_lat,
                merch_long,
                categories[int(rng.integers(len(categories)))],
                round(float(rng.lognormal(3, 1)), 4) if count else 0.0,
                float(rng.uniform(0, 50)) if count else None,
                count,
                unix - int(rng.integers(0, 30 * 86400)) if count else None,
            )
        )
    return rows


def _numpy(rows: list[tuple]) -> dict[str, np.ndarray]:
    get = dict(zip(NAMES, zip(*rows, strict=True), strict=True))
    inputs = RowInputs(
        event_time=np.array(get["event_unix"], dtype="datetime64[s]"),
        amount=get["amt"],
        dob=np.array([d or "NaT" for d in get["dob"]], dtype="datetime64[D]"),
        city_pop=get["city_pop"],
        lat=get["lat"],
        long=get["long"],
        merch_lat=get["merch_lat"],
        merch_long=get["merch_long"],
        category=get["category"],
        card_mean_30d=get["card_mean_amt_30d"],
        card_std_30d=get["card_std_amt_30d"],
        card_count_30d=get["card_count_30d"],
        previous_unix=get["prev_unix"],
    )
    return row_features(inputs)


def test_spark_expressions_equal_the_one_definition(spark):
    rows = _inputs(np.random.default_rng(19))
    frame = (
        spark.createDataFrame(rows, SCHEMA)
        .withColumn("event_time", F.timestamp_seconds("event_unix"))
        .withColumn("dob", F.to_date("dob"))
    )
    got = frame.select("id", *[column.alias(name) for name, column in row_feature_columns().items()]).toPandas()
    got = got.sort_values("id").reset_index(drop=True)
    expected = _numpy(rows)
    assert tuple(expected) == ROW_FEATURES
    for name in ROW_FEATURES:
        if name in TRANSCENDENTAL:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-14, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert got["age_known"].mean() == pytest.approx(0.9, abs=0.05) and (got["age_years"] < 0).any()
