"""The model asset and its blocking quality gate.

`fraud_model` trains (or re-uses the version trained on exactly this data), publishes the version to the models
bucket and applies the quality gate (fraud/model/evaluation.py: average precision at least the floor, and not below the
promoted model's on the same test window). Only a model that passes is promoted to LATEST, so LATEST never moves
to a worse model, whether or not the check runs. `model_quality_gate` re-runs the gate independently from the
registry and the database, checks that LATEST agrees with it, and, being blocking, keeps downstream assets
(scoring, report, alerts) from running after a refused model.
"""

import math

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.db.queries import labelled_features
from fraud.features.catalog import FEATURE_VERSION
from fraud.model import registry
from fraud.model.evaluation import GateDecision, LabelledData, Protocol, Windows, gate_on_window, metrics_table
from fraud.model.network import NAME, TrainingConfig, model_version, train
from fraud.outreach import plots
from fraud.serving.batch import TFLiteScorer


def _protocol(settings) -> Protocol:
    # the delay window spans the chargeback delay: its labels are not known when the test window starts
    return Protocol(
        delay_days=math.ceil(settings.label_delay_days),
        test_days=settings.test_days,
        alert_budget_per_day=settings.alert_budget_per_day,
    )


def _labelled(fraud: FraudPlatform) -> LabelledData:
    return LabelledData.from_frame(labelled_features(fraud.engine(), FEATURE_VERSION))


def _gate(fraud: FraudPlatform, data: LabelledData, version: str, latest: str | None) -> GateDecision:
    """Both models scored with LiteRT (what production runs) on the candidate's test window."""
    settings = fraud.settings()
    store, name = fraud.store(settings.models_bucket), settings.model_name
    candidate = registry.load_metadata(store, name, version)
    latest_scorer = None
    if latest is not None and latest != version:
        # a promoted model that reads another feature set cannot score these rows: the floor alone decides
        if registry.load_metadata(store, name, latest).get("feature_names") == candidate["feature_names"]:
            latest_scorer = TFLiteScorer(registry.load_tflite(store, name, latest)).predict
    return gate_on_window(
        data,
        Windows.from_dict(candidate["protocol"]),
        settings.min_average_precision,
        version,
        TFLiteScorer(registry.load_tflite(store, name, version)).predict,
        latest,
        latest_scorer,
    )


@asset(
    group_name="modelling",
    deps=["processed_transactions"],
    kinds={"tensorflow", "s3"},
    owners=["team:fraud-ml"],
    code_version=CODE_VERSIONS["fraud_model"],
    description="Keras MLP trained on labelled history under the temporal protocol (train -> label delay -> test), "
    "compared with logistic regression and gradient-boosted trees on the same split, exported to "
    ".keras + .tflite + metadata.json in the models bucket; promoted to LATEST only when the quality "
    "gate passes. Unchanged data re-uses the version.",
)
def fraud_model(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    store, name = fraud.store(settings.models_bucket), settings.model_name
    data = _labelled(fraud)
    protocol, config = _protocol(settings), TrainingConfig(epochs=settings.train_epochs)
    version = model_version(data, protocol, config)
    trained = None
    if store.exists(f"{name}/{version}/metadata.json"):
        context.log.info(f"model {version} already trained on exactly this data; re-using it")
        metadata = registry.load_metadata(store, name, version)
    else:
        trained = train(
            data, protocol, config, on_epoch=lambda epoch, logs: context.log.debug(f"epoch {epoch}: {logs}")
        )
        registry.publish(store, name, version, trained.files)
        metadata = trained.metadata
    latest = registry.latest_version(store, name)
    decision = _gate(fraud, data, version, latest)
    if decision.passed and latest != version:
        registry.promote(store, name, version)
    elif not decision.passed:
        context.log.warning(f"model {version} not promoted; LATEST stays {latest}: {'; '.join(decision.reasons)}")
    comparison = {NAME: metadata["metrics"], **metadata["baselines"]}
    extra = {}
    if trained is not None:
        curves = {n: (trained.test.y, r.test_scores) for n, r in trained.results.items()}
        extra["precision_recall_curve"] = MetadataValue.md(
            f"![precision-recall on the test window](data:image/png;base64,{plots.precision_recall_by_model(curves)})"
        )
    return MaterializeResult(
        metadata={
            "version": version,
            "promoted": decision.passed,
            "latest_version": registry.latest_version(store, name) or "none",
            "gate": MetadataValue.json(decision.as_dict()),
            "threshold": metadata["threshold"],
            "training_rows": metadata["training_window"]["rows"],
            "training_frauds": metadata["training_window"]["frauds"],
            **{k: v for k, v in metadata["metrics"].items() if v is not None},
            "metrics": MetadataValue.json(metadata["metrics"]),
            "metrics_table": MetadataValue.md(metrics_table(comparison, protocol.precision_k)),
            "baseline_comparison": MetadataValue.json(metadata["baselines"]),
            "windows": MetadataValue.json(metadata["protocol"]),
            **extra,
            "artifacts": MetadataValue.path(store.uri(f"{name}/{version}/")),
        }
    )


@asset_check(
    asset=fraud_model,
    blocking=True,
    description="Quality gate: the model's average precision on its test window reaches "
    "FRAUD_MIN_AVERAGE_PRECISION and is not below the previously promoted model's on the same "
    "window (both scored with LiteRT); LATEST points to the model only if so.",
)
def model_quality_gate(context: AssetCheckExecutionContext, fraud: FraudPlatform) -> AssetCheckResult:
    event = context.instance.get_latest_materialization_event(fraud_model.key)
    recorded = event.asset_materialization.metadata["gate"].value
    version, previous = recorded["candidate_version"], recorded["latest_version"]
    decision = _gate(fraud, _labelled(fraud), version, previous)
    settings = fraud.settings()
    latest = registry.latest_version(fraud.store(settings.models_bucket), settings.model_name)
    expected = version if decision.passed else previous
    reasons = list(decision.reasons)
    if latest != expected:
        reasons.append(f"LATEST is {latest}, expected {expected}")
    return AssetCheckResult(
        passed=decision.passed and latest == expected,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(reasons) or f"{version} passes the gate",
        metadata={
            **{k: v for k, v in decision.as_dict().items() if v is not None and k != "reasons"},
            "reasons": MetadataValue.json(reasons),
            "latest": latest or "none",
        },
    )
