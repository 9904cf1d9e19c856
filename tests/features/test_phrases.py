"""The features in words (fraud/features/phrases.py): a phrase for every feature of the catalogue, hand-made vectors
read as expected, the stored top reasons in words, and what a cardholder is told."""

from __future__ import annotations

import math

import pytest

from fraud.features.catalog import FEATURE_NAMES
from fraud.features.phrases import PHRASES, describe, describe_reasons, for_cardholder


def vector(**values: float) -> list[float]:
    """A feature vector in FEATURE_NAMES order: 0 everywhere but `values`."""
    unknown = set(values) - set(FEATURE_NAMES)
    assert not unknown, unknown
    return [float(values.get(name, 0.0)) for name in FEATURE_NAMES]


# a busy card at night: 144 purchases in 30 days (0.2 an hour, 4.8 a day), 6 of them in the last hour
BUSY = vector(
    amt_log=math.log1p(912.50),
    hour=23,
    is_night=1,
    is_weekend=1,
    age_years=67.9,
    age_known=1,
    city_pop_log=math.log1p(5000),
    city_pop_known=1,
    distance_km=1240.3,
    distance_known=1,
    card_count_1h=6,
    card_count_1d=8,
    card_count_7d=20,
    card_count_30d=144,
    card_mean_amt_1h=250,
    card_mean_amt_1d=200,
    card_mean_amt_7d=120,
    card_mean_amt_30d=110,
    amt_over_card_mean_30d=912.50 / 110,
    amt_z_card_30d=5.23,
    secs_since_prev_log=math.log1p(125),
    card_distinct_merchants_1h=4,
    card_distinct_merchants_1d=5,
    card_new_merchant_30d=1,
    card_new_category_30d=1,
    card_known_frauds_60d=2,
    merchant_count_1d=120,
    merchant_count_7d=300,
    merchant_count_30d=1200,
    merchant_volume_ratio_1d=(120 + 1) / (1200 / 30 + 1),
    merchant_labels_7d=40,
    merchant_labels_30d=200,
    merchant_fraud_rate_7d=5 / 40,
    merchant_fraud_rate_30d=6 / 200,
    cat_travel=1,
)
# a new card's first purchase, in the afternoon, with every optional field empty
FIRST = vector(
    amt_log=math.log1p(12.0),
    hour=14,
    secs_since_prev_log=math.log1p(30 * 86400),
    amt_over_card_mean_30d=1.0,
    card_new_merchant_30d=1,
    card_new_category_30d=1,
    merchant_volume_ratio_1d=1.0,
)


