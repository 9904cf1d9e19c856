"""Small real models for the scorer tests: a logistic regression over the feature vector built in Keras,
converted to `.tflite` by TensorFlow's converter and published to a models bucket like training does. With
known weights, a test knows which features must come out as the top reasons."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model import registry


def weights_for(**by_feature: float) -> tuple[float, ...]:
    unknown = set(by_feature) - set(FEATURE_NAMES)
    assert not unknown, unknown
    return tuple(by_feature.get(name, 0.0) for name in FEATURE_NAMES)


@lru_cache(maxsize=8)
def logistic_tflite(weights: tuple[float, ...], bias: float) -> tuple[bytes, bytes]:
    """(model.tflite, model.keras) of sigmoid(weights . x + bias)."""
    import tempfile
    from pathlib import Path

    import tensorflow as tf

    inputs = tf.keras.Input(shape=(len(weights),), name="features")
    dense = tf.keras.layers.Dense(1, activation="sigmoid", name="fraud_probability")
    model = tf.keras.Model(inputs, dense(inputs))
    dense.set_weights([np.asarray(weights, dtype=np.float32).reshape(-1, 1), np.array([bias], dtype=np.float32)])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        keras_bytes = path.read_bytes()
    return tf.lite.TFLiteConverter.from_keras_model(model).convert(), keras_bytes


def publish_logistic(
    settings: Settings,
    version: str,
    weights: tuple[float, ...],
    bias: float,
    threshold: float,
    promote: bool = True,
    **metadata,
) -> dict:
    tflite, keras_bytes = logistic_tflite(weights, bias)
    meta = {
        "name": settings.model_name,
        "version": version,
        "threshold": threshold,
        "feature_names": list(FEATURE_NAMES),
        "feature_version": FEATURE_VERSION,
        **metadata,
    }
    store = object_store(settings, settings.models_bucket)
    registry.publish(
        store,
        settings.model_name,
        version,
        {"model.keras": keras_bytes, "model.tflite": tflite, "metadata.json": json.dumps(meta).encode()},
    )
    if promote:
        registry.promote(store, settings.model_name, version)
    return meta


def logistic(x: np.ndarray, weights: tuple[float, ...], bias: float) -> np.ndarray:
    """The same model in NumPy, for expected values."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=np.float64) @ np.asarray(weights) + bias)))
