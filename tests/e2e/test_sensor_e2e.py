"""The loop closes with nobody pressing anything. On a graph materialized once on a small simulated world, in the
instance `make demo` and `make ui` share: a new raw batch, with the Dagster daemon running (`dagster-daemon run`, as
`make ui` starts it), becomes its ETL and scoring run (raw_batch_sensor), then one run of the customer alerts and the
report (alerts_and_report_automation), which emails the batch's flagged cardholders and counts those emails; the
other sensors' first ticks start nothing and say why. A promoted model's rescoring leads to the alerts and the report
the same way."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterRunStatus,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)
from dagster._core.scheduler.instigation import TickStatus  # what the instance's tick records carry; not re-exported
from sqlalchemy import text

from assets.definitions import ALL_ASSETS, ALL_CHECKS, defs
from assets.instance import local_instance, prepare_instance
from assets.sensors import model_promotion_sensor, raw_batch_sensor
from fraud.app.ui import stop_group
from fraud.core.settings import REPO_ROOT, Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine
from fraud.db.review import recent_window
from fraud.model import registry
from lambdas.generator.handler import handler as generate
from tests.helpers.homes import SMALL_WORLD, own_fraud_home

REPORTING = ("customer_alerts", "fraud_report")
DAEMON_TIMEOUT = 600  # seconds for the batch's run and the alerts-and-report run (about 2 minutes on 2 cores)


@pytest.fixture(scope="module")
def graph_once(fraud_env):
    with own_fraud_home("fraud-sensor-e2e-", **SMALL_WORLD):
        settings = Settings()
        instance = local_instance(settings)  # PostgreSQL-backed, FRAUD_HOME/dagster: what the daemon reads too
        try:
            assert materialize([*ALL_ASSETS, *ALL_CHECKS], instance=instance, resources=defs.resources).success
            yield settings, instance
        finally:
            instance.dispose()


def _scores(engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT trans_num, model_version FROM fraud_score")).tuples())


def _tick(cursor, instance, sensor=raw_batch_sensor):
    return sensor.evaluate_tick(build_sensor_context(cursor=cursor, instance=instance, resources=defs.resources))


def _reporting_requested(instance, cursor=None):
    """One evaluation of the automation conditions, as alerts_and_report_automation does it in the daemon."""
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return {name for name in REPORTING if result.get_num_requested(AssetKey(name))}, result.cursor


class Daemon:
    """`dagster-daemon run` over the home's instance (FRAUD_HOME/dagster) and the repository's workspace.yaml, in its
    own process group; stopped as `fraud ui` stops `dg dev` (SIGINT, SIGTERM, then SIGKILL to the group)."""

    def __init__(self, settings: Settings):
        self.log_path = settings.home / "daemon.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "DAGSTER_HOME": str(prepare_instance(settings)), "FRAUD_HOME": str(settings.home)}
        command = [
            str(Path(sys.executable).with_name("dagster-daemon")),
            "run",
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ]
        self.process = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_group(self.process)
        self._log.close()


def _run_error(instance, run_id: str) -> str:
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            return error.message.strip() if error else record.message
    return "no step failed"


def _wait_for_run(instance, daemon: Daemon, predicate, what: str, deadline: float):
    """The run record of the first run matching `predicate` (on its record) once it has finished; fails on a failed
    run, a dead daemon or the deadline."""
    while time.monotonic() < deadline:
        matching = [record for record in instance.get_run_records() if predicate(record)]
        if matching and matching[0].dagster_run.is_finished:
            run = matching[0].dagster_run
            assert run.status == DagsterRunStatus.SUCCESS, (
                f"{what}: run {run.run_id} ended {run.status}: {_run_error(instance, run.run_id)}"
            )
            return instance.get_run_record_by_id(run.run_id)
        assert daemon.process.poll() is None, f"the daemon exited:\n{daemon.tail()}"
        time.sleep(2)
    runs = [(run.job_name, run.tags.get("fraud/trigger"), run.status.value) for run in instance.get_runs()]
    raise AssertionError(f"{what}: no finished run in time; runs: {runs}\ndaemon log:\n{daemon.tail()}")


def _ticks(instance, name: str) -> list:
    """The sensor's ticks, oldest first (what the UI lists under Automation)."""
    [state] = [s for s in instance.all_instigator_state() if s.name == name]
    return list(reversed(instance.get_ticks(state.instigator_origin_id, state.selector_id)))


def _reports(settings) -> set[str]:
    return {p.parent.name for p in (settings.store_root / settings.reports_bucket / "reports").glob("*/report.html")}