def test_every_feature_of_the_catalogue_has_a_phrase():
    assert set(PHRASES) == set(FEATURE_NAMES)
    for features in (BUSY, FIRST, vector()):
        for name in FEATURE_NAMES:
            phrase = describe(name, features)
            assert isinstance(phrase, str) and (phrase[:1].isupper() or phrase[:1].isdigit()), (name, phrase)
            assert "_" not in phrase, (name, phrase)  # no feature names, no "fraud_" prefixes


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("amt_log", "Amount 912.50, 8.3 times this card's 30-day average of 110.00"),
        ("amt_over_card_mean_30d", "Amount 912.50, 8.3 times this card's 30-day average of 110.00"),
        ("amt_z_card_30d", "Amount 912.50, 5.2 standard deviations above this card's 30-day average of 110.00"),
        ("hour", "Between 23:00 and 00:00 UTC, at night"),
        ("is_night", "Between 23:00 and 00:00 UTC, at night"),
        ("is_weekend", "On a weekend (Saturday or Sunday, UTC)"),
        ("age_years", "Cardholder aged 67"),
        ("city_pop_log", "Cardholder's city has 5,000 inhabitants"),
        ("distance_km", "1,240 km from the cardholder's home"),
        ("card_count_1h", "6 purchases on this card in the last hour; usually 0.2 an hour"),
        ("card_count_1d", "8 purchases on this card in the last day; usually 4.8 a day"),
        ("card_count_7d", "20 purchases on this card in the last 7 days; usually 34 a week"),
        ("card_count_30d", "144 purchases on this card in the last 30 days"),
        ("card_mean_amt_1h", "Purchases on this card in the last hour averaged 250.00; usually 110.00"),
        ("card_mean_amt_30d", "Purchases on this card in the last 30 days averaged 110.00"),
        ("secs_since_prev_log", "2 minutes after this card's previous purchase; usually one every 5 hours"),
        ("card_distinct_merchants_1h", "4 different merchants paid with this card in the last hour"),
        ("card_new_merchant_30d", "First purchase at this merchant in 30 days"),
        ("card_new_category_30d", "First purchase in this category (travel) in 30 days"),
        ("card_known_frauds_60d", "2 earlier purchases on this card in the last 60 days confirmed fraud"),
        ("merchant_count_1d", "120 purchases at this merchant in the last day; usually 40 a day"),
        ("merchant_count_7d", "300 purchases at this merchant in the last 7 days; usually 280 a week"),
        ("merchant_count_30d", "1,200 purchases at this merchant in the last 30 days"),
        (
            "merchant_volume_ratio_1d",
            "Merchant's volume 3 times its daily average: 120 purchases in the last day, usually 40 a day",
        ),
        ("merchant_labels_1d", "No purchases at this merchant labelled in the last day"),
        ("merchant_labels_7d", "40 purchases at this merchant labelled in the last 7 days, 5 of them fraud"),
        ("merchant_fraud_rate_7d", "Merchant's fraud rate 12% over the last 7 days (of 40 labelled)"),
        ("merchant_fraud_rate_30d", "Merchant's fraud rate 3% over the last 30 days (of 200 labelled)"),
        ("merchant_fraud_rate_1d", "Merchant's fraud rate unknown over the last day: no purchase there labelled"),
        ("cat_travel", "Category: travel"),
        ("cat_grocery_pos", "Category: travel (not groceries, in store)"),
    ],
)
def test_a_busy_card_at_night_in_words(feature, expected):
    assert describe(feature, BUSY) == expected


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("amt_log", "Amount 12.00; no earlier purchase on this card in 30 days to compare with"),
        ("amt_z_card_30d", "Amount 12.00; no earlier purchase on this card in 30 days to compare with"),
        ("hour", "Between 14:00 and 15:00 UTC, during the day"),
        ("is_weekend", "On a weekday (UTC)"),
        ("age_known", "Cardholder's date of birth not on file"),
        ("city_pop_known", "Cardholder's city population not on file"),
        (
            "distance_known",
            "Distance from the cardholder's home unknown (the home or the merchant's location is missing)",
        ),
        ("card_count_1h", "No purchases on this card in the last hour; usually 0 an hour"),
        ("card_mean_amt_7d", "No purchases on this card in the last 7 days"),
        ("secs_since_prev_log", "First purchase on this card in 30 days"),
        ("card_distinct_merchants_1d", "No merchant paid with this card in the last day"),
        ("card_new_category_30d", "First purchase without a category in 30 days"),
        ("card_known_frauds_60d", "No earlier purchases on this card in the last 60 days confirmed fraud"),
        (
            "merchant_volume_ratio_1d",
            "Merchant's volume about its daily average: no purchases in the last day, usually 0 a day",
        ),
        ("cat_travel", "No category (not travel)"),
    ],
)
def test_a_first_purchase_with_empty_fields_in_words(feature, expected):
    assert describe(feature, FIRST) == expected


