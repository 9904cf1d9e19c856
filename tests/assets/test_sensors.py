"""Sensors, schedules and the alerts-and-report automation with Dagster's test utilities, on the local folder store
and on a moto S3 server; their first ticks after a demo-like state start nothing and say why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import boto3
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    RunRequest,
    asset,
    build_schedule_context,
    build_sensor_context,
    define_asset_job,
    evaluate_automation_conditions,
    instance_for_test,
    materialize,
    validate_run_config,
)

from assets.definitions import defs
from assets.resources import FraudPlatform
from assets.sensors import (
    MAX_RUNS_PER_TICK,
    SCHEDULES,
    SENSORS,
    alerts_and_report_automation,
    labels_sensor,
    model_promotion_sensor,
    raw_batch_sensor,
    weekly_retrain,
)
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine, stop_embedded
from fraud.db.migrate import upgrade
from fraud.ingest.raw_zone import write_transactions
from fraud.model import registry
from tests.helpers.scored_world import build_world

RESOURCES = {"fraud": FraudPlatform()}
ROW = pd.DataFrame(
    [
        {
            "trans_num": "t1",
            "cc_num": "4111111111111111",
            "merchant": "m",
            "amt": "1.00",
            "trans_date_trans_time": "2026-11-01 00:10:00",
        }
    ]
)


def tick(sensor, cursor: str | None, instance=None):
    """One evaluation as the daemon does it: a fresh context holding only the persisted cursor (a restart
    between two ticks looks exactly like this). Returns run_requests, cursor and skip_message."""
    return sensor.evaluate_tick(build_sensor_context(cursor=cursor, instance=instance, resources=RESOURCES))


def drop_batch(store, batch_id: str, day: int = 1, hour: int = 0) -> str:
    return write_transactions(store, batch_id, ROW, datetime(2026, 11, day, hour, tzinfo=UTC))


@pytest.fixture()
def local_raw(fraud_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    settings = Settings()
    yield object_store(settings, settings.raw_bucket)
    stop_embedded(tmp_path / "pg")  # the sensor asks the database which batches are loaded: its server starts here


@pytest.fixture()
def s3_raw(fraud_env, moto_endpoint, aws_credentials, tmp_path, monkeypatch):
    bucket = f"sensor-raw-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    for name, value in {
        "FRAUD_HOME": str(tmp_path),
        "FRAUD_MODE": "aws",
        "FRAUD_S3_ENDPOINT_URL": moto_endpoint,
        "FRAUD_RAW_BUCKET": bucket,
    }.items():
        monkeypatch.setenv(name, value)
    yield object_store(Settings(), bucket)
    stop_embedded(tmp_path / "pg")


def test_sensors_and_schedules_are_on_by_default():
    assert {s.name for s in SENSORS} == {
        "raw_batch_sensor",
        "labels_sensor",
        "model_promotion_sensor",
        "alerts_and_report_automation",
    }
    assert all(s.default_status == DefaultSensorStatus.RUNNING for s in SENSORS)
    assert all(s.default_status == DefaultScheduleStatus.RUNNING for s in SCHEDULES)
    repository = defs.get_repository_def()
    # every asset with an automation condition is ours: no default_automation_condition_sensor (off by default)
    assert {s.name for s in repository.sensor_defs} == {s.name for s in SENSORS}
    assert {s.name for s in repository.schedule_defs} >= {"weekly_retrain"}
    graph = defs.resolve_asset_graph()
    conditioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition}
    assert conditioned == {"customer_alerts", "fraud_report"}
    targeted = alerts_and_report_automation.asset_selection.resolve(graph)
    assert {k.to_user_string() for k in targeted} == conditioned
    assert alerts_and_report_automation.minimum_interval_seconds == 30


def test_one_run_per_new_batch_limited_to_that_batch(local_raw):
    keys = [drop_batch(local_raw, "b-02", hour=2), drop_batch(local_raw, "b-01", hour=1)]
    result = tick(raw_batch_sensor, None)
    assert [r.run_key for r in result.run_requests] == ["b-01", "b-02"]  # event-hour order within a tick
    job = defs.resolve_job_def("process_and_score_batch")
    for request, key in zip(result.run_requests, sorted(keys), strict=False):
        assert request.tags["fraud/raw_key"] == key
        ops = request.run_config["ops"]
        assert ops["processed_transactions"]["config"]["batch_ids"] == [request.run_key]
        assert ops["fraud_flags"]["config"]["batch_ids"] == [request.run_key]
        assert validate_run_config(job, request.run_config)  # raises if the job does not accept it
    # the same cursor gives the same requests (same run keys), so Dagster would skip them; the next cursor gives none
    assert [r.run_key for r in tick(raw_batch_sensor, None).run_requests] == ["b-01", "b-02"]
    again = tick(raw_batch_sensor, result.cursor)
    assert again.run_requests == [] and again.skip_message == "no new raw batches"


def test_a_late_batch_for_an_earlier_hour_after_a_restart(local_raw):
    drop_batch(local_raw, "day-5", day=5)
    cursor = tick(raw_batch_sensor, None).cursor
    drop_batch(local_raw, "late-day-1", day=1)  # sorts before the key already seen
    result = tick(raw_batch_sensor, cursor)  # a new context: only the persisted cursor survives a restart
    assert [r.run_key for r in result.run_requests] == ["late-day-1"]
    assert tick(raw_batch_sensor, result.cursor).run_requests == []


def test_more_than_1000_new_batches_on_s3_each_scheduled_once_across_restarts(s3_raw):
    client = s3_raw.client
    batch_ids = [f"bulk-{i:04d}" for i in range(1005)]
    for i, batch_id in enumerate(batch_ids):  # straight puts: the sensor only lists them
        client.put_object(
            Bucket=s3_raw.bucket, Key=f"transactions/dt=2026-11-01/hour={i % 24:02d}/{batch_id}.jsonl.gz", Body=b""
        )
    client.put_object(Bucket=s3_raw.bucket, Key="transactions/_SUCCESS", Body=b"")  # not a batch
    scheduled, cursor, ticks = [], None, 0
    while True:
        result = tick(raw_batch_sensor, cursor)
        ticks += 1
        cursor = result.cursor
        if not result.run_requests:
            break
        assert len(result.run_requests) <= MAX_RUNS_PER_TICK
        scheduled += [r.run_key for r in result.run_requests]
    assert sorted(scheduled) == batch_ids  # every batch, none twice (ListObjectsV2 pages hold 1,000 keys)
    assert ticks == -(-len(batch_ids) // MAX_RUNS_PER_TICK) + 1
    assert len(cursor) < 200_000  # the cursor holds the last hour's keys only

    # a batch dropped later is the only request of the next tick
    drop_batch(s3_raw, "after-restart", day=2)
    assert [r.run_key for r in tick(raw_batch_sensor, cursor).run_requests] == ["after-restart"]


def test_model_promotion_requests_one_rescore_per_promotion(local_raw, monkeypatch):
    monkeypatch.setenv("FRAUD_RESCORE_DAYS", "5")
    settings = Settings()
    models = object_store(settings, settings.models_bucket)
    assert tick(model_promotion_sensor, None).run_requests == []  # no model yet
    files = {"model.keras": b"k", "model.tflite": b"t", "metadata.json": b"{}"}  # the sensor reads LATEST only
    for version in ("v1", "v2"):
        registry.publish(models, settings.model_name, version, files)

    registry.promote(models, settings.model_name, "v1")
    first = tick(model_promotion_sensor, None)
    [request] = first.run_requests
    assert request.run_key.startswith("rescore-v1-") and first.cursor == "v1"
    assert request.run_config == {"ops": {"fraud_flags": {"config": {"rescore_days": 5}}}}
    assert validate_run_config(defs.resolve_job_def("rescore_recent"), request.run_config)
    registry.promote(models, settings.model_name, "v1")  # retraining on the same data re-promotes the same version
    assert tick(model_promotion_sensor, first.cursor).run_requests == []

    registry.promote(models, settings.model_name, "v2")
    second = tick(model_promotion_sensor, first.cursor)
    assert [r.run_key.rsplit("-", 1)[0] for r in second.run_requests] == ["rescore-v2"] and second.cursor == "v2"


def test_labels_sensor_retrains_after_enough_new_labels_are_loaded_or_given(local_raw, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_RETRAIN_MIN_NEW_LABELS", "1000")
    verdicts = {"given": 0}  # people's verdicts in the database (fraud.db.labels.people_verdicts)
    monkeypatch.setattr("assets.sensors.people_verdicts", lambda engine: verdicts["given"])
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:

        def loaded(labels: int) -> None:
            instance.report_runless_asset_event(
                AssetMaterialization("processed_transactions", metadata={"transaction_label": labels})
            )

        assert tick(labels_sensor, None, instance).run_requests == []  # nothing processed yet
        loaded(1500)
        first = tick(labels_sensor, None, instance)
        assert [r.run_key for r in first.run_requests] == ["labels-1500"]
        loaded(2200)  # 700 new: not yet
        assert tick(labels_sensor, first.cursor, instance).run_requests == []
        loaded(2600)
        second = tick(labels_sensor, first.cursor, instance)
        assert [r.run_key for r in second.run_requests] == ["labels-2600"]
        assert tick(labels_sensor, second.cursor, instance).run_requests == []
        # a retraining started elsewhere (the weekly schedule, Materialize all) counts as well
        loaded(3000)
        instance.report_runless_asset_event(AssetMaterialization("fraud_model"))
        loaded(3700)  # 1,100 since this sensor's last request, 700 since that retraining
        third = tick(labels_sensor, second.cursor, instance)
        assert third.run_requests == [] and third.skip_message.startswith("700 new labels since the last retraining")
        # analysts' and customers' verdicts count beside the label files
        verdicts["given"] = 300
        fourth = tick(labels_sensor, third.cursor, instance)
        assert [r.run_key for r in fourth.run_requests] == ["labels-3700-verdicts-300"]
        assert tick(labels_sensor, fourth.cursor, instance).run_requests == []


def test_weekly_retrain_schedule():
    assert weekly_retrain.cron_schedule == "0 3 * * 1" and weekly_retrain.job_name == "retrain_model"
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 11, 30, 3, tzinfo=UTC))
    assert isinstance(next(iter(weekly_retrain.evaluate_tick(context).run_requests)), RunRequest)


# --- starting from the platform as it is (issue 22 item 6) and the alerts-and-report automation (item 5) ---

GRAPH = defs.resolve_asset_graph()
DEMO_ORDER = [
    "raw_transactions",
    "processed_transactions",
    "fraud_model",
    "fraud_flags",
    "customer_alerts",
    "fraud_report",
]
REPORTING = ("customer_alerts", "fraud_report")


def _stub(key: AssetKey, labels: int):
    """An asset with the key, dependencies and automation condition of the real one, and a body that only reports
    what the sensors read (processed_transactions' label count): runs of these are the runs the sensors see."""
    node = GRAPH.get(key)

    @asset(key=key, deps=list(node.parent_keys), automation_condition=node.automation_condition)
    def stub() -> MaterializeResult:
        return MaterializeResult(
            metadata={"transaction_label": labels} if key.path == ["processed_transactions"] else {}
        )

    return stub


class StubRuns:
    """Runs of the real graph's shape in `instance`: `run("a", "b")` is one run materializing both."""

    def __init__(self, instance: DagsterInstance, labels: int = 0):
        self.instance = instance
        self.assets = [_stub(key, labels) for key in GRAPH.get_all_asset_keys()]

    def run(self, *names: str) -> None:
        assert materialize(self.assets, instance=self.instance, selection=list(names)).success

    def demo(self) -> None:
        for name in DEMO_ORDER:  # fraud demo: one run per asset
            self.run(name)


# Dagster's own evaluate_automation_conditions selects with a beta parameter and warns about it
quiet_beta = pytest.mark.filterwarnings("ignore::dagster.BetaWarning")


def _requested(instance, cursor=None):
    """One evaluation of the real code location's automation conditions (what alerts_and_report_automation does in
    the daemon): the reporting assets requested, and the cursor for the next."""
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return {name for name in REPORTING if result.get_num_requested(AssetKey(name))}, result.cursor


@quiet_beta
def test_first_ticks_after_the_demo_start_nothing_and_say_why(local_raw, tmp_path, monkeypatch):
    """`make ui` right after `make demo`: every sensor's cursor is empty, and none of them starts a run."""
    monkeypatch.setenv("FRAUD_RETRAIN_MIN_NEW_LABELS", "50")
    settings = Settings()
    engine = get_engine(settings)
    upgrade(engine)
    world = build_world(engine, settings, "demo")  # loaded, labelled, scored by its model, which is promoted
    drop_batch(local_raw, "demo-batch")  # the raw batch that world was loaded from
    labels = len(world.transactions)
    with instance_for_test() as instance:
        StubRuns(instance, labels).demo()

        raw = tick(raw_batch_sensor, None, instance)
        assert raw.run_requests == [] and raw.skip_message == "1 new raw batches, all already loaded"
        retrain = tick(labels_sensor, None, instance)
        assert retrain.run_requests == []
        assert retrain.skip_message == (
            f"0 new labels since the latest fraud_model materialization ({labels} loaded, {labels} then) and "
            "0 new verdicts; retraining at 50"
        )
        rescore = tick(model_promotion_sensor, None, instance)
        assert rescore.run_requests == [] and rescore.cursor == world.model_version
        assert rescore.skip_message.startswith(f"{world.model_version} is the promoted model and has already scored")
        assert "nothing to rescore until a new promotion" in rescore.skip_message
        # the next ticks, from the cursors the first ones stored, agree
        assert tick(labels_sensor, retrain.cursor, instance).run_requests == []
        assert tick(model_promotion_sensor, rescore.cursor, instance).skip_message == (
            f"{world.model_version} is still the promoted model"
        )
        requested, cursor = _requested(instance)
        assert requested == set()  # the first evaluation only records the state
        assert _requested(instance, cursor)[0] == set()

    # no retraining recorded in the instance (a fresh Dagster home) but a model promoted: labels count from now
    with instance_for_test() as instance:
        StubRuns(instance, labels).run("processed_transactions")
        first = tick(labels_sensor, None, instance)
        assert first.run_requests == [] and first.skip_message.startswith("0 new labels since the promoted model")
        StubRuns(instance, labels + 60).run("processed_transactions")
        assert [r.run_key for r in tick(labels_sensor, first.cursor, instance).run_requests] == [
            f"labels-{labels + 60}"
        ]


@quiet_beta
def test_alerts_then_report_follow_each_new_fraud_flags_once():
    """eager() on customer_alerts and fraud_report: a batch run, a rescoring or a manual Materialize of fraud_flags
    requests both (one run: Dagster groups one tick's unpartitioned requests); their own run, and an update made in
    it, trigger nothing more; nothing while a run that will update fraud_flags is still going."""
    with instance_for_test() as instance:
        runs = StubRuns(instance)
        runs.demo()
        requested, cursor = _requested(instance)
        assert requested == set()

        runs.run("processed_transactions", "fraud_flags")  # a raw-batch sensor run
        requested, cursor = _requested(instance, cursor)
        assert requested == {"customer_alerts", "fraud_report"}
        runs.run(*REPORTING)  # the run the sensor launches
        for _ in range(2):  # the report's dependency on the alerts, updated in its own run, does not count again
            requested, cursor = _requested(instance, cursor)
            assert requested == set()

        runs.run("fraud_flags")  # a rescoring, or a batch whose successor is still running:
        job = Definitions(
            assets=runs.assets,
            jobs=[define_asset_job("batch", AssetSelection.assets("processed_transactions", "fraud_flags"))],
        ).resolve_job_def("batch")
        going = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
        for _ in range(2):  # ...nothing until that one ends, so a backlog of batches ends in one run
            requested, cursor = _requested(instance, cursor)
            assert requested == set()
        instance.report_run_canceled(going)
        requested, cursor = _requested(instance, cursor)
        assert requested == {"customer_alerts", "fraud_report"}
        runs.run(*REPORTING)
        requested, cursor = _requested(instance, cursor)
        assert requested == set()

        runs.run("customer_alerts")  # alerts materialized by hand: the report follows, the alerts do not rerun
        requested, cursor = _requested(instance, cursor)
        assert requested == {"fraud_report"}
        runs.run("fraud_report")
        assert _requested(instance, cursor)[0] == set()