@pytest.mark.e2e
def test_a_dropped_batch_is_processed_scored_alerted_and_reported_with_nobody_pressing_anything(graph_once):
    settings, instance = graph_once
    engine = get_engine(settings)
    before_scores = _scores(engine)
    before_emails = set(settings.outbox_dir.glob("*.eml"))
    before_reports = _reports(settings)
    with engine.connect() as connection:
        last_alert = connection.execute(text("SELECT coalesce(max(id), 0) FROM customer_alert")).scalar_one()

    new_day = settings.sim_start.toordinal() + settings.sim_days
    dropped = generate({"start_day": str(type(settings.sim_start).fromordinal(new_day)), "days": 1}, settings=settings)
    [batch] = dropped["batches"]

    daemon = Daemon(settings)
    deadline = time.monotonic() + DAEMON_TIMEOUT
    try:
        batch_record = _wait_for_run(
            instance,
            daemon,
            lambda record: record.dagster_run.tags.get("fraud/batch_id") == batch["batch_id"],
            "the batch",
            deadline,
        )
        reporting_record = _wait_for_run(
            instance,
            daemon,
            lambda record: record.dagster_run.tags.get("fraud/trigger") == "automation",
            "the alerts and the report",
            deadline,
        )
        # one more evaluation after that run: it requests nothing (the report's update of its own dependency, the
        # alerts, in the same run does not count). Only a finished tick says so: a tick is stored as STARTED when
        # its evaluation begins, which under load can take seconds
        automation_ticks = []
        while time.monotonic() < deadline and not automation_ticks:
            automation_ticks = [
                t
                for t in _ticks(instance, "alerts_and_report_automation")
                if t.timestamp > reporting_record.end_time and t.status != TickStatus.STARTED
            ]
            time.sleep(2)
        assert automation_ticks, f"no finished automation tick after the alerts-and-report run\n{daemon.tail()}"
    finally:
        daemon.stop()
    batch_run, reporting_run = batch_record.dagster_run, reporting_record.dagster_run

    # the batch's run: the ETL and the scoring of exactly that batch
    assert batch_run.job_name == "process_and_score_batch"
    # requested once the batch's fraud_flags was materialized (the run may still be running its drift checks)
    [flags] = instance.fetch_materializations(AssetKey("fraud_flags"), limit=1).records
    assert flags.run_id == batch_run.run_id and reporting_record.create_timestamp.timestamp() > flags.timestamp
    with engine.connect() as connection:
        in_batch = set(
            connection.execute(
                text("SELECT trans_num FROM fact_transaction WHERE batch_id = :b"), {"b": batch["batch_id"]}
            ).scalars()
        )
    assert len(in_batch) == batch["rows"] > 0
    new_scores = _scores(engine) - before_scores
    assert {trans_num for trans_num, _ in new_scores} == in_batch and len(new_scores) == len(in_batch)

    # then one run of the alerts and the report, together, started by the automation sensor
    assert reporting_run.asset_selection == {AssetKey(name) for name in REPORTING}
    assert reporting_run.tags.get("dagster/from_automation_condition") == "true"
    with engine.connect() as connection:
        alerted_batches = set(
            connection.execute(
                text("""SELECT DISTINCT t.batch_id FROM customer_alert a
                        JOIN customer_alert_transaction x ON x.alert_id = a.id
                        JOIN fact_transaction t ON t.trans_num = x.trans_num WHERE a.id > :last"""),
                {"last": last_alert},
            ).scalars()
        )
        sent_now = connection.execute(
            text("SELECT count(*) FROM customer_alert WHERE id > :last AND status = 'sent'"), {"last": last_alert}
        ).scalar_one()
        sent_total = connection.execute(text("SELECT count(*) FROM customer_alert WHERE status = 'sent'")).scalar_one()
    new_emails = set(settings.outbox_dir.glob("*.eml")) - before_emails
    assert alerted_batches == {batch["batch_id"]}  # the new alerts are the new batch's
    assert len(new_emails) == sent_now > 0
    report = instance.get_latest_materialization_event(AssetKey("fraud_report"))
    assert report.run_id == reporting_run.run_id
    assert report.asset_materialization.metadata["emails_sent"].value == sent_total  # built after the alerts
    assert len(_reports(settings) - before_reports) == 1

    # nothing else: no second alerts-and-report run, and the other sensors' first ticks started nothing, saying why
    later = [(t.status.value, t.run_ids, t.skip_reason, t.error and t.error.message) for t in automation_ticks]
    assert all(t.status == TickStatus.SKIPPED and not t.run_ids for t in automation_ticks), later
    automation_runs = [run for run in instance.get_runs() if run.tags.get("fraud/trigger") == "automation"]
    assert [run.run_id for run in automation_runs] == [reporting_run.run_id]
    assert not [run for run in instance.get_runs() if run.job_name in ("retrain_model", "rescore_recent")]
    # a slow machine may see more than one tick of each: none started anything, the first said why
    labels_ticks = _ticks(instance, "labels_sensor")
    assert labels_ticks and all(t.status == TickStatus.SKIPPED and not t.run_ids for t in labels_ticks)
    assert labels_ticks[0].skip_reason.startswith("0 new labels since the latest fraud_model materialization")
    promotion_tick = _ticks(instance, "model_promotion_sensor")[0]
    assert promotion_tick.status.value == "SKIPPED" and "has already scored" in promotion_tick.skip_reason
    assert _ticks(instance, "alerts_and_report_automation")[0].status.value == "SKIPPED"  # its first: nothing


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # Dagster's own evaluate_automation_conditions
def test_a_promoted_model_rescores_the_unreviewed_transactions_then_alerts_and_reports(graph_once):
    settings, instance = graph_once
    engine = get_engine(settings)
    models, name = object_store(settings, settings.models_bucket), settings.model_name
    rescore = defs.resolve_job_def("rescore_recent")

    # first look (an empty cursor): the promoted model has already scored, so no rescoring, and the tick says why
    first = _tick(None, instance, model_promotion_sensor)
    current = registry.latest_version(models, name)
    assert first.run_requests == [] and first.cursor == current
    assert first.skip_message.startswith(f"{current} is the promoted model and has already scored")
    _, automation_cursor = _reporting_requested(instance)

    # a promotion made outside Dagster (a rollback, a manual promote): a copy of the model as a new version
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

    # the rescoring updated fraud_flags: the automation asks for the alerts and the report, as after a batch
    requested, automation_cursor = _reporting_requested(instance, automation_cursor)
    assert requested == set(REPORTING)
    reporting = materialize([*ALL_ASSETS], selection=list(REPORTING), instance=instance, resources=defs.resources)
    assert reporting.success
    # the report is the promoted model's: the transactions it scored (the copy's metadata names the original)
    assert reporting.asset_materializations_for_node("fraud_report")[0].metadata["transactions"].value == len(rescored)
    assert _reporting_requested(instance, automation_cursor)[0] == set()
