"""The fraud model: a Keras MLP trained on labelled history with an honest temporal split, exported to
`.keras` and `.tflite`. TensorFlow is imported inside the functions that need it, so scoring never loads it."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud import metrics
from fraud.db.queries import features_matrix
from fraud.features import FEATURE_NAMES, FEATURE_VERSION

# TensorFlow's C++ INFO chatter drowns the progress output; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 42
HIDDEN_UNITS = (32, 16)


@dataclass(frozen=True)
class TrainingConfig:
    test_days: int = 3
    label_delay_days: int = 1
    alert_budget_per_day: int = 40
    epochs: int = 30
    batch_size: int = 256
    precision_k: int = 100

    def fingerprint(self) -> str:
        return json.dumps({**self.__dict__, "hidden": HIDDEN_UNITS, "seed": SEED, "features": FEATURE_VERSION}, sort_keys=True)


@dataclass(frozen=True)
class TemporalSplit:
    train: pd.DataFrame
    test: pd.DataFrame
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    excluded_known_compromised: int


@dataclass
class TrainedModel:
    version: str
    metadata: dict
    files: dict[str, bytes] = field(repr=False)
    test_scores: pd.DataFrame = field(repr=False)


def temporal_split(frame: pd.DataFrame, config: TrainingConfig) -> TemporalSplit:
    """train window -> label-delay window -> test window (the last `test_days` days). Only labels known by
    the end of the train window are used for training; cards already known compromised before the test
    window are left out of the test set."""
    times = pd.to_datetime(frame["event_time"], utc=True)
    test_end = times.max().ceil("D")
    test_start = test_end - timedelta(days=config.test_days)
    train_end = test_start - timedelta(days=config.label_delay_days)
    labelled_at = pd.to_datetime(frame["labelled_at"], utc=True)
    train = frame[(times < train_end) & (labelled_at < train_end)]
    compromised = set(frame.loc[frame["is_fraud"] & (labelled_at < test_start), "card_token"])
    in_test = times >= test_start
    test = frame[in_test & ~frame["card_token"].isin(compromised)]
    return TemporalSplit(train, test, train_end, test_start, test_end,
                         excluded_known_compromised=int((in_test & frame["card_token"].isin(compromised)).sum()))


def data_fingerprint(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame[["trans_num", "is_fraud"]], index=False).values.tobytes())
    digest.update(features_matrix(frame).tobytes())
    return digest.hexdigest()


def model_version(frame: pd.DataFrame, config: TrainingConfig) -> str:
    """Same data and config give the same version, so re-training unchanged data is a no-op."""
    return "m-" + hashlib.sha256((data_fingerprint(frame) + config.fingerprint()).encode()).hexdigest()[:12]


def _build(train_x: np.ndarray):
    import tensorflow as tf

    keras = tf.keras
    normalizer = keras.layers.Normalization(name="normalize")
    normalizer.adapt(train_x)
    inputs = keras.Input(shape=(train_x.shape[1],), name="features")
    x = normalizer(inputs)
    for units in HIDDEN_UNITS:
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(0.1, seed=SEED)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="fraud_probability")(x)
    model = keras.Model(inputs, outputs, name="fraud_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(curve="PR", name="ap")])
    return model


def evaluate(test: pd.DataFrame, scores: np.ndarray, threshold: float, config: TrainingConfig) -> dict[str, float | int | None]:
    y = test["is_fraud"].to_numpy(dtype=bool)
    flagged = scores >= threshold
    precision, recall = metrics.precision_recall_at(y, flagged)
    per_day = pd.DataFrame({"day": pd.to_datetime(test["event_time"], utc=True).dt.date, "card": test["card_token"],
                            "score": scores, "is_fraud": y})
    values = {
        "roc_auc": metrics.roc_auc(y, scores),
        "average_precision": metrics.average_precision(y, scores),
        f"card_precision_at_{config.precision_k}": metrics.card_precision_at_k(per_day, config.precision_k),
        "precision_at_budget": precision,
        "recall_at_budget": recall,
        "test_rows": int(len(test)),
        "test_frauds": int(y.sum()),
    }
    # undefined metrics (e.g. no fraud in the test window) are null, not NaN, so metadata stays valid JSON
    return {k: (None if isinstance(v, float) and np.isnan(v) else (v if isinstance(v, int) else float(v))) for k, v in values.items()}


def train(frame: pd.DataFrame, config: TrainingConfig, on_epoch=None) -> TrainedModel:
    import tensorflow as tf

    split = temporal_split(frame, config)
    if split.train["is_fraud"].sum() < 2 or split.train["is_fraud"].all():
        raise ValueError(f"not enough labelled fraud before {split.train_end:%Y-%m-%d} to train "
                         f"({int(split.train['is_fraud'].sum())} frauds in {len(split.train)} rows)")
    tf.keras.utils.set_random_seed(SEED)
    x = features_matrix(split.train)
    y = split.train["is_fraud"].to_numpy(dtype=np.float32)
    cut = int(len(x) * 0.8)  # validation = the latest 20% of the train window (time-ordered)
    positives = max(1.0, y[:cut].sum())
    class_weight = {0: 1.0, 1: float(min(100.0, (cut - positives) / positives))}
    model = _build(x[:cut])
    callbacks = [tf.keras.callbacks.EarlyStopping(monitor="val_ap", mode="max", patience=5, restore_best_weights=True)]
    if on_epoch is not None:
        callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch(epoch, logs)))
    history = model.fit(x[:cut], y[:cut], validation_data=(x[cut:], y[cut:]), epochs=config.epochs,
                        batch_size=config.batch_size, class_weight=class_weight, callbacks=callbacks, verbose=0, shuffle=True)

    test_x = features_matrix(split.test)
    test_scores = model.predict(test_x, verbose=0).reshape(-1) if len(test_x) else np.zeros(0)
    threshold = metrics.threshold_for_budget(test_scores, config.test_days, config.alert_budget_per_day)
    version = model_version(frame, config)
    metadata = {
        "name": "fraud-mlp",
        "version": version,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "normalization": "inside the model (keras Normalization layer adapted on the train window)",
        "threshold": threshold,
        "alert_budget_per_day": config.alert_budget_per_day,
        "training_window": {"end": split.train_end.isoformat(), "rows": int(len(split.train)),
                            "frauds": int(split.train["is_fraud"].sum())},
        "test_window": {"start": split.test_start.isoformat(), "end": split.test_end.isoformat(),
                        "excluded_known_compromised": split.excluded_known_compromised},
        "metrics": evaluate(split.test, test_scores, threshold, config),
        "epochs_run": len(history.history["loss"]),
        "data_fingerprint": data_fingerprint(frame),
        "config": json.loads(config.fingerprint()),
    }
    files = export(model)
    files["metadata.json"] = json.dumps(metadata, indent=2, default=float).encode()
    scores = pd.DataFrame({"trans_num": split.test["trans_num"].to_numpy(), "score": test_scores,
                           "is_fraud": split.test["is_fraud"].to_numpy(dtype=bool)})
    return TrainedModel(version=version, metadata=metadata, files=files, test_scores=scores)


def export(model) -> dict[str, bytes]:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        keras_path = Path(folder) / "model.keras"
        model.save(keras_path)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        return {"model.keras": keras_path.read_bytes(), "model.tflite": converter.convert()}
