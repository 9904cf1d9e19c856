"""Load, for `make soak` only: the real-time API under 64 concurrent clients for 60 s on loopback (bench/scoring's
load generator), and a million transactions through `fraud ingest` → the Glue job → the scorer, each stage in
its own process with the summed RSS of its process tree sampled (goal: under 4 GiB). SOAK_TRANSACTIONS sets
another size (e.g. on a machine too busy for a million rows)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import psutil
import pytest
from sqlalchemy import text

from bench.api import fresh_bodies, load_test, start_server, wait_healthy
from bench.scoring import load_world, requests_for
from fraud.core.schema import RAW_COLUMNS
from fraud.core.settings import Settings
from fraud.db.engine import get_engine, stop_embedded
from fraud.db.migrate import upgrade
from fraud.ingest.simulate import build_world, simulate_days
from tests.helpers.etl import glue_job_command
from tests.helpers.figures import figure
from tests.helpers.homes import free_port, make_home
from tests.helpers.litert_models import publish_logistic, weights_for

REPO = Path(__file__).resolve().parents[2]
GIB = 1024**3
WEIGHTS = weights_for(amt_log=0.8, card_count_1d=0.3, is_night=1.0)


@pytest.mark.soak
def test_the_api_under_64_clients_for_60_seconds(settings, engine):
    mine = settings.model_copy(update={"model_name": "soak-api-mlp"})
    frame = load_world(engine, mine, 20_000, "soak-api", seed=41)
    publish_logistic(mine, "soak-api-v1", WEIGHTS, -4.0, 0.5)
    # every request a new trans_num (a repeated one is a replay of its recorded decision): more than 64 clients
    # can send in 60 s on 2 cores
    bodies = fresh_bodies(requests_for(frame, 5_000), 60_000)
    token, url = secrets.token_urlsafe(24), f"http://127.0.0.1:{free_port()}"
    process = start_server(mine, int(url.rsplit(":", 1)[1]), token)
    try:
        wait_healthy(url, process, timeout=180)
        load_test(url, token, fresh_bodies(bodies[:200], 2_000), 64, 3)  # warm-up: connections, plans, caches
        load = load_test(url, token, bodies, 64, 60)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert load.errors == {} and 0 < load.requests <= len(bodies)  # no body sent twice
    figure(
        "tests/reliability/test_soak.py::test_the_api_under_64_clients_for_60_seconds",
        f"64 clients {load.seconds:.0f} s on loopback (wrk): {load.requests:,} requests served "
        f"({load.requests / load.seconds:,.0f}/s), p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, 0 errors",
    )


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss: int  # bytes: the summed RSS of the process tree (pages shared by forked workers count once per process)
    peak_pss: int  # bytes: the summed PSS (shared pages split between their processes: the tree's real footprint)


def run_measured(command: list[str], env: dict[str, str], log: Path, timeout: float = 7200) -> Measured:
    """Run `command`, sampling the memory of its whole process tree (the JVM and Python workers of Spark too)
    every 0.2 s."""
    started = time.perf_counter()
    with open(log, "ab") as output:
        process = psutil.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    peak_rss = peak_pss = 0
    while process.poll() is None:
        rss = pss = 0
        for member in [process, *process.children(recursive=True)]:
            try:
                memory = member.memory_full_info()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):  # ended between the listing and the reading
                continue
            rss, pss = rss + memory.rss, pss + memory.pss
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        assert time.perf_counter() - started < timeout, f"{command[:3]} took longer than {timeout} s"
        time.sleep(0.2)
    assert process.returncode == 0, f"{command[:3]} failed: {log.read_text(errors='replace')[-3000:]}"
    return Measured(time.perf_counter() - started, peak_rss, peak_pss)


def simulated_csv(path: Path, rows: int) -> int:
    """`rows` simulated transactions (about 2 per cardholder and day over 20 days) as a Sparkov CSV with labels."""
    batches = simulate_days(build_world(max(200, rows // 40), seed=3), date(2026, 6, 1), 20, 0.008, 2.0)
    transactions = pd.concat([b.transactions for b in batches]).head(rows)
    labels = pd.concat([b.labels for b in batches])[["trans_num", "is_fraud"]]
    frame = transactions.merge(labels, on="trans_num", how="left")
    frame.reindex(columns=[*RAW_COLUMNS, "is_fraud"]).to_csv(path, index=False)
    return len(frame)


@pytest.mark.soak
def test_a_million_transactions_through_ingest_etl_and_scoring(fraud_env):
    wanted = int(os.environ.get("SOAK_TRANSACTIONS", "1000000"))
    home = make_home("fraud-soak-")
    settings = Settings(home=home, model_name="soak-mlp")
    env = {**os.environ, "FRAUD_HOME": str(home), "FRAUD_MODEL_NAME": settings.model_name}
    log = home / "soak.log"
    upgrade(get_engine(settings))  # the embedded PostgreSQL runs on its own, outside the measured processes
    try:
        rows = simulated_csv(home / "transactions.csv", wanted)
        ingest = run_measured(
            [sys.executable, "-m", "fraud.app.cli", "ingest", str(home / "transactions.csv")], env, log
        )
        etl = run_measured(glue_job_command(settings), env, log)
        publish_logistic(settings, "soak-v1", WEIGHTS, -4.0, 0.5)
        scoring = run_measured(
            [
                sys.executable,
                "-c",
                "import json; from lambdas.scorer.handler import handler; print('scorer:', json.dumps(handler({})))",
            ],
            env,
            log,
        )
        engine = get_engine(settings)
        with engine.connect() as connection:
            loaded = connection.execute(text("SELECT sum(rows_in), sum(rows_loaded) FROM batch_load")).one()
            scores = connection.execute(
                text("SELECT count(*) FROM fraud_score WHERE model_version = 'soak-v1'")
            ).scalar_one()
        assert tuple(loaded) == (rows, rows) and scores == rows  # every transaction loaded and scored once
        scorer_said = json.loads(log.read_text().rsplit("scorer: ", 1)[1].splitlines()[0])
        assert scorer_said["scored"] == rows
        stages = {"ingest": ingest, "ETL": etl, "scoring": scoring}
        figure(
            "tests/reliability/test_soak.py::test_a_million_transactions_through_ingest_etl_and_scoring",
            f"{rows:,} transactions, all loaded and scored once; per stage: time, peak summed RSS / PSS of its process "
            f"tree (PostgreSQL not counted): "
            + "; ".join(
                f"{name} {m.seconds:.0f} s, {m.peak_rss / GIB:.2f} / {m.peak_pss / GIB:.2f} GiB"
                for name, m in stages.items()
            ),
        )
        peak = max(m.peak_pss for m in stages.values())
        assert peak < 4 * GIB, f"peak PSS {peak / GIB:.2f} GiB over the 4 GiB goal"
    finally:
        stop_embedded(home / "pg")
