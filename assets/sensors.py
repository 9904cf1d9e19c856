"""Automation: sensors and schedules that keep the graph current with nobody pressing a button.

- `raw_batch_sensor`: each new raw transaction batch → one run of `process_and_score_batch` (ETL + scoring of
  that batch only), run key = batch id, so a batch is never scheduled twice.
- `labels_sensor`: enough new labels loaded since the last retraining → a run of `retrain_model`.
- `weekly_retrain`: `retrain_model` every Monday 03:00 UTC, labels or not.
- `model_promotion_sensor`: a new version in the models bucket's LATEST → `rescore_recent` (the unreviewed
  transactions of the last FRAUD_RESCORE_DAYS days).
All are on by default (DefaultSensorStatus / DefaultScheduleStatus RUNNING); the Dagster daemon (`dagster dev`)
evaluates them.
"""

from __future__ import annotations

import json

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)

from assets.resources import FraudPlatform
from fraud.core.schema import batch_id_of
from fraud.db.queries import loaded_batch_ids
from fraud.ingest.arrivals import ArrivalCursor, next_arrivals
from fraud.ingest.raw_zone import transaction_objects
from fraud.model import registry

# The daemon looks each run key up one by one before it creates a run: a few hundred per tick keeps a tick
# short; a larger backlog drains over the next ticks (the cursor keeps the rest).
MAX_RUNS_PER_TICK = 200

process_and_score_batch = define_asset_job(
    "process_and_score_batch",
    selection=AssetSelection.assets("processed_transactions", "fraud_flags"),
    # one Spark ETL at a time (the instance's tag limit, assets/instance.py): batches load in the order the
    # sensor requested them, so each batch's features see the batches before it
    tags={"fraud/engine": "spark"},
    description="The ETL and the scoring of the raw batches named in the run config (the raw-batch sensor's runs).",
)
retrain_model = define_asset_job(
    "retrain_model",
    selection=AssetSelection.assets("fraud_model"),
    description="Retrain on every label loaded so far; unchanged training data re-uses the model version.",
)
rescore_recent = define_asset_job(
    "rescore_recent",
    selection=AssetSelection.assets("fraud_flags"),
    description="Score with the promoted model the unreviewed transactions of the last days (run config).",
)


def batch_run_config(batch_id: str) -> dict:
    scope = {"config": {"batch_ids": [batch_id]}}
    return {"ops": {"processed_transactions": scope, "fraud_flags": scope}}


@sensor(
    job=process_and_score_batch,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="A run per new raw transaction batch (transactions/ in the raw bucket, local folder or S3).",
)
def raw_batch_sensor(context: SensorEvaluationContext, fraud: FraudPlatform) -> SensorResult:
    settings = fraud.settings()
    cursor = ArrivalCursor.from_json(context.cursor)
    arrived, cursor = next_arrivals(transaction_objects(fraud.store(settings.raw_bucket)), cursor, MAX_RUNS_PER_TICK)
    # batches that another run already loaded (Materialize all, a backfill) need no run of their own
    loaded = loaded_batch_ids(fraud.engine()) if arrived else set()
    requests = [
        RunRequest(
            run_key=batch_id_of(o.key),
            run_config=batch_run_config(batch_id_of(o.key)),
            tags={"fraud/batch_id": batch_id_of(o.key), "fraud/raw_key": o.key},
        )
        for o in sorted(arrived, key=lambda o: o.key)  # event-hour order within a tick: history first
        if batch_id_of(o.key) not in loaded
    ]
    if not requests:
        reason = f"{len(arrived)} new raw batches, all already loaded" if arrived else "no new raw batches"
        return SensorResult(skip_reason=SkipReason(reason), cursor=cursor.to_json())
    context.log.info(f"{len(requests)} new raw batches")
    return SensorResult(run_requests=requests, cursor=cursor.to_json())


@sensor(
    job=retrain_model,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Retrains once FRAUD_RETRAIN_MIN_NEW_LABELS labels were loaded since the last retraining.",
)
def labels_sensor(context: SensorEvaluationContext, fraud: FraudPlatform) -> SensorResult | SkipReason:
    # Labels reach the database through the ETL (processed_transactions), so the sensor watches that asset's
    # label count rather than the raw labels/ prefix: a retrain never starts before its labels are loaded.
    record = context.instance.get_latest_materialization_event(AssetKey("processed_transactions"))
    labels_loaded = (
        record.asset_materialization.metadata.get("transaction_label")
        if record and record.asset_materialization
        else None
    )
    if labels_loaded is None:
        return SkipReason("processed_transactions has not reported a label count yet")
    labels_now = int(labels_loaded.value)
    last = json.loads(context.cursor)["labels_at_last_retrain"] if context.cursor else 0
    new_labels = labels_now - last if labels_now >= last else labels_now  # fewer than before: a fresh database
    if new_labels < fraud.settings().retrain_min_new_labels:
        return SkipReason(f"{new_labels} new labels since the last retraining")
    return SensorResult(
        run_requests=[RunRequest(run_key=f"labels-{labels_now}", tags={"fraud/labels": str(labels_now)})],
        cursor=json.dumps({"labels_at_last_retrain": labels_now}),
    )


weekly_retrain = ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_model,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Retrains every Monday 03:00 UTC.",
)


@sensor(
    job=rescore_recent,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="A newly promoted model (LATEST in the models bucket) rescores the unreviewed transactions "
    "of the last FRAUD_RESCORE_DAYS days.",
)
def model_promotion_sensor(context: SensorEvaluationContext, fraud: FraudPlatform) -> SensorResult | SkipReason:
    # Watching LATEST itself (not fraud_model's materializations) also catches a promotion or a rollback
    # made outside Dagster.
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        return SkipReason("no promoted model yet")
    if version == context.cursor:
        return SkipReason(f"{version} is still the promoted model")
    # the promotion's time in the run key: promoting a version again after a rollback rescores again
    latest_key = f"{settings.model_name}/LATEST"
    promoted = next((o.last_modified for o in store.list_objects(latest_key) if o.key == latest_key), 0.0)
    request = RunRequest(
        run_key=f"rescore-{version}-{int(promoted)}",
        tags={"fraud/model_version": version},
        run_config={"ops": {"fraud_flags": {"config": {"rescore_days": settings.rescore_days}}}},
    )
    return SensorResult(run_requests=[request], cursor=version)


# `fraud demo` (fraud/app/demo.py) runs each asset as its own run of this job, so the UI shows and opens them
demo = define_asset_job(
    "demo", selection=AssetSelection.all(), description="`fraud demo`: the whole graph, one asset per run."
)

JOBS = [process_and_score_batch, retrain_model, rescore_recent, demo]
SENSORS = [raw_batch_sensor, labels_sensor, model_promotion_sensor]
SCHEDULES = [weekly_retrain]
