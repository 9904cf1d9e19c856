"""The top reasons from the linear first layer (`fraud.model.litert.Network`: each occluded copy's first-layer
pre-activation from its transaction's, the rest of the network on the copies only) against today's full occlusion
through the interpreter, on the training code's network trained on simulated transactions."""

import json

import numpy as np
import pytest

from bench.training import simulated_data
from fraud.features.catalog import FEATURE_NAMES
from fraud.model.attribution import TOP_REASONS, attribute, reasons_json, score_and_attribute
from fraud.model.litert import Network, TFLiteScorer, UnsupportedGraph
from fraud.model.network import TrainingConfig, export, fit_network
from tests.helpers.litert_models import logistic_tflite, weights_for

TOLERANCE = 2e-6  # a few float32 steps of a score: what two orders of the same float32 sums may differ by


@pytest.fixture(scope="module")
def trained():
    """The exported network (log transform, normalisation, 3 members of dense + batch norm + ReLU) after a short
    fit, and feature vectors of transactions it has not seen."""
    data = simulated_data(customers=400, days=8, fraud_rate=0.01, seed=5)
    model, _ = fit_network(data, TrainingConfig(epochs=3, min_steps_per_epoch=5, max_steps_per_epoch=5))
    unseen = simulated_data(customers=200, days=3, fraud_rate=0.01, seed=6).x
    return TFLiteScorer(export(model)["model.tflite"]), unseen


def test_linear_first_layer_gives_the_same_reasons_as_full_occlusion(trained):
    scorer, x = trained
    assert scorer.network is not None  # the exported graph is read, not left to the interpreter
    baseline = np.median(x, axis=0).astype(np.float32)
    scores, full = score_and_attribute(scorer.predict, x, baseline)
    linear = attribute(scorer.predict, x, baseline, scorer.network, chunk=300)
    assert len(x) > 1_000 and np.abs(full).max() > 0.01  # contributions worth comparing
    np.testing.assert_allclose(linear, full, rtol=0, atol=TOLERANCE)
    assert (linear[x == baseline] == 0).all()  # no copy for a feature at its baseline: it contributes nothing

    # the stored reasons: the same features in the same order and the same values, to float tolerance; a row may
    # differ in order only where its contributions tie within that tolerance
    stored_full = [json.loads(t) for t in reasons_json(full, FEATURE_NAMES)]
    stored_linear = [json.loads(t) for t in reasons_json(linear, FEATURE_NAMES)]
    differing = 0
    for row, (old, new) in enumerate(zip(stored_full, stored_linear, strict=True)):
        for a, b in zip(old, new, strict=False):
            assert b["contribution"] == pytest.approx(a["contribution"], abs=TOLERANCE)
        if [r["feature"] for r in old] != [r["feature"] for r in new]:
            differing += 1
            ranked = np.sort(full[row])[::-1][: TOP_REASONS + 1]
            assert np.min(np.abs(np.diff(ranked))) <= 2 * TOLERANCE or np.min(np.abs(ranked)) <= TOLERANCE
    assert differing <= len(x) // 1_000  # near-ties are rare
    assert sum(len(r) for r in stored_full) > len(x)  # most rows have reasons


def test_the_network_gives_the_interpreter_scores(trained):
    scorer, x = trained
    none = np.zeros(0, dtype=np.intp)
    own, copies = scorer.network.occluded(x, x[0], none, none)
    np.testing.assert_allclose(own, scorer.predict(x), rtol=0, atol=1e-6)
    assert len(copies) == 0


def test_a_one_layer_model_is_read_too_and_an_unknown_graph_is_refused():
    weights = weights_for(amt_log=1.5, card_count_1h=0.8, is_night=-2.0)
    scorer = TFLiteScorer(logistic_tflite(weights, -3.0)[0])
    x = np.random.default_rng(1).random((50, len(FEATURE_NAMES))).astype(np.float32) * 3
    baseline = np.zeros(len(FEATURE_NAMES), dtype=np.float32)
    assert scorer.network is not None
    np.testing.assert_allclose(
        attribute(scorer.predict, x, baseline, scorer.network),
        score_and_attribute(scorer.predict, x, baseline)[1],
        rtol=0,
        atol=TOLERANCE,
    )
    with pytest.raises(UnsupportedGraph):
        Network(b"\x00" * 64)
