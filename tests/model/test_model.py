"""The neural network on simulated data: it beats a random scorer by far, is reported beside the baselines,
carries the metadata the scorer and the report read, and its `.tflite` export matches Keras within 1e-5."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench.training import simulated_data
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model.baselines import BASELINES
from fraud.model.evaluation import Protocol
from fraud.model.network import NAME, TrainingConfig, model_version, train


@pytest.fixture(scope="module")
def data():
    # 1,500 cards over 12 days, ~1% fraud: about 50,000 transactions with the pipeline's features
    return simulated_data(customers=1_500, days=12, fraud_rate=0.008, seed=3)


@pytest.fixture(scope="module")
def trained(data):
    return train(data, Protocol(delay_days=2, test_days=3, alert_budget_per_day=40), TrainingConfig(epochs=15))


def test_network_beats_random_by_far_and_is_reported_beside_the_baselines(trained):
    nn, baselines = trained.metadata["metrics"], trained.metadata["baselines"]
    assert set(baselines) == {"logistic_regression", "gradient_boosting", "random_forest", "random"}
    assert set(BASELINES) == {"logistic_regression", "gradient_boosting", "random_forest"}
    random_ap = baselines["random"]["average_precision"]
    assert baselines["random_forest"]["average_precision"] > 8 * random_ap  # a baseline worth the name
    assert nn["test_frauds"] >= 50 and random_ap < 0.05  # about the fraud rate
    assert nn["average_precision"] > 0.4 and nn["average_precision"] > 8 * random_ap
    assert nn["roc_auc"] > 0.9 > baselines["random"]["roc_auc"]
    # card precision@100 is capped by the fraud cards a day (about 15 in this world): 5x random is far
    assert nn["card_precision_at_100"] > 5 * baselines["random"]["card_precision_at_100"]
    for name, values in baselines.items():  # the same test rows for every model
        assert values["test_rows"] == nn["test_rows"] and values["test_frauds"] == nn["test_frauds"], name
    print(
        "\n"
        + "\n".join(
            f"{n:20} AUC {m['roc_auc']:.4f} AP {m['average_precision']:.4f} CP@100 {m['card_precision_at_100']:.4f}"
            for n, m in {NAME: nn, **baselines}.items()
        )
    )


def test_metadata_has_what_scorer_and_report_read(trained, data):
    metadata = json.loads(trained.files["metadata.json"])
    assert metadata == trained.metadata
    assert metadata["feature_names"] == list(FEATURE_NAMES) and metadata["feature_version"] == FEATURE_VERSION
    assert all(isinstance(v, (int, float)) for v in metadata["metrics"].values())  # a flat dict of numbers
    assert metadata["threshold"] == trained.results[NAME].threshold and 0 < metadata["threshold"] < 1
    assert metadata["data_fingerprint"] == data.fingerprint()
    window = metadata["protocol"]
    assert window["train_end"] < window["test_start"] < window["test_end"] and window["delay_days"] == 2
    assert metadata["training_window"]["rows"] > 10_000 and metadata["test_window"]["excluded_known_compromised"] > 0
    # the threshold keeps the network near the alert budget on the test days too
    assert 10 < metadata["metrics"]["alerts_per_day"] < 120
    assert trained.version == model_version(
        data, Protocol(delay_days=2, test_days=3, alert_budget_per_day=40), TrainingConfig(epochs=15)
    )


def test_litert_matches_keras_on_ten_thousand_rows(trained, data):
    import tensorflow as tf

    from fraud.model.litert import TFLiteScorer

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(trained.files["model.keras"])
        keras_model = tf.keras.models.load_model(path)
    rows = data.x[-10_000:]
    keras_scores = keras_model.predict(rows, verbose=0).reshape(-1)
    litert_scores = TFLiteScorer(trained.files["model.tflite"]).predict(rows)
    assert len(rows) == 10_000 and np.abs(litert_scores - keras_scores).max() <= 1e-5
    assert keras_scores.std() > 0.01  # a model that says something, not a constant


def test_too_little_fraud_to_train_is_a_clear_error(data):
    no_fraud = data.where(~data.y)
    with pytest.raises(ValueError, match="not enough labelled fraud"):
        train(no_fraud, Protocol(delay_days=2, test_days=3))
