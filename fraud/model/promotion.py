"""Train, gate, promote: the flow behind the `fraud_model` asset and the audit behind its `model_quality_gate` check.

A retraining trains the model (or re-uses the version trained on exactly this data), publishes the version to the
models bucket and applies the quality gate (fraud/model/evaluation.py: average precision at least the floor, and not
below the promoted model's on the same test window, both scored with LiteRT as production does). Only a model that
passes is promoted to LATEST, so LATEST never moves to a worse model. The audit re-runs the gate from the registry
and the database and checks that LATEST agrees with it.

The precision-recall comparison of the network and its baselines is drawn when the version is trained (the
baselines exist only then) and kept beside the version, so a re-used version shows it again.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from fraud.core.settings import Settings
from fraud.core.storage import ObjectStore, object_store
from fraud.db.queries import labelled_features
from fraud.features.catalog import FEATURE_VERSION
from fraud.model import plots, registry
from fraud.model.evaluation import GateDecision, LabelledData, Protocol, Windows, gate_on_window, split
from fraud.model.litert import TFLiteScorer
from fraud.model.network import NAME, TrainedModel, TrainingConfig, model_version, train

PLOT_FILE = "precision_recall.png"  # beside the version's artifacts; written before metadata.json


def protocol_for(settings: Settings) -> Protocol:
    # the delay window spans the label delay: its labels are not known when the test window starts
    return Protocol(
        delay_days=math.ceil(settings.label_delay_days),
        test_days=settings.test_days,
        alert_budget_per_day=settings.alert_budget_per_day,
    )


def labelled_data(engine: Engine) -> LabelledData:
    return LabelledData.from_frame(labelled_features(engine, FEATURE_VERSION))


@dataclass(frozen=True)
class Models:
    """The registry of one model: the models bucket and the model's name."""

    store: ObjectStore
    name: str

    @classmethod
    def of(cls, settings: Settings) -> Models:
        return cls(object_store(settings, settings.models_bucket), settings.model_name)

    def has(self, version: str) -> bool:
        return self.store.exists(f"{self.name}/{version}/metadata.json")

    def metadata(self, version: str) -> dict:
        return registry.load_metadata(self.store, self.name, version)

    def scorer(self, version: str):
        return TFLiteScorer(registry.load_tflite(self.store, self.name, version)).predict

    def latest(self) -> str | None:
        return registry.latest_version(self.store, self.name)

    def uri(self, version: str) -> str:
        return self.store.uri(f"{self.name}/{version}/")


def gate(models: Models, data: LabelledData, version: str, latest: str | None, floor: float) -> GateDecision:
    """The candidate and the promoted model, both scored with LiteRT on the candidate's test window."""
    candidate = models.metadata(version)
    latest_scorer = None
    if latest is not None and latest != version:
        # a promoted model that reads another feature set cannot score these rows: the floor alone decides
        if models.metadata(latest).get("feature_names") == candidate["feature_names"]:
            latest_scorer = models.scorer(latest)
    windows = Windows.from_dict(candidate["protocol"])
    return gate_on_window(data, windows, floor, version, models.scorer(version), latest, latest_scorer)


def _plot_of_training(trained: TrainedModel) -> str:
    curves = {name: (trained.test.y, result.test_scores) for name, result in trained.results.items()}
    return plots.precision_recall_by_model(curves)


def _plot_of_version(models: Models, data: LabelledData, version: str, metadata: dict) -> str:
    """The plot kept beside the version; for a version trained before plots were kept, the network's own curve on
    its test window (LiteRT)."""
    key = f"{models.name}/{version}/{PLOT_FILE}"
    if models.store.exists(key):
        return base64.b64encode(models.store.get_bytes(key)).decode()
    test = split(data, Windows.from_dict(metadata["protocol"])).test
    return plots.precision_recall_by_model({NAME: (test.y, models.scorer(version)(test.x))})


@dataclass(frozen=True)
class Retraining:
    """What a retraining did: the version, whether it was re-used, the gate and where LATEST points now."""

    version: str
    reused: bool
    metadata: dict  # the version's metadata.json
    decision: GateDecision
    previous_latest: str | None
    latest: str | None
    precision_recall_png: str  # base64

    @property
    def promoted(self) -> bool:
        """The version passed the gate, so LATEST points to it (whether it moved now or already did)."""
        return self.decision.passed


def retrain(
    settings: Settings,
    engine: Engine,
    on_epoch: Callable[[int, dict], None] | None = None,
    models: Models | None = None,
) -> Retraining:
    models = models or Models.of(settings)
    data = labelled_data(engine)
    protocol, config = protocol_for(settings), TrainingConfig(epochs=settings.train_epochs)
    version = model_version(data, protocol, config)
    reused = models.has(version)
    if reused:
        metadata = models.metadata(version)
        png = _plot_of_version(models, data, version, metadata)
    else:
        trained = train(data, protocol, config, on_epoch=on_epoch)
        png = _plot_of_training(trained)
        models.store.put_bytes(f"{models.name}/{version}/{PLOT_FILE}", base64.b64decode(png), "image/png")
        registry.publish(models.store, models.name, version, trained.files)
        metadata = trained.metadata
    previous = models.latest()
    decision = gate(models, data, version, previous, settings.min_average_precision)
    if decision.passed and previous != version:
        registry.promote(models.store, models.name, version)
    return Retraining(version, reused, metadata, decision, previous, models.latest(), png)


@dataclass(frozen=True)
class GateAudit:
    """The gate re-run for a recorded retraining, and whether LATEST agrees with it."""

    decision: GateDecision
    latest: str | None
    expected: str | None

    @property
    def reasons(self) -> list[str]:
        mismatch = [] if self.latest == self.expected else [f"LATEST is {self.latest}, expected {self.expected}"]
        return [*self.decision.reasons, *mismatch]

    @property
    def passed(self) -> bool:
        return self.decision.passed and self.latest == self.expected


def audit(settings: Settings, engine: Engine, version: str, previous: str | None) -> GateAudit:
    """`version` was gated against `previous` (LATEST then): LATEST must now be `version` if it passes, else still
    `previous`."""
    models = Models.of(settings)
    decision = gate(models, labelled_data(engine), version, previous, settings.min_average_precision)
    return GateAudit(decision, models.latest(), version if decision.passed else previous)
