"""Scorer Lambda: loads the promoted model (`LATEST`) from the models bucket and scores processed
transactions from the database with LiteRT. Imports no TensorFlow.

Event: {"batch_id": "..."} scores one batch; {} scores every transaction the promoted model has not scored.
"""
from __future__ import annotations

from dataclasses import dataclass

from fraud import registry
from fraud.db.engine import get_engine
from fraud.db.queries import features_matrix, unscored_features, write_scores
from fraud.features import FEATURE_NAMES
from fraud.scoring import TFLiteScorer, flag
from fraud.settings import Settings
from fraud.storage import object_store

CHUNK_ROWS = 50_000


@dataclass
class LoadedModel:
    version: str
    metadata: dict
    scorer: TFLiteScorer


_cache: dict[str, LoadedModel] = {}  # survives warm invocations


def load_latest(settings: Settings) -> LoadedModel:
    store = object_store(settings, settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        raise RuntimeError(f"no promoted model: {settings.models_bucket}/{settings.model_name}/LATEST is missing")
    if version not in _cache:  # re-checked on every invocation, loaded once per version
        metadata = registry.load_metadata(store, settings.model_name, version)
        if tuple(metadata["feature_names"]) != FEATURE_NAMES:
            raise RuntimeError(f"model {version} was trained on other features than this scorer computes")
        _cache.clear()
        _cache[version] = LoadedModel(version, metadata, TFLiteScorer(registry.load_tflite(store, settings.model_name, version)))
    return _cache[version]


def handler(event: dict, context=None, settings: Settings | None = None) -> dict:
    settings = settings or Settings()
    model = load_latest(settings)
    engine = get_engine(settings)
    threshold = float(model.metadata["threshold"])
    pending = unscored_features(engine, model.metadata["feature_version"], model.version, event.get("batch_id"))
    written = flagged = 0
    for start in range(0, len(pending), CHUNK_ROWS):
        chunk = pending.iloc[start:start + CHUNK_ROWS]
        scored = flag(chunk["trans_num"].tolist(), model.scorer.predict(features_matrix(chunk)), threshold)
        written += write_scores(engine, model.version, threshold, scored)
        flagged += sum(s.flagged for s in scored)
    return {"model_version": model.version, "threshold": threshold, "scored": written, "flagged": flagged,
            "pending": int(len(pending))}
