"""Each feature's value on small hand-built histories, on real Spark, with the edge cases of point-in-time
correctness: a card's first transaction, two transactions in the same second, windows crossing midnight
and a month end, window boundaries, labels that arrive after the transaction being featured."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import Row
from pyspark.sql.types import StringType, StructField, StructType

from fraud.features.catalog import FEATURE_NAMES, LONGEST_WINDOW_SECONDS
from fraud.features.spark import RAW_SCHEMA, features, validate

KEY = b"test-key"
HOME = {
    "lat": "40.0",
    "long": "-75.0",
    "city_pop": "1000",
    "dob": "1990-06-15",
    "first": "A",
    "last": "B",
    "gender": "F",
    "street": "s",
    "city": "c",
    "state": "PA",
    "zip": "19000",
    "job": "j",
    "category": "misc_net",
}


def raw(spark, rows: list[dict]):
    schema = StructType(
        RAW_SCHEMA.fields + [StructField("batch_id", StringType()), StructField("source_key", StringType())]
    )
    full = [Row(**{f.name: r.get(f.name) for f in RAW_SCHEMA.fields}, batch_id="b", source_key="k") for r in rows]
    return spark.createDataFrame(full, schema)


def tx(trans_num, when, amt="10.00", card="4111111111111111", merchant="m1", **extra):
    return {
        **HOME,
        "trans_num": trans_num,
        "trans_date_trans_time": when,
        "amt": amt,
        "cc_num": card,
        "merchant": merchant,
        "merch_lat": "40.0",
        "merch_long": "-75.0",
        **extra,
    }


def featurize(spark, rows, labels=None) -> dict[str, dict[str, float]]:
    valid, _, _ = validate(raw(spark, rows), KEY)
    label_frame = None
    if labels:
        label_frame = spark.createDataFrame(
            [Row(trans_num=t, is_fraud=f, labelled_at=at) for t, f, at in labels],
            "trans_num string, is_fraud boolean, labelled_at string",
        )
        label_frame = label_frame.selectExpr("trans_num", "is_fraud", "to_timestamp(labelled_at) AS labelled_at")
    out = features(valid, None, label_frame).select("trans_num", "features").collect()
    return {r.trans_num: dict(zip(FEATURE_NAMES, r.features, strict=False)) for r in out}


def test_first_transaction_of_a_card(spark):
    f = featurize(spark, [tx("t1", "2026-03-10 14:30:00", "99.00")])["t1"]
    assert f["card_count_1h"] == f["card_count_30d"] == f["card_mean_amt_30d"] == 0
    assert f["amt_over_card_mean_30d"] == 1.0
    assert f["secs_since_prev_log"] == pytest.approx(math.log1p(LONGEST_WINDOW_SECONDS))
    assert f["card_distinct_merchants_1d"] == 0 and f["merchant_count_7d"] == 0
    assert f["amt_log"] == pytest.approx(math.log1p(99.0))
    assert f["hour"] == 14 and f["is_night"] == 0 and f["is_weekend"] == 0  # a Tuesday afternoon
    assert f["age_years"] == pytest.approx(35.74, abs=0.01)
    assert f["distance_km"] == 0 and f["cat_misc_net"] == 1 and f["cat_travel"] == 0


def test_two_transactions_in_the_same_second_do_not_see_each_other(spark):
    f = featurize(spark, [tx("a", "2026-03-10 14:30:00"), tx("b", "2026-03-10 14:30:00", merchant="m2")])
    for name in ("a", "b"):
        assert f[name]["card_count_1h"] == 0 and f[name]["merchant_count_7d"] == 0
        assert f[name]["card_distinct_merchants_1d"] == 0


def test_windows_cross_midnight_and_month_end(spark):
    f = featurize(
        spark,
        [
            tx("t1", "2026-01-31 23:30:00", "10.00"),
            tx("t2", "2026-02-01 00:10:00", "30.00", merchant="m2"),
            tx("t3", "2026-02-01 00:31:00", "50.00"),  # 61 min after t1: t1 leaves the 1 h window
        ],
    )
    assert f["t2"]["card_count_1h"] == 1 and f["t2"]["card_mean_amt_1h"] == 10
    assert f["t2"]["secs_since_prev_log"] == pytest.approx(math.log1p(40 * 60))
    assert f["t3"]["card_count_1h"] == 1 and f["t3"]["card_mean_amt_1h"] == 30
    assert f["t3"]["card_count_1d"] == 2 and f["t3"]["card_mean_amt_1d"] == 20
    assert f["t3"]["amt_over_card_mean_30d"] == pytest.approx(2.5)
    assert f["t3"]["card_distinct_merchants_1d"] == 2
    assert f["t2"]["is_night"] == 1 and f["t2"]["hour"] == 0


def test_window_boundaries(spark):
    f = featurize(
        spark,
        [
            tx("t0", "2026-03-01 00:00:00"),
            tx("t1", "2026-03-01 01:00:00"),
            tx("t2", "2026-03-08 00:00:00"),
            tx("t3", "2026-03-31 00:00:01"),
        ],
    )
    assert f["t1"]["card_count_1h"] == 1  # exactly one hour before: [t - 1 h, t) includes it
    assert f["t2"]["card_count_7d"] == 2  # t0 is exactly 7 days before
    assert f["t3"]["card_count_30d"] == 2  # t0 is 30 days and 1 s before: out; t1, t2 in


def test_other_cards_do_not_leak_into_card_windows(spark):
    f = featurize(spark, [tx("x", "2026-03-10 10:00:00", card="5500000000000004"), tx("y", "2026-03-10 10:05:00")])
    assert f["y"]["card_count_1h"] == 0
    assert f["y"]["merchant_count_7d"] == 1  # but the merchant saw both cards


def test_merchant_fraud_rate_uses_only_labels_known_at_the_time(spark):
    rows = [
        tx("f", "2026-03-01 12:00:00", card="5500000000000004"),  # fraud, labelled two days later
        tx("q1", "2026-03-02 12:00:00"),  # before the label arrives
        tx("q2", "2026-03-04 12:00:00"),
    ]  # after
    labels = [("f", True, "2026-03-03 12:00:00"), ("q1", False, "2026-03-05 00:00:00")]
    f = featurize(spark, rows, labels)
    assert (
        f["q1"]["merchant_count_7d"] == 1
        and f["q1"]["merchant_labels_7d"] == 0
        and f["q1"]["merchant_fraud_rate_7d"] == 0
    )
    # at q2 f's label has arrived, q1's (legitimate, 2026-03-05) not yet: the rate divides by the labels known
    assert f["q2"]["merchant_count_7d"] == 2 and f["q2"]["merchant_labels_7d"] == 1
    assert f["q2"]["merchant_fraud_rate_7d"] == pytest.approx(1.0)
    assert f["f"]["merchant_fraud_rate_30d"] == 0  # its own label never counts for itself


def test_labels_a_week_late_still_give_the_merchant_and_the_card_a_risk(spark):
    """With every label 7 days late, a 7-day window of transactions holds no known label; the labels that arrived
    in the last 7 days do (the transactions of [t - 14 d, t - 7 d))."""
    rows = [
        tx("f1", "2026-03-01 12:00:00", card="5500000000000004"),
        tx("g1", "2026-03-02 12:00:00", card="5500000000000004"),
        tx("q", "2026-03-10 12:00:00"),
        tx("c1", "2026-03-10 13:00:00", card="5500000000000004", merchant="m2"),
    ]
    labels = [("f1", True, "2026-03-08 12:00:00"), ("g1", False, "2026-03-09 12:00:00")]
    f = featurize(spark, rows, labels)
    assert f["q"]["merchant_labels_7d"] == 2 and f["q"]["merchant_fraud_rate_7d"] == pytest.approx(0.5)
    assert f["q"]["merchant_labels_1d"] == 1 and f["q"]["merchant_fraud_rate_1d"] == 0  # only g1's label is a day old
    assert f["c1"]["card_known_frauds_60d"] == 1 and f["q"]["card_known_frauds_60d"] == 0


def test_label_free_signals_and_empty_optional_fields(spark):
    bare = {
        "category": None,
        "lat": None,
        "long": None,
        "city_pop": None,
        "dob": None,
        "merch_lat": None,
        "merch_long": None,
    }
    f = featurize(
        spark,
        [
            tx("a", "2026-03-10 10:00:00", "10.00", **bare),
            tx("b", "2026-03-10 10:20:00", "30.00", merchant="m2", **bare),
            tx("c", "2026-03-10 10:40:00", "200.00", **bare),
        ],
    )
    assert (f["a"]["age_known"], f["a"]["city_pop_known"], f["a"]["distance_known"]) == (0, 0, 0)
    assert f["a"]["age_years"] == f["a"]["distance_km"] == f["a"]["city_pop_log"] == 0
    assert f["a"]["card_new_merchant_30d"] == f["a"]["card_new_category_30d"] == 1
    assert f["b"]["card_new_merchant_30d"] == 1 and f["b"]["card_new_category_30d"] == 0  # empty is a category too
    assert f["c"]["card_new_merchant_30d"] == 0 and f["c"]["card_distinct_merchants_1h"] == 2
    assert f["c"]["amt_z_card_30d"] == pytest.approx((200.0 - 20.0) / (10.0 + 1.0))  # history 10, 30: std 10
