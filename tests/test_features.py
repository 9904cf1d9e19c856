import numpy as np
import pytest

from fraud.features import FEATURE_NAMES, merchant_risk

DAY = 86400


def test_feature_names_are_unique():
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_merchant_risk_by_hand():
    events = np.array([0, DAY, 2 * DAY, 10 * DAY])
    fraud = np.array([True, False, True, False])
    labelled = np.array([3 * DAY, np.nan, 20 * DAY, np.nan])  # NaN: no label yet
    queries = np.array([0, 2 * DAY, 4 * DAY, 10 * DAY, 40 * DAY])
    out = merchant_risk(events, fraud, labelled, queries)
    # 7 d windows [t - 7 d, t): at 0 none; at 2d {0, 1d}; at 4d {0, 1d, 2d}; at 10d none (window starts at 3d)
    assert list(out["merchant_count_7d"]) == [0, 2, 3, 0, 0]
    # known frauds: at 4d the fraud at 0 is labelled (3d < 4d), the one at 2d not yet (20d)
    assert out["merchant_fraud_rate_7d"][2] == pytest.approx(1 / 3)
    assert out["merchant_fraud_rate_7d"][1] == 0  # at 2d nothing is labelled yet
    assert list(out["merchant_count_30d"]) == [0, 2, 3, 3, 1]
    assert out["merchant_fraud_rate_30d"][3] == pytest.approx(1 / 3)  # at 10d: fraud at 0 known; at 2d not yet
    assert out["merchant_fraud_rate_30d"][4] == 0  # at 40d only the 10d transaction is in the window
