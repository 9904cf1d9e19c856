"""Top reasons by per-feature occlusion: hand-computed cases on a NumPy model, then a real `.tflite` model run by
LiteRT whose weights say which features must come out on top."""

import json

import numpy as np
import pytest

from fraud.features.catalog import FEATURE_NAMES
from fraud.model.attribution import occluded_rows, reasons_json, score_and_attribute, top_reasons
from fraud.model.litert import TFLiteScorer
from tests.helpers.litert_models import logistic, logistic_tflite, weights_for


def linear(weights):
    return lambda rows: rows @ np.asarray(weights, dtype=np.float32)


def test_occluded_rows_set_one_feature_to_its_baseline_and_skip_features_already_there():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    copies, transactions, features = occluded_rows(x, np.array([1.0, -1.0, 6.0], dtype=np.float32))
    np.testing.assert_array_equal(copies, [[1, -1, 3], [1, 2, 6], [1, 5, 6], [4, -1, 6]])
    assert transactions.tolist() == [0, 0, 1, 1] and features.tolist() == [1, 2, 0, 1]


def test_linear_model_contributions_are_weight_times_distance_to_baseline():
    x = np.array([[2.0, 1.0, 0.0, 5.0]], dtype=np.float32)
    baseline = np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32)
    scores, contributions = score_and_attribute(linear([3.0, 10.0, -2.0, 0.25]), x, baseline)
    assert scores[0] == pytest.approx(3 * 2 + 10 * 1 + 0 + 0.25 * 5)
    # c_j = w_j (x_j - b_j): 3, 0 (at its baseline), +2 (below a negative weight's baseline), 1
    np.testing.assert_allclose(contributions[0], [3.0, 0.0, 2.0, 1.0])
    assert contributions[0, 1] == 0.0  # at its baseline: exactly 0, not a rounding residue
    names = ["a", "b", "c", "d"]
    assert top_reasons(contributions, names) == [
        [
            {"feature": "a", "contribution": 3.0},
            {"feature": "c", "contribution": 2.0},
            {"feature": "d", "contribution": 1.0},
        ]
    ]


def test_only_features_that_pushed_the_score_up_are_reasons():
    contributions = np.array([[-1.0, 0.0, 0.5, -0.2], [0.0, 0.0, 0.0, 0.0], [0.1, 0.4, 0.3, 0.2]], dtype=np.float32)
    reasons = top_reasons(contributions, ["a", "b", "c", "d"])
    assert reasons[0] == [{"feature": "c", "contribution": 0.5}]
    assert reasons[1] == []
    assert [r["feature"] for r in reasons[2]] == ["b", "c", "d"]  # largest first, at most three


def test_json_text_is_the_same_reasons():
    rng = np.random.default_rng(3)
    contributions = rng.normal(size=(500, len(FEATURE_NAMES))).astype(np.float32)
    as_text = [json.loads(t) for t in reasons_json(contributions, FEATURE_NAMES)]
    assert as_text == top_reasons(contributions, FEATURE_NAMES)
    assert all(1 <= len(r) <= 3 for r in as_text)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(4)
    x = rng.random((1000, 6), dtype=np.float32)
    weights = rng.normal(size=6)
    whole = score_and_attribute(linear(weights), x, np.zeros(6, dtype=np.float32), chunk=5000)
    pieces = score_and_attribute(linear(weights), x, np.zeros(6, dtype=np.float32), chunk=7)
    np.testing.assert_allclose(whole[0], pieces[0], rtol=1e-6)
    np.testing.assert_allclose(whole[1], pieces[1], rtol=1e-5, atol=1e-6)


def test_baseline_must_match_the_features():
    with pytest.raises(ValueError, match="baseline"):
        score_and_attribute(linear([1.0, 2.0]), np.ones((1, 2)), np.zeros(3))


def test_tflite_model_reasons_follow_its_weights():
    weights = weights_for(amt_log=1.5, card_count_1h=0.8, merchant_fraud_rate_7d=4.0, is_night=-2.0)
    bias = -6.0
    scorer = TFLiteScorer(logistic_tflite(weights, bias)[0])
    baseline = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    x = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    x[0, [column["amt_log"], column["card_count_1h"], column["merchant_fraud_rate_7d"], column["hour"]]] = [
        6.0,
        3.0,
        0.5,
        23.0,
    ]
    x[1, column["is_night"]] = 1.0  # only lowers the score
    x[2, column["amt_log"]] = 2.0
    scores, contributions = score_and_attribute(scorer.predict, x, baseline)
    np.testing.assert_allclose(scores, logistic(x, weights, bias), atol=1e-5)  # LiteRT = the model's formula
    reasons = top_reasons(contributions, FEATURE_NAMES)
    assert [r["feature"] for r in reasons[0]] == ["amt_log", "card_count_1h", "merchant_fraud_rate_7d"]
    expected = (
        logistic(x[:1], weights, bias)[0]
        - logistic(np.where(np.arange(len(FEATURE_NAMES)) == column["amt_log"], 0, x[:1]), weights, bias)[0]
    )
    assert reasons[0][0]["contribution"] == pytest.approx(expected, abs=1e-5)
    assert reasons[1] == []  # a feature with a negative weight never explains a score up
    assert [r["feature"] for r in reasons[2]] == ["amt_log"]
