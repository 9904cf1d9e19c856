import numpy as np
import pandas as pd
import pytest

from fraud import metrics


def test_card_precision_at_k_by_hand():
    # day 1: cards a(0.9, fraud), b(0.8), c(0.1, fraud) -> top 2 = a, b -> 1/2
    # day 2: cards a(0.2), b(0.7, fraud) -> top 2 = b, a -> 1/2 ; mean = 0.5
    frame = pd.DataFrame({
        "day": [1, 1, 1, 1, 2, 2],
        "card": ["a", "a", "b", "c", "a", "b"],
        "score": [0.9, 0.3, 0.8, 0.1, 0.2, 0.7],
        "is_fraud": [True, False, False, True, False, True],
    })
    assert metrics.card_precision_at_k(frame, 2) == pytest.approx(0.5)
    assert metrics.card_precision_at_k(frame, 1) == pytest.approx(1.0)  # a on day 1, b on day 2


def test_average_precision_and_auc_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # ranking: 1,0,1,0 -> AP = (1/1 + 2/3) / 2
    assert metrics.average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    # pairs (pos>neg): (0.9>0.8, 0.9>0.1, 0.7<0.8, 0.7>0.1) -> 3/4
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)
    assert np.isnan(metrics.roc_auc(np.zeros(3), np.ones(3)))


def test_precision_recall_at_flags():
    y = np.array([True, True, False, False])
    flagged = np.array([True, False, True, False])
    assert metrics.precision_recall_at(y, flagged) == (0.5, 0.5)


def test_threshold_for_budget_gives_budget_alerts():
    scores = np.linspace(0, 1, 101)
    threshold = metrics.threshold_for_budget(scores, days=2, alerts_per_day=5)
    assert (scores >= threshold).sum() == 10
