"""SIGKILL the Glue job while it loads, then rerun it: whole batches or nothing, and exact counts after."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from fraud.db.engine import get_engine, stop_embedded
from fraud.db.migrate import upgrade
from fraud.db.queries import batch_accounting
from fraud.features import FEATURE_VERSION
from fraud.raw_zone import label_keys, transaction_keys
from fraud.settings import Settings
from fraud.storage import object_store
from lambdas.generator.handler import handler as generate
from tests.conftest import make_home

BATCHES = 6


@pytest.fixture(scope="module")
def crash_home():
    home = make_home("fraud-crash-")
    settings = Settings(home=home, sim_customers=1500, sim_days=BATCHES)
    generated = generate({}, settings=settings)
    upgrade(get_engine(settings))
    yield settings, generated
    stop_embedded(home / "pg")


def _command(settings: Settings) -> list[str]:
    raw = object_store(settings, settings.raw_bucket)
    return [sys.executable, "glue/process_transactions.py", "--raw-uri", raw.uri(),
            "--processed-uri", object_store(settings, settings.processed_bucket).uri(),
            "--transactions-keys", ",".join(transaction_keys(raw)), "--labels-keys", ",".join(label_keys(raw))]


def _fact_batches(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(text("SELECT DISTINCT batch_id FROM fact_transaction")).scalars())


def test_killed_mid_load_then_rerun(crash_home):
    settings, generated = crash_home
    engine = get_engine(settings)
    env = {**os.environ, "FRAUD_HOME": str(settings.home)}
    log = settings.home / "etl.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(_command(settings), env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                   stdout=output, stderr=subprocess.STDOUT)
    committed_at_kill = 0
    deadline = time.monotonic() + 900  # generous: a loaded 2-core CI machine starts Spark slowly
    while time.monotonic() < deadline and process.poll() is None:
        with engine.connect() as connection:
            committed_at_kill = connection.execute(text("SELECT count(*) FROM batch_load")).scalar_one()
        if committed_at_kill >= 1:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert 1 <= committed_at_kill < BATCHES, (f"the job was not caught in the middle of its load (exit code "
                                               f"{process.returncode}): {log.read_text()[-2000:]}")

    # whole batches or nothing: every committed batch is complete, no rows of uncommitted ones
    after_kill = batch_accounting(engine, FEATURE_VERSION)
    assert (after_kill["in_fact"] == after_kill["rows_loaded"]).all()
    assert (after_kill["with_features"] == after_kill["in_fact"]).all()
    assert _fact_batches(engine) == set(after_kill["batch_id"])
    assert len(after_kill) < BATCHES

    # rerun to the end: exact counts, nothing doubled
    subprocess.run(_command(settings), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=600)
    final = batch_accounting(engine, FEATURE_VERSION)
    expected_rows = sum(b["rows"] for b in generated["batches"])
    assert len(final) == BATCHES and final["in_fact"].sum() == final["rows_loaded"].sum() == expected_rows
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM transaction_label")).scalar_one() == expected_rows