def test_amounts_below_and_near_the_average_and_short_gaps():
    near = vector(amt_log=math.log1p(100.0), card_count_30d=3, card_mean_amt_30d=98.0, amt_over_card_mean_30d=100 / 98)
    assert describe("amt_log", near) == "Amount 100.00, about this card's 30-day average of 98.00"
    below = vector(amt_log=math.log1p(12.0), card_count_30d=3, card_mean_amt_30d=98.0, amt_over_card_mean_30d=12 / 98)
    assert describe("amt_log", below) == "Amount 12.00, 12% of this card's 30-day average of 98.00"
    z = vector(amt_log=math.log1p(12.0), card_count_30d=3, card_mean_amt_30d=98.0, amt_z_card_30d=-0.81)
    assert describe("amt_z_card_30d", z) == (
        "Amount 12.00, 0.8 standard deviations below this card's 30-day average of 98.00"
    )
    one = vector(secs_since_prev_log=math.log1p(1), card_count_30d=1, card_count_1h=1, card_distinct_merchants_1h=1)
    assert describe("secs_since_prev_log", one) == (
        "1 second after this card's previous purchase; usually one every 30 days"
    )
    assert describe("card_count_1h", one) == "1 purchase on this card in the last hour; usually 0.0014 an hour"
    assert describe("card_distinct_merchants_1h", one) == "1 merchant paid with this card in the last hour"
    hours = vector(secs_since_prev_log=math.log1p(5 * 3600), card_count_30d=10, distance_km=0.4, distance_known=1)
    assert (
        describe("secs_since_prev_log", hours)
        == "5 hours after this card's previous purchase; usually one every 3 days"
    )
    assert describe("distance_km", hours) == "Less than 1 km from the cardholder's home"


def test_describe_refuses_what_the_catalogue_does_not_have():
    with pytest.raises(KeyError):
        describe("night", BUSY)
    with pytest.raises(ValueError):
        describe("amt_log", BUSY[:-1])


def test_stored_reasons_in_words_in_their_order_each_phrase_once():
    reasons = [
        {"feature": "card_count_1h", "contribution": 0.41},
        {"feature": "amt_log", "contribution": 0.2},
        {"feature": "amt_over_card_mean_30d", "contribution": 0.1},  # says the same as amt_log
    ]
    assert describe_reasons(reasons, BUSY) == [
        "6 purchases on this card in the last hour; usually 0.2 an hour",
        "Amount 912.50, 8.3 times this card's 30-day average of 110.00",
    ]
    assert describe_reasons([], BUSY) == []
    # a feature of another catalogue version, or no stored vector: the name, nothing dropped
    assert describe_reasons([{"feature": "night", "contribution": 0.3}, *reasons[:1]], BUSY)[0] == "night"
    assert describe_reasons(reasons[:2], None) == ["card_count_1h", "amt_log"]
    assert describe_reasons(reasons[:1], [math.nan] * len(FEATURE_NAMES)) == ["card_count_1h"]


def test_a_cardholder_reads_at_most_two_reasons_about_their_own_payments():
    reasons = [
        {"feature": "merchant_fraud_rate_7d", "contribution": 0.5},  # the merchant's figures: never to a customer
        {"feature": "amt_z_card_30d", "contribution": 0.4},  # as the amount against the average
        {"feature": "age_years", "contribution": 0.3},  # the holder's profile: no
        {"feature": "card_new_merchant_30d", "contribution": 0.2},
        {"feature": "card_count_1h", "contribution": 0.1},
    ]
    assert for_cardholder(reasons, BUSY) == [
        "Amount 912.50, 8.3 times this card's 30-day average of 110.00",
        "First purchase at this merchant in 30 days",
    ]
    assert for_cardholder(reasons, BUSY, limit=3)[2] == "6 purchases on this card in the last hour; usually 0.2 an hour"
    # a daytime hour or a merchant seen before is no reason to ask a cardholder
    daytime = [{"feature": "hour", "contribution": 0.3}, {"feature": "card_new_merchant_30d", "contribution": 0.2}]
    assert for_cardholder(daytime, vector(hour=14)) == []
    assert for_cardholder(daytime, BUSY) == [
        "Between 23:00 and 00:00 UTC, at night",
        "First purchase at this merchant in 30 days",
    ]
    assert for_cardholder(reasons, None) == [] and for_cardholder([], BUSY) == []
