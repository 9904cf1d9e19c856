"""Automation: sensors, a schedule and declarative automation that keep the graph current with nobody pressing a
button.

- `raw_batch_sensor`: each new raw transaction batch → one run of `process_and_score_batch` (ETL + scoring of
  that batch only), run key = batch id, so a batch is never scheduled twice.
- `labels_sensor`: enough new labels loaded (label files) or given (analysts', customers' verdicts) since the last
  retraining → a run of `retrain_model`.
- `weekly_retrain`: `retrain_model` every Monday 03:00 UTC, labels or not.
- `model_promotion_sensor`: a new version in the models bucket's LATEST → `rescore_recent` (the unreviewed
  transactions of the last FRAUD_RESCORE_DAYS days).
- `alerts_and_report_automation`: the automation conditions of `customer_alerts` and `fraud_report`
  (`AutomationCondition.eager()`, assets/reporting.py): any new `fraud_flags` materialization (a batch run, a
  rescoring, a manual one) → one run of the alerts, then the report. Many batch runs in a row give one such run:
  eager waits while a run that will update `fraud_flags` is queued or has not reached it yet.
All are on by default (DefaultSensorStatus / DefaultScheduleStatus RUNNING); the Dagster daemon (`dg dev`) evaluates
them. Each starts from the platform as it is: a first tick (empty cursor) after `fraud demo` requests nothing, and
says why; so does every tick with nothing to do.
"""

from __future__ import annotations

import json
from datetime import UTC

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    AutomationConditionSensorDefinition,
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

from assets.modelling import PEOPLE_VERDICTS
from assets.resources import FraudPlatform
from fraud.core.schema import batch_id_of
from fraud.db.labels import people_verdicts
from fraud.db.queries import data_freshness, loaded_batch_ids
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


LABELS = "transaction_label"  # processed_transactions' metadata: the labels in the database after its run


def _labels_reported(record) -> int | None:
    value = record.asset_materialization.metadata.get(LABELS) if record and record.asset_materialization else None
    return None if value is None else int(value.value)


def labels_at_last_training(instance) -> tuple[int | None, int | None]:
    """When `fraud_model` was last materialized (by any run: this sensor's, the weekly schedule's, Materialize all,
    `fraud demo`): the label count `processed_transactions` reported last before it, and the people's verdicts it
    recorded. (None, None): no retraining recorded in this instance."""
    models = instance.fetch_materializations(AssetKey("fraud_model"), limit=1).records
    if not models:
        return None, None
    before = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("processed_transactions"), before_storage_id=models[0].storage_id),
        limit=1,
    ).records
    verdicts = models[0].asset_materialization.metadata.get(PEOPLE_VERDICTS)
    return (_labels_reported(before[0]) if before else None), (None if verdicts is None else int(verdicts.value))


