"""Each metric on tiny cases computed by hand."""

import numpy as np
import pandas as pd
import pytest

from fraud.model import metrics


def test_card_precision_at_k_by_hand():
    # day 1: cards a(0.9, fraud), b(0.8), c(0.1, fraud) -> top 2 = a, b -> 1/2
    # day 2: cards a(0.2), b(0.7, fraud) -> top 2 = b, a -> 1/2 ; mean = 0.5
    frame = pd.DataFrame(
        {
            "day": [1, 1, 1, 1, 2, 2],
            "card": ["a", "a", "b", "c", "a", "b"],
            "score": [0.9, 0.3, 0.8, 0.1, 0.2, 0.7],
            "is_fraud": [True, False, False, True, False, True],
        }
    )
    assert metrics.card_precision_at_k(frame, 2) == pytest.approx(0.5)
    assert metrics.card_precision_at_k(frame, 1) == pytest.approx(1.0)  # a on day 1, b on day 2


def test_card_precision_counts_a_card_once_a_day_with_its_max_score_and_any_fraud():
    # card a: two rows (0.9 legit, 0.2 fraud) -> one card, score 0.9, compromised; b: 0.5 legit
    frame = pd.DataFrame(
        {"day": [1, 1, 1], "card": ["a", "a", "b"], "score": [0.9, 0.2, 0.5], "is_fraud": [False, True, False]}
    )
    assert metrics.card_precision_at_k(frame, 1) == pytest.approx(1.0)
    # k larger than the cards of the day: the unused reviews count as misses (1 fraud card / 4)
    assert metrics.card_precision_at_k(frame, 4) == pytest.approx(0.25)
    assert np.isnan(metrics.card_precision_at_k(frame.iloc[:0], 2))


def test_average_precision_and_auc_by_hand():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # ranking: 1,0,1,0 -> AP = (1/1 + 2/3) / 2
    assert metrics.average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2)
    # pairs (pos>neg): (0.9>0.8, 0.9>0.1, 0.7<0.8, 0.7>0.1) -> 3/4
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)
    assert np.isnan(metrics.roc_auc(np.zeros(3), np.ones(3)))


def test_average_precision_with_ties_and_without_fraud():
    # scores 0.9 (fraud), 0.5 (fraud), 0.5 (legit), 0.1 (legit): the tie is one step reaching recall 1 at
    # precision 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.1])
    assert metrics.average_precision(y, s) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert np.isnan(metrics.average_precision(np.zeros(3), np.array([0.1, 0.2, 0.3])))
    # a perfect ranking has AP 1 whatever the fraud rate
    assert metrics.average_precision(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == pytest.approx(1.0)


def test_roc_auc_counts_ties_as_half():
    # pairs: (0.8 vs 0.8) tie = 1/2, (0.8 vs 0.2) = 1 -> 1.5 / 2
    assert metrics.roc_auc(np.array([1, 0, 0]), np.array([0.8, 0.8, 0.2])) == pytest.approx(0.75)


def test_precision_recall_at_flags():
    y = np.array([True, True, False, False])
    flagged = np.array([True, False, True, False])
    assert metrics.precision_recall_at(y, flagged) == (0.5, 0.5)
    # nothing flagged: precision 0 (not undefined: the alerts caught nothing), recall 0
    assert metrics.precision_recall_at(y, np.zeros(4, dtype=bool)) == (0.0, 0.0)
    precision, recall = metrics.precision_recall_at(np.zeros(2, dtype=bool), np.array([True, False]))
    assert precision == 0.0 and np.isnan(recall)


def test_threshold_for_budget_gives_budget_alerts():
    scores = np.linspace(0, 1, 101)
    threshold = metrics.threshold_for_budget(scores, days=2, alerts_per_day=5)
    assert (scores >= threshold).sum() == 10
    # fewer scores than the budget: everything is flagged; no scores at all: a neutral 0.5
    assert metrics.threshold_for_budget(np.array([0.3, 0.7]), days=1, alerts_per_day=5) == pytest.approx(0.3)
    assert metrics.threshold_for_budget(np.zeros(0), days=1, alerts_per_day=5) == 0.5
