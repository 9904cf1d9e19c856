"""A stand-in for `fraud.model.network.train` in the promotion and model-asset tests: no TensorFlow fit, a small real
LiteRT model (logistic regression on the feature vector, tests/helpers/litert_models.py) and the real protocol,
split and metrics, so the gate, the registry and the plots work on it as on a trained network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model.evaluation import LabelledData, Protocol, evaluate_scorer, random_scorer, split
from fraud.model.litert import TFLiteScorer
from fraud.model.network import NAME, TrainedModel, TrainingConfig, model_version
from tests.helpers.litert_models import logistic_tflite


def fake_trainer(weights: tuple[float, ...] | None = None, bias: float = 0.0, calls: list | None = None):
    """A `train` that builds the logistic model with these weights (default: all zero) and records its calls."""
    weights = weights or tuple(0.0 for _ in FEATURE_NAMES)

    def train(
        data: LabelledData, protocol: Protocol, config: TrainingConfig = TrainingConfig(), on_epoch=None
    ) -> TrainedModel:
        if calls is not None:
            calls.append(len(data))
        tflite, keras_bytes = logistic_tflite(weights, bias)
        windows = protocol.windows(data.rows["event_time"])
        parts = split(data, windows)
        results = {
            NAME: evaluate_scorer(NAME, TFLiteScorer(tflite).predict, parts, protocol),
            "logistic_regression": evaluate_scorer("logistic_regression", random_scorer(1), parts, protocol),
        }
        version = model_version(data, protocol, config)
        metadata = {
            "name": "fraud-mlp",
            "version": version,
            "feature_version": FEATURE_VERSION,
            "feature_names": list(FEATURE_NAMES),
            "threshold": results[NAME].threshold,
            "protocol": {**protocol.as_dict(), **windows.as_dict()},
            "training_window": {
                "start": windows.train_start.isoformat(),
                "end": windows.train_end.isoformat(),
                "rows": len(parts.train),
                "frauds": parts.train.frauds,
            },
            "test_window": {
                "start": windows.test_start.isoformat(),
                "end": windows.test_end.isoformat(),
                "rows": len(parts.test),
                "frauds": parts.test.frauds,
            },
            "metrics": results[NAME].metrics,
            "baselines": {n: {**r.metrics, "threshold": r.threshold} for n, r in results.items() if n != NAME},
        }
        files = {"model.keras": keras_bytes, "model.tflite": tflite, "metadata.json": json.dumps(metadata).encode()}
        return TrainedModel(version, metadata, files, results, parts.test)

    return train


def first_feature_weights(weight: float = 4.0) -> tuple[float, ...]:
    """A model whose score follows the first feature (which `labelled_world` makes telling)."""
    return (weight, *(0.0 for _ in FEATURE_NAMES[1:]))


def labelled_world(days: int = 8, per_day: int = 300, seed: int = 0, start: str = "2026-11-01") -> LabelledData:
    """Labelled transactions in memory: about 5% fraud, labels known a day later, the first feature high on fraud."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    event_time = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, n)), unit="s")
    is_fraud = rng.random(n) < 0.05
    x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    x[:, 0] += 2.0 * is_fraud
    rows = pd.DataFrame(
        {
            "trans_num": [f"t{seed}-{i:05d}" for i in range(n)],
            "event_time": event_time,
            "card_token": [f"card-{seed}-{i:05d}" for i in range(n)],  # one transaction a card
            "is_fraud": is_fraud,
            "labelled_at": event_time + pd.Timedelta(days=1),
        }
    )
    return LabelledData.of(rows, x)
