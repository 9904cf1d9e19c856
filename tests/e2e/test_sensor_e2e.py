"""Dropping a new raw batch leads, with no other action, to scores for exactly that batch: the raw-batch
sensor's tick and the run it requests, on a graph materialized once on a small simulated world."""

from __future__ import annotations

import tempfile

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, build_sensor_context, materialize
from sqlalchemy import text

from assets.definitions import ALL_ASSETS, ALL_CHECKS, defs
from assets.sensors import model_promotion_sensor, raw_batch_sensor
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine
from fraud.db.review import recent_window
from fraud.model import registry
from lambdas.generator.handler import handler as generate
from tests.helpers.homes import SMALL_WORLD, own_fraud_home


@pytest.fixture(scope="module")
def graph_once(fraud_env):
    with own_fraud_home("fraud-sensor-e2e-", **SMALL_WORLD), tempfile.TemporaryDirectory() as dagster_home:
        instance = DagsterInstance.local_temp(dagster_home)
        assert materialize([*ALL_ASSETS, *ALL_CHECKS], instance=instance, resources=defs.resources).success
        yield Settings(), instance


def _scores(engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT trans_num, model_version FROM fraud_score")).tuples())


def _tick(cursor, instance, sensor=raw_batch_sensor):
    return sensor.evaluate_tick(build_sensor_context(cursor=cursor, instance=instance, resources=defs.resources))


@pytest.mark.e2e
def test_a_dropped_batch_is_processed_and_scored_alone(graph_once):
    settings, instance = graph_once
    engine = get_engine(settings)

    # the sensor's first look: the batches already there were all loaded by Materialize all, so no runs, but
    # the cursor moves past them
    first = _tick(None, instance)
    assert first.run_requests == [] and first.cursor
    assert f"{settings.sim_days} new raw batches, all already loaded" in first.skip_message

    before = _scores(engine)
    new_day = settings.sim_start.toordinal() + settings.sim_days
    dropped = generate({"start_day": str(type(settings.sim_start).fromordinal(new_day)), "days": 1}, settings=settings)
    [batch] = dropped["batches"]

    # a restart between the two ticks: only the persisted cursor carries over
    second = _tick(first.cursor, instance)
    [request] = second.run_requests
    assert request.run_key == batch["batch_id"]
    job = defs.resolve_job_def("process_and_score_batch")
    result = job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance)
    assert result.success
    # the blocking checks pass; the drift checks (non-blocking) may only warn
    assert all(c.passed or c.severity == AssetCheckSeverity.WARN for c in result.get_asset_check_evaluations())

    with engine.connect() as connection:
        in_batch = set(
            connection.execute(
                text("SELECT trans_num FROM fact_transaction WHERE batch_id = :b"), {"b": batch["batch_id"]}
            ).scalars()
        )
    assert len(in_batch) == batch["rows"] > 0
    new_scores = _scores(engine) - before
    assert {trans_num for trans_num, _ in new_scores} == in_batch  # exactly that batch, nothing else
    assert len(new_scores) == len(in_batch)  # one model version: one score each

    # the next tick has nothing to do
    assert _tick(second.cursor, instance).run_requests == []


@pytest.mark.e2e
def test_a_promoted_model_rescores_the_unreviewed_transactions_of_the_last_days(graph_once):
    settings, instance = graph_once
    engine = get_engine(settings)
    models, name = object_store(settings, settings.models_bucket), settings.model_name
    rescore = defs.resolve_job_def("rescore_recent")

    # first look: the promoted model has already scored everything, so its rescore run writes nothing
    first = _tick(None, instance, model_promotion_sensor)
    [request] = first.run_requests
    run = rescore.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance)
    assert run.success and run.asset_materializations_for_node("fraud_flags")[0].metadata["scored"].value == 0

    # a promotion made outside Dagster (a rollback, a manual promote): a copy of the model as a new version
    current = registry.latest_version(models, name)
    promoted = f"{current}-b"
    registry.publish(models, name, promoted, {f: models.get_bytes(f"{name}/{current}/{f}") for f in registry.ARTIFACTS})
    registry.promote(models, name, promoted)
    second = _tick(first.cursor, instance, model_promotion_sensor)
    [request] = second.run_requests
    assert rescore.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance).success

    # expected, computed here in Python: in the window, no label known by the newest transaction, no sent alert
    since, until = recent_window(engine, settings.rescore_days)
    with engine.connect() as connection:
        newest = connection.execute(text("SELECT max(event_time) FROM fact_transaction")).scalar_one()
        window = set(
            connection.execute(
                text("SELECT trans_num FROM fact_transaction WHERE event_time >= :s AND event_time < :u"),
                {"s": since, "u": until},
            ).scalars()
        )
        labelled = {
            t
            for t, at in connection.execute(text("SELECT trans_num, labelled_at FROM transaction_label"))
            if at <= newest
        }
        sent = set(
            connection.execute(
                text("""SELECT x.trans_num FROM customer_alert_transaction x
                                              JOIN customer_alert a ON a.id = x.alert_id WHERE a.status = 'sent'""")
            ).scalars()
        )
        rescored = set(
            connection.execute(
                text("SELECT trans_num FROM fraud_score WHERE model_version = :v"), {"v": promoted}
            ).scalars()
        )
    expected = window - labelled - sent
    assert 0 < len(expected) < len(window)  # chargebacks of the last days are not known yet; older ones are
    assert rescored == expected
    assert _tick(second.cursor, instance, model_promotion_sensor).run_requests == []
