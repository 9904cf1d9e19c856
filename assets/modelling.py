"""The model asset and its blocking quality gate; the flow itself is in fraud/model/promotion.py.

`fraud_model` trains (or re-uses the version trained on exactly this data), publishes the version to the models
bucket and applies the quality gate; only a model that passes is promoted to LATEST, so LATEST never moves to a
worse model, whether or not the check runs. `model_quality_gate` re-runs the gate independently from the registry
and the database, checks that LATEST agrees with it, and, being blocking, keeps downstream assets (scoring, report,
alerts) from running after a refused model. Every materialization carries the precision-recall plot, a re-used
version's too.
"""

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

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.db.labels import people_verdicts
from fraud.model import promotion
from fraud.model.evaluation import GateDecision, metrics_table
from fraud.model.network import NAME

NO_MODEL = "none"
PEOPLE_VERDICTS = "people_verdicts"  # metadata: the verdicts people had given when it trained (the labels sensor)


def _gate_table(decision: GateDecision) -> MetadataValue:
    """The candidate against the promoted model on the candidate's test window, and the floor."""
    return meta.table(
        ["", "version", "average precision"],
        [
            ["candidate", decision.candidate_version, decision.candidate_average_precision],
            ["promoted before", decision.latest_version or NO_MODEL, decision.latest_average_precision],
            ["floor", "", decision.floor],
        ],
    )


def _reasons(reasons: list[str] | tuple[str, ...], passed_note: str) -> MetadataValue:
    return MetadataValue.md("\n".join(f"- {meta.escape(r)}" for r in reasons) if reasons else passed_note)


def _windows_table(metadata: dict) -> MetadataValue:
    """Train -> label delay -> test, with the rows and frauds of the train and test windows."""
    windows, train, test = metadata["protocol"], metadata["training_window"], metadata["test_window"]

    def day(stamp: str) -> str:
        return stamp[:16].replace("T", " ")

    return meta.table(
        ["window", "from", "until", "rows", "frauds"],
        [
            ["train", day(windows["train_start"]), day(windows["train_end"]), train["rows"], train["frauds"]],
            ["label delay", day(windows["train_end"]), day(windows["test_start"]), None, None],
            ["test", day(windows["test_start"]), day(windows["test_end"]), test["rows"], test["frauds"]],
        ],
    )


@asset(
    group_name="modelling",
    deps=["processed_transactions"],
    kinds={"tensorflow", "s3"},
    owners=["team:fraud-ml"],
    code_version=CODE_VERSIONS["fraud_model"],
    description="Keras MLP trained on labelled history under the temporal protocol (train → label delay → test), "
    "compared with logistic regression, a random forest and gradient-boosted trees on the same split, exported to "
    "`.keras` + `.tflite` + `metadata.json` in the models bucket; promoted to `LATEST` only when the quality "
    "gate passes. Unchanged data re-uses the version.",
)
def fraud_model(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    verdicts = people_verdicts(fraud.engine())  # before reading the labels: the labels sensor counts from here
    outcome = promotion.retrain(
        fraud.settings(), fraud.engine(), on_epoch=lambda epoch, logs: context.log.debug(f"epoch {epoch}: {logs}")
    )
    if outcome.reused:
        context.log.info(f"model {outcome.version} already trained on exactly this data; re-using it")
    if not outcome.promoted:
        reasons = "; ".join(outcome.decision.reasons)
        context.log.warning(f"model {outcome.version} not promoted; LATEST stays {outcome.latest}: {reasons}")
    metadata = outcome.metadata
    protocol = metadata["protocol"]
    comparison = {NAME: metadata["metrics"], **metadata["baselines"]}
    return MaterializeResult(
        metadata={
            "version": outcome.version,
            PEOPLE_VERDICTS: verdicts,
            "reused": outcome.reused,
            "promoted": outcome.promoted,
            "latest_version": outcome.latest or NO_MODEL,
            "previous_latest": outcome.previous_latest or NO_MODEL,  # what the gate compared with
            "gate": _gate_table(outcome.decision),
            "gate_reasons": _reasons(outcome.decision.reasons, "passes: promoted"),
            "threshold": meta.number(metadata["threshold"]),
            "training_rows": metadata["training_window"]["rows"],
            "training_frauds": metadata["training_window"]["frauds"],
            **{k: meta.number(v) for k, v in metadata["metrics"].items() if v is not None},
            "metrics_table": MetadataValue.md(metrics_table(comparison, protocol.get("precision_k", 100))),
            "windows": _windows_table(metadata),
            "precision_recall_curve": meta.image(outcome.precision_recall_png, "precision-recall on the test window"),
            "artifacts": MetadataValue.path(promotion.Models.of(fraud.settings()).uri(outcome.version)),
        }
    )


def _recorded(recorded: dict) -> tuple[str, str | None]:
    """(candidate, LATEST when it was gated) from fraud_model's latest materialization."""
    if "previous_latest" in recorded:
        previous = recorded["previous_latest"].value
        return recorded["version"].value, None if previous == NO_MODEL else previous
    gate = recorded["gate"].value  # recorded before the gate became a table: the decision as JSON
    return gate["candidate_version"], gate["latest_version"]


@asset_check(
    asset=fraud_model,
    blocking=True,
    description="Quality gate: the model's average precision on its test window reaches "
    "`FRAUD_MIN_AVERAGE_PRECISION` and is not below the previously promoted model's on the same "
    "window (both scored with LiteRT); `LATEST` points to the model only if so.",
)
def model_quality_gate(context: AssetCheckExecutionContext, fraud: FraudPlatform) -> AssetCheckResult:
    event = context.instance.get_latest_materialization_event(fraud_model.key)
    version, previous = _recorded(event.asset_materialization.metadata)
    audit = promotion.audit(fraud.settings(), fraud.engine(), version, previous)
    decision = audit.decision
    return AssetCheckResult(
        passed=audit.passed,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(audit.reasons) or f"{version} passes the gate",
        metadata={
            "passed": decision.passed,
            "candidate_version": decision.candidate_version,
            "latest_version": decision.latest_version or NO_MODEL,
            "floor": meta.number(decision.floor),
            **{
                name: meta.number(value)
                for name, value in (
                    ("candidate_average_precision", decision.candidate_average_precision),
                    ("latest_average_precision", decision.latest_average_precision),
                )
                if value is not None
            },
            "gate": _gate_table(decision),
            "reasons": _reasons(audit.reasons, "none: the gate passes and `LATEST` agrees"),
            "latest": audit.latest or NO_MODEL,
        },
    )