@sensor(
    job=retrain_model,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Retrains once FRAUD_RETRAIN_MIN_NEW_LABELS labels were loaded or given (analysts' and customers' "
    "verdicts) since the last retraining (whatever started it).",
)
def labels_sensor(context: SensorEvaluationContext, fraud: FraudPlatform) -> SensorResult:
    # Label files reach the database through the ETL (processed_transactions), so the sensor watches that asset's
    # label count rather than the raw labels/ prefix: a retrain never starts before its labels are loaded. People's
    # verdicts (the review app, customers' answers) are written straight to the database: counted there.
    labels_now = _labels_reported(context.instance.get_latest_materialization_event(AssetKey("processed_transactions")))
    if labels_now is None:
        return SensorResult(skip_reason=SkipReason("processed_transactions has not reported a label count yet"))
    verdicts_now = people_verdicts(fraud.engine())
    # Since when: the later of this sensor's own last request (the cursor) and the latest retraining of any origin.
    # With no cursor (the sensor's first tick, e.g. `make ui` after `make demo`) and no retraining recorded, a model
    # already promoted counts as trained on every label loaded or given so far; with no model at all, from 0.
    trained_at, verdicts_trained = labels_at_last_training(context.instance)
    if context.cursor:
        since = json.loads(context.cursor)
        baseline = max(since["labels_at_last_retrain"], trained_at or 0)
        verdicts_then = max(since.get("verdicts_at_last_retrain", 0), verdicts_trained or 0)
        origin = "the last retraining"
    elif trained_at is not None:
        baseline, origin = trained_at, "the latest fraud_model materialization"
        verdicts_then = verdicts_now if verdicts_trained is None else verdicts_trained
    elif registry.promoted_version(fraud.settings()) is not None:
        baseline, origin = labels_now, "the promoted model (no retraining recorded in this instance)"
        verdicts_then = verdicts_now
    else:
        baseline, origin, verdicts_then = 0, "the start (no model yet)", 0
    new_labels = labels_now - baseline if labels_now >= baseline else labels_now  # fewer than before: a fresh database
    new_verdicts = max(0, verdicts_now - verdicts_then)
    needed = fraud.settings().retrain_min_new_labels
    if new_labels + new_verdicts < needed:
        return SensorResult(
            skip_reason=SkipReason(
                f"{new_labels:,} new labels since {origin} ({labels_now:,} loaded, {baseline:,} then) and "
                f"{new_verdicts:,} new verdicts; retraining at {needed:,}"
            ),
            cursor=json.dumps({"labels_at_last_retrain": baseline, "verdicts_at_last_retrain": verdicts_then}),
        )
    run_key = f"labels-{labels_now}" + (f"-verdicts-{verdicts_now}" if verdicts_now else "")
    return SensorResult(
        run_requests=[RunRequest(run_key=run_key, tags={"fraud/labels": str(labels_now)})],
        cursor=json.dumps({"labels_at_last_retrain": labels_now, "verdicts_at_last_retrain": verdicts_now}),
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
def model_promotion_sensor(context: SensorEvaluationContext, fraud: FraudPlatform) -> SensorResult:
    # Watching LATEST itself (not fraud_model's materializations) also catches a promotion or a rollback
    # made outside Dagster.
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    version = registry.latest_version(store, settings.model_name)
    if version is None:
        return SensorResult(skip_reason=SkipReason("no promoted model yet"), cursor=context.cursor)
    if version == context.cursor:
        return SensorResult(skip_reason=SkipReason(f"{version} is still the promoted model"), cursor=version)
    if context.cursor is None:
        # the first tick (e.g. `make ui` after `make demo`): a promoted model that has already scored transactions
        # had its scoring (the demo's, a batch's, an earlier rescoring); only one that has scored nothing yet is
        # rescored now
        latest_score = data_freshness(fraud.engine(), version)["latest_score"]
        if latest_score is not None:
            return SensorResult(
                skip_reason=SkipReason(
                    f"{version} is the promoted model and has already scored (latest score "
                    f"{latest_score.astimezone(UTC):%Y-%m-%d %H:%M} UTC): nothing to rescore until a new promotion"
                ),
                cursor=version,
            )
    # the promotion's time in the run key: promoting a version again after a rollback rescores again
    latest_key = f"{settings.model_name}/LATEST"
    promoted = next((o.last_modified for o in store.list_objects(latest_key) if o.key == latest_key), 0.0)
    request = RunRequest(
        run_key=f"rescore-{version}-{int(promoted)}",
        tags={"fraud/model_version": version},
        run_config={"ops": {"fraud_flags": {"config": {"rescore_days": settings.rescore_days}}}},
    )
    context.log.info(f"{version} promoted (was {context.cursor or 'not seen by this sensor'}): rescoring")
    return SensorResult(run_requests=[request], cursor=version)


# The alerts and the report follow fraud_flags by their automation conditions (eager, assets/reporting.py), evaluated
# by this sensor in the daemon. Not a step of the batch job: 200 batches in a tick would be 200 reports; eager waits
# while a run that will update fraud_flags is queued or has not reached it, so a backlog of batches ends in one
# alerts and report run. Its first evaluation only records the state (nothing counts as "updated" yet), so opening
# the UI after `fraud demo` starts nothing. A tick with nothing to request shows, per asset, which part of the
# condition is false.
alerts_and_report_automation = AutomationConditionSensorDefinition(
    "alerts_and_report_automation",
    target=AssetSelection.assets("customer_alerts", "fraud_report"),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    run_tags={"fraud/trigger": "automation"},
    description="Customer alerts, then the report, after every new fraud_flags materialization (a batch run, a "
    "rescoring, a manual one); many in a row give one run.",
)


# `fraud demo` (fraud/app/demo.py) runs each asset as its own run of this job, so the UI shows and opens them
demo = define_asset_job(
    "demo", selection=AssetSelection.all(), description="`fraud demo`: the whole graph, one asset per run."
)

JOBS = [process_and_score_batch, retrain_model, rescore_recent, demo]
SENSORS = [raw_batch_sensor, labels_sensor, model_promotion_sensor, alerts_and_report_automation]
SCHEDULES = [weekly_retrain]
