"""Non-blocking drift checks on the scoring asset (issue 18): has the data the promoted model scores moved away from
its training window? `feature_drift` and `score_drift` compute the population stability index (fraud/model/drift.py) of
each feature and of the score, per day since the training window (at most the last 7), against a repeatable sample
of that window. A PSI above drift.SIGNIFICANT_ABOVE on a day with enough rows fails the check with severity WARN:
the scores still flow (nothing downstream waits on it), the UI shows the warning, the table and the worst features.
No promoted model, or no day since its training window yet, is nothing to check: the check passes with a note."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.scoring import fraud_flags
from fraud.model import drift, registry
from fraud.outreach.report import load_drift

FEATURE_DRIFT, SCORE_DRIFT = "feature_drift", "score_drift"


PER_DAY = {"day": "string", "psi": "float", "level": "string", "rows": "int"}
WORST = {"feature": "string", "psi": "float", "day": "string", "level": "string"}
ABOVE = {"feature": "string", "day": "string", "psi": "float"}


def _window(result: drift.DriftResult) -> dict:
    if not result.window:
        return {}
    start, end = result.window
    return {"training_window": f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"}


def _passing(name: str, note: str, extra: dict) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        asset_key=fraud_flags.key,
        passed=True,
        severity=AssetCheckSeverity.WARN,
        description=note,
        metadata={"note": note, **extra},
    )


def _per_day(frame: pd.DataFrame) -> list[dict]:
    return [
        {
            "day": str(r.day),
            "psi": None if r.psi != r.psi else round(float(r.psi), 4),
            "level": r.level,
            "rows": int(r.rows),
        }
        for r in frame.sort_values("day").itertuples()
    ]


def _judge(name: str, frame: pd.DataFrame, extra: dict) -> AssetCheckResult:
    judged = drift.judged(frame)
    if judged.empty:
        note = (
            "nothing to compare: no values on either side (the score: the model has not scored the training "
            "window or the days since)"
            if (frame["level"] == drift.NO_DATA).all()
            else f"fewer than {drift.MIN_ROWS} rows in the training window's sample or on each day since: shown, "
            "not judged"
        )
        return _passing(name, note, {**extra, "drift_table": MetadataValue.md(drift.markdown(frame))})
    above = drift.significant(frame)
    biggest = drift.max_psi(frame)
    features = list(dict.fromkeys(above.sort_values("psi", ascending=False)["feature"]))  # worst first
    if name == SCORE_DRIFT:
        description = (
            f"the score's PSI is above {drift.SIGNIFICANT_ABOVE} on {above['day'].nunique()} of "
            f"{frame['day'].nunique()} days"
            if len(above)
            else f"the score's PSI stays at or below {drift.SIGNIFICANT_ABOVE} (max {biggest:.3f})"
        )
    else:
        description = (
            f"{len(features)} of {frame['feature'].nunique()} features above PSI {drift.SIGNIFICANT_ABOVE} on "
            f"at least one day: {', '.join(features[:5])}{' …' if len(features) > 5 else ''}"
            if len(above)
            else f"every feature at or below PSI {drift.SIGNIFICANT_ABOVE} (max {biggest:.3f})"
        )
    return AssetCheckResult(
        check_name=name,
        asset_key=fraud_flags.key,
        passed=above.empty,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata={
            **extra,
            "drift_table": MetadataValue.md(drift.markdown(frame)),
            "max_psi": meta.number(biggest),
            **(
                {"psi_per_day": meta.records(_per_day(frame), PER_DAY)}
                if name == SCORE_DRIFT
                else {"worst_features": meta.records(drift.worst(frame, 5), WORST)}
            ),
            "above_threshold": meta.records(
                [{"feature": r.feature, "day": str(r.day), "psi": round(float(r.psi), 4)} for r in above.itertuples()],
                ABOVE,
            ),
            "threshold": MetadataValue.float(drift.SIGNIFICANT_ABOVE),
            "moderate_from": MetadataValue.float(drift.STABLE_BELOW),
            "min_rows_per_day": drift.MIN_ROWS,
            "days": ", ".join(str(d) for d in sorted(frame["day"].unique())),
        },
    )


def drift_results(fraud: FraudPlatform, min_rows: int = drift.MIN_ROWS) -> list[AssetCheckResult]:
    """Both checks' results from one load of the samples."""
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        note = "no promoted model yet"
        return [_passing(FEATURE_DRIFT, note, {}), _passing(SCORE_DRIFT, note, {})]
    metadata = {"version": version, **registry.load_metadata(store, settings.model_name, version)}
    result = load_drift(fraud.engine(), metadata, min_rows)
    extra = {"model_version": version, "reference_rows": result.reference_rows, **_window(result)}
    if result.note:
        return [_passing(FEATURE_DRIFT, result.note, extra), _passing(SCORE_DRIFT, result.note, extra)]
    return [_judge(FEATURE_DRIFT, result.features, extra), _judge(SCORE_DRIFT, result.score, extra)]


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            FEATURE_DRIFT,
            asset=fraud_flags,
            blocking=False,
            description="Population stability index of each model feature, per day since the promoted "
            f"model's training window (last {drift.RECENT_DAYS} days at most), against a "
            f"sample of that window; warns when one is above {drift.SIGNIFICANT_ABOVE} "
            "(significant shift).",
        ),
        AssetCheckSpec(
            SCORE_DRIFT,
            asset=fraud_flags,
            blocking=False,
            description="Population stability index of the promoted model's score, per day since its "
            f"training window (last {drift.RECENT_DAYS} days at most), against its scores of "
            f"that window; warns when above {drift.SIGNIFICANT_ABOVE} (significant shift).",
        ),
    ],
    name="drift_checks",
    description="PSI of the features and of the score since the training window (fraud/model/drift.py).",
)
def drift_checks(context: AssetCheckExecutionContext, fraud: FraudPlatform) -> Iterator[AssetCheckResult]:
    results = drift_results(fraud)
    for result in results:
        context.log.info(f"{result.check_name}: {result.description}")
    yield from results
