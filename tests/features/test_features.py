"""The shared numpy computations of the label-based features, on hand-built histories: late labels, labels that
never come, labels that arrive after the lookback, and the denominators that count only what was labelled."""

import numpy as np
import pytest

from fraud.features.catalog import (
    FEATURE_NAMES,
    MERCHANT_FEATURES,
    amount_z,
    known_frauds,
    labels_arrived,
    merchant_risk,
    volume_ratio,
)

DAY = 86400
NONE = np.nan  # no label (yet, or ever)


def test_feature_names_are_unique():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_merchant_volume_counts_transactions_strictly_before():
    events = np.array([0, DAY, 2 * DAY, 10 * DAY])
    out = merchant_risk(
        events, np.zeros(4, bool), np.full(4, NONE), np.array([0, 2 * DAY, 4 * DAY, 10 * DAY, 40 * DAY])
    )
    assert tuple(out) == MERCHANT_FEATURES
    # 7 d windows [t - 7 d, t): at 0 none; at 2d {0, 1d}; at 4d {0, 1d, 2d}; at 10d none (window starts at 3d)
    assert list(out["merchant_count_7d"]) == [0, 2, 3, 0, 0]
    assert list(out["merchant_count_30d"]) == [0, 2, 3, 3, 1]
    assert list(out["merchant_count_1d"]) == [0, 1, 0, 0, 0]
    assert out["merchant_volume_ratio_1d"][1] == pytest.approx(2 / (2 / 30 + 1))
    # no label anywhere: the rates are 0 and so are the counts they rest on
    assert not out["merchant_labels_30d"].any() and not out["merchant_fraud_rate_30d"].any()


def test_a_delay_longer_than_the_window_still_gives_the_merchant_a_risk():
    """Every label arrives 7 days late: the 7-day window still holds the labels of [t - 14 d, t - 7 d)."""
    events = np.array([0, DAY, 2 * DAY, 3 * DAY])
    fraud = np.array([True, False, True, False])
    labelled = events + 7 * DAY
    out = merchant_risk(events, fraud, labelled, np.array([8 * DAY + 1, 10 * DAY, 10 * DAY + 1, 20 * DAY]))
    assert list(out["merchant_labels_7d"]) == [2, 3, 4, 0]  # at 10d: the labels of 0, 1d, 2d (3d's arrives at 10d)
    assert list(out["merchant_fraud_rate_7d"]) == pytest.approx([0.5, 2 / 3, 0.5, 0.0])
    assert list(out["merchant_labels_1d"]) == [1, 1, 1, 0]  # at 8d+1: the label of 1d arrived at 8d
    assert out["merchant_fraud_rate_1d"][0] == 0 and out["merchant_fraud_rate_1d"][1] == 1.0


def test_only_labels_known_at_the_time_count_and_a_label_never_counts_for_itself():
    events = np.array([0, DAY])
    fraud = np.array([True, True])
    labelled = np.array([DAY, NONE])  # the second fraud is never labelled
    out = merchant_risk(events, fraud, labelled, np.array([0, DAY, DAY + 1, 5 * DAY]))
    assert list(out["merchant_labels_30d"]) == [0, 0, 1, 1]  # a label arriving at t is not known at t
    assert list(out["merchant_fraud_rate_30d"]) == [0, 0, 1.0, 1.0]


def test_labels_of_transactions_older_than_the_lookback_do_not_count():
    events = np.array([0.0, 10 * DAY])
    labelled = np.array([40 * DAY, 41 * DAY])  # 40 and 31 days late
    out = labels_arrived(events, labelled, np.array([55 * DAY, 65 * DAY]))
    assert list(out["30d"]) == [2, 1]  # at 65d the transaction at 0 is older than the 60-day lookback
    # a label dated before its own transaction (bad data) counts only once the transaction itself is in the past
    early = labels_arrived(np.array([10.0 * DAY]), np.array([5.0 * DAY]), np.array([6 * DAY, 11 * DAY]))
    assert list(early["7d"]) == [0, 1]


def test_known_frauds_of_a_card():
    events = np.array([0, DAY, 2 * DAY, 70 * DAY])
    fraud = np.array([True, False, True, True])
    labelled = np.array([3 * DAY, 3 * DAY, NONE, 71 * DAY])
    out = known_frauds(events, fraud, labelled, np.array([DAY, 3 * DAY, 3 * DAY + 1, 61 * DAY, 72 * DAY]))
    assert list(out) == [0, 0, 1, 0, 1]  # the fraud at 0 leaves the 60 days at 60d; the one at 2d is never labelled


def test_amount_z_and_volume_ratio_are_defined_everywhere():
    assert amount_z(100.0, 0.0, 0.0, 0) == 0  # no history
    assert amount_z(100.0, 20.0, 0.0, 3) == pytest.approx(80.0)  # always the same amount before: spread floored at 1
    assert amount_z(
        np.array([10.0, 30.0]), np.array([20.0, 20.0]), np.array([4.0, 4.0]), np.array([5, 5])
    ) == pytest.approx([-2, 2])
    assert volume_ratio(0, 0) == 1.0
