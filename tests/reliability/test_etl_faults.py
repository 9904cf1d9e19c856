"""Faults around the ETL, on its own database and raw zone: the Glue job SIGKILLed at seeded random points
and rerun, a batch delivered twice (same batch id, and the same rows under a new id), and a partial object in
the raw zone. After each: every row loaded exactly once, in PostgreSQL and in the curated Parquet."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine, stop_embedded
from fraud.db.migrate import upgrade
from fraud.db.queries import accounting_problems, batch_accounting
from fraud.features.catalog import FEATURE_VERSION
from lambdas.generator.handler import handler as generate
from tests.helpers.figures import figure
from tests.helpers.homes import make_home

REPO = Path(__file__).resolve().parents[2]
BATCHES = 6


@pytest.fixture(scope="module")
def etl_home(fraud_env):
    home = make_home("fraud-faults-")
    settings = Settings(home=home, sim_customers=300)
    upgrade(get_engine(settings))
    yield settings
    stop_embedded(home / "pg")


def simulated(settings: Settings, start_day: str, days: int) -> list[dict]:
    return generate({"start_day": start_day, "days": days}, settings=settings)["batches"]


def etl_args(settings: Settings, batches: list[dict], keys: list[str] | None = None) -> dict[str, str]:
    raw = object_store(settings, settings.raw_bucket)
    return {
        "raw_uri": raw.uri(),
        "processed_uri": object_store(settings, settings.processed_bucket).uri(),
        "transactions_keys": ",".join(keys if keys is not None else [b["transactions_key"] for b in batches]),
        "labels_keys": ",".join(k for b in batches for k in b["labels_keys"]),
    }


def run_etl(settings: Settings, args: dict[str, str]) -> dict:
    from glue.process_transactions import run

    return run(args, settings, report=lambda summary: None)


def accounting(settings: Settings, batch_ids: list[str]) -> pd.DataFrame:
    rows = batch_accounting(get_engine(settings), FEATURE_VERSION)
    return rows[rows["batch_id"].isin(batch_ids)].set_index("batch_id")


def curated(settings: Settings, batch_ids: list[str]) -> pd.DataFrame:
    """The curated Parquet rows of these batches (batch_id is a partition column)."""
    frame = pd.read_parquet(
        settings.store_root / settings.processed_bucket / "transactions", columns=["trans_num", "batch_id"]
    )
    frame["batch_id"] = frame["batch_id"].astype(str)
    return frame[frame["batch_id"].isin(batch_ids)]


def count(settings: Settings, sql: str, **params) -> int:
    with get_engine(settings).connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def assert_whole_batches(settings: Settings, batch_ids: list[str]) -> None:
    """Every batch the database says it loaded is complete, and no row of any other batch is there."""
    loaded = accounting(settings, batch_ids)
    unbalanced, missing = accounting_problems(loaded.reset_index())
    assert unbalanced.empty and missing.empty, loaded
    in_fact = count(settings, "SELECT count(*) FROM fact_transaction WHERE batch_id = ANY(:ids)", ids=batch_ids)
    assert in_fact == loaded["rows_loaded"].sum()


# --- SIGKILL at random points ----------------------------------------------------------------------------------


def kill_points(seed: int, kills: int) -> list[tuple[str, float]]:
    """Seeded points at which to kill the job: ("start", s) s seconds after launch (Spark start-up, reading,
    validation, features); ("parquet", s) s seconds after the curated Parquet write began; ("load", n) once
    n batches were committed by this launch and the next batch's transaction is open (killed mid-load). Each phase
    at least once, in a seeded order."""
    rng = random.Random(seed)
    points = []
    phases = ["start", "parquet", "load"]
    for phase in rng.sample(phases, len(phases)) + [rng.choice(phases) for _ in range(kills - len(phases))]:
        value = {"start": rng.uniform(0.5, 6.0), "parquet": rng.uniform(0.0, 0.5), "load": rng.randint(1, BATCHES - 1)}[
            phase
        ]
        points.append((phase, value))
    return points


def _parquet_being_written(settings: Settings) -> bool:
    folder = settings.store_root / settings.processed_bucket / "transactions"
    return folder.is_dir() and any(
        entry.name.startswith((".spark-staging", "_temporary")) for entry in os.scandir(folder)
    )


def _launch(settings: Settings, args: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "glue/process_transactions.py"] + [
        item for name, value in args.items() for item in (f"--{name.replace('_', '-')}", value)
    ]
    with open(log, "ab") as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "FRAUD_HOME": str(settings.home)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


# the job's connections are the only others to this database: a transaction of theirs is a batch being loaded
_OPEN_TRANSACTIONS = """SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"""


def kill_at(settings: Settings, args: dict[str, str], point: tuple[str, float], log: Path) -> None:
    phase, value = point
    with get_engine(settings).connect() as connection:
        launched_at = connection.execute(text("SELECT now()")).scalar_one()
    process = _launch(settings, args, log)
    started = time.monotonic()
    parquet_seen = None
    while process.poll() is None and time.monotonic() - started < 900:  # generous: a busy 2-core machine
        if phase == "start":
            reached = time.monotonic() - started >= value
        elif phase == "parquet":
            if parquet_seen is None and _parquet_being_written(settings):
                parquet_seen = time.monotonic()
            reached = parquet_seen is not None and time.monotonic() - parquet_seen >= value
        else:  # n batches committed and the next one's transaction open: killed in the middle of a load
            reached = (
                count(settings, "SELECT count(*) FROM batch_load WHERE loaded_at >= :t", t=launched_at) >= value
                and count(settings, _OPEN_TRANSACTIONS) > 0
            )
        if reached:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, (
        f"the job ended ({process.returncode}) before the kill point {point}: {log.read_text(errors='replace')[-2000:]}"
    )


def killed_and_rerun(etl_home: Settings, seed: int, kills: int, start_day: str) -> str:
    settings = etl_home
    batches = simulated(settings, start_day, BATCHES)
    batch_ids = [b["batch_id"] for b in batches]
    expected = sum(b["rows"] for b in batches)
    args = etl_args(settings, batches)
    log = settings.home / f"etl-kills-{seed}.log"
    points = kill_points(seed, kills)
    for point in points:
        kill_at(settings, args, point, log)
        assert_whole_batches(settings, batch_ids)  # whole batches or nothing after every kill

    _launch(settings, args, log).wait(timeout=900)
    final = accounting(settings, batch_ids)
    assert len(final) == BATCHES and final["rows_in"].sum() == final["rows_loaded"].sum() == expected
    assert final["rows_quarantined"].sum() == final["duplicates_dropped"].sum() == 0  # its own rows are not duplicates
    assert_whole_batches(settings, batch_ids)
    trans_nums = tuple(
        pd.concat(
            [
                pd.DataFrame(
                    json.loads(line)
                    for line in gzip.decompress(
                        object_store(settings, settings.raw_bucket).get_bytes(b["transactions_key"])
                    ).splitlines()
                )
                for b in batches
            ]
        )["trans_num"]
    )
    labels = expected - sum(b["unlabelled_frauds"] for b in batches)  # the simulator never labels a few frauds
    assert (
        count(settings, "SELECT count(*) FROM transaction_label WHERE trans_num = ANY(:t)", t=list(trans_nums))
        == labels
    )
    assert (
        count(settings, "SELECT count(*) FROM transaction_features WHERE trans_num = ANY(:t)", t=list(trans_nums))
        == expected
    )
    parquet = curated(settings, batch_ids)
    assert len(parquet) == parquet["trans_num"].nunique() == expected  # nothing doubled in the curated zone either
    phases = ", ".join(
        f"{phase} {value:.2f}s" if phase != "load" else f"after batch {int(value)}" for phase, value in points
    )
    return f"{kills} SIGKILLs (seed {seed}: {phases}), then a rerun: {expected:,} rows, 0 lost, 0 doubled"


def test_killed_at_random_points_then_rerun(etl_home):
    figure(
        "tests/reliability/test_etl_faults.py::test_killed_at_random_points_then_rerun",
        killed_and_rerun(etl_home, seed=11, kills=3, start_day="2026-02-01"),
    )


@pytest.mark.soak
def test_killed_at_many_random_points_then_rerun(etl_home):
    figure(
        "tests/reliability/test_etl_faults.py::test_killed_at_many_random_points_then_rerun",
        killed_and_rerun(etl_home, seed=29, kills=12, start_day="2026-04-01"),
    )


# --- a batch delivered twice -----------------------------------------------------------------------------------


def _rows(data: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def test_a_batch_delivered_twice(etl_home):
    settings = etl_home
    batches = simulated(settings, "2026-03-01", 2)
    original, rows = batches[0], batches[0]["rows"]
    ids = [b["batch_id"] for b in batches]
    run_etl(settings, etl_args(settings, batches))
    before = accounting(settings, ids)
    assert before.loc[original["batch_id"], "rows_loaded"] == rows

    raw = object_store(settings, settings.raw_bucket)
    data = raw.get_bytes(original["transactions_key"])

    def under(suffix: str, payload: bytes) -> str:
        key = original["transactions_key"].replace(original["batch_id"], original["batch_id"] + suffix)
        raw.put_bytes(key, payload)
        return key

    # in one run: the same object rewritten under its batch id (a retried upload), the same rows under a new
    # batch id (a producer that re-sent them), and 3 of them changed under their loaded trans_nums
    raw.put_bytes(original["transactions_key"], data)
    resent = under("-resent", data)
    changed = under(
        "-changed",
        gzip.compress(
            "".join(json.dumps({**r, "amt": str(float(r["amt"]) + 1)}) + "\n" for r in _rows(data)[:3]).encode()
        ),
    )
    again = run_etl(settings, etl_args(settings, [original], keys=[original["transactions_key"], resent, changed]))
    after = accounting(settings, ids + [original["batch_id"] + "-resent", original["batch_id"] + "-changed"])
    assert after.loc[original["batch_id"], ["rows_loaded", "duplicates_dropped", "in_fact"]].tolist() == [rows, 0, rows]
    assert after.loc[original["batch_id"] + "-resent", ["rows_loaded", "duplicates_dropped", "in_fact"]].tolist() == [
        0,
        rows,
        0,
    ]
    assert after.loc[original["batch_id"] + "-changed", ["rows_loaded", "rows_quarantined", "in_fact"]].tolist() == [
        0,
        3,
        0,
    ]
    assert again["quarantine_reasons"] == {"conflicting_duplicate_trans_num": 3}

    # the re-sent batch alone, the batch that loaded its rows not in the run: still every row a duplicate
    alone = run_etl(settings, etl_args(settings, [original], keys=[resent]))
    assert (alone["rows_in"], alone["rows_loaded"], alone["duplicates_dropped"]) == (rows, 0, rows)
    assert_whole_batches(settings, list(after.index))
    assert count(
        settings, "SELECT count(*) FROM fact_transaction WHERE batch_id = ANY(:ids)", ids=list(after.index)
    ) == sum(b["rows"] for b in batches)
    parquet = curated(settings, list(after.index))
    assert len(parquet) == parquet["trans_num"].nunique() == sum(b["rows"] for b in batches)  # the curated zone too
    figure(
        "tests/reliability/test_etl_faults.py::test_a_batch_delivered_twice",
        f"a {rows:,}-row batch rewritten under its id and re-sent under a new id (with it, then alone): "
        f"{rows:,} rows loaded once, {rows:,} duplicates each time, 0 doubled; 3 changed rows: quarantined",
    )


# --- a partial object in the raw zone --------------------------------------------------------------------------


def test_a_partial_object_in_the_raw_zone(etl_home):
    settings = etl_home
    batches = simulated(settings, "2026-03-10", 3)
    raw = object_store(settings, settings.raw_bucket)
    partial, label = batches[1], batches[0]["labels_keys"][0]
    whole, whole_label = raw.get_bytes(partial["transactions_key"]), raw.get_bytes(label)
    raw.put_bytes(partial["transactions_key"], whole[: len(whole) * 2 // 3])  # an upload cut off
    raw.put_bytes(label, whole_label[:40])  # a label batch too

    summary = run_etl(settings, etl_args(settings, batches))
    assert sorted(summary["corrupt_objects"]) == sorted([partial["transactions_key"], label])
    assert all("EOFError" in error for error in summary["corrupt_objects"].values())
    others = [b for b in batches if b is not partial]
    assert summary["rows_loaded"] == sum(b["rows"] for b in others)  # the other batches are unaffected
    ids = [b["batch_id"] for b in batches]
    assert partial["batch_id"] not in accounting(settings, ids).index  # nothing of it loaded, not even a part
    assert count(settings, "SELECT count(*) FROM fact_transaction WHERE batch_id = :b", b=partial["batch_id"]) == 0
    record = json.loads(raw.get_bytes(f"quarantine/objects/{partial['batch_id']}.json"))
    assert record["key"] == partial["transactions_key"] and record["reason"] == "corrupt_object"
    assert raw.exists(partial["transactions_key"])  # kept in the raw zone: nothing lost

    # once the objects are whole again, a rerun loads the batch exactly, and nothing else changes
    raw.put_bytes(partial["transactions_key"], whole)
    raw.put_bytes(label, whole_label)
    rerun = run_etl(settings, etl_args(settings, batches))
    assert rerun["corrupt_objects"] == {} and rerun["rows_loaded"] == sum(b["rows"] for b in batches)
    assert_whole_batches(settings, ids)
    assert accounting(settings, ids)["in_fact"].tolist() == [
        b["rows"] for b in sorted(batches, key=lambda b: b["batch_id"])
    ]
    labelled = count(
        settings,
        "SELECT count(*) FROM transaction_label l JOIN fact_transaction t USING (trans_num) "
        "WHERE t.batch_id = ANY(:ids)",
        ids=ids,
    )
    assert labelled == sum(b["rows"] - b["unlabelled_frauds"] for b in batches)
    figure(
        "tests/reliability/test_etl_faults.py::test_a_partial_object_in_the_raw_zone",
        f"a transaction batch cut at 2/3 and a label batch cut at 40 bytes: both set aside whole, "
        f"{summary['rows_loaded']:,} rows of the other batches loaded; "
        f"whole again: {partial['rows']:,} rows loaded once",
    )
