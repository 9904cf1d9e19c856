"""The Glue job on local Spark (in-process, one session): validation, quarantine, row accounting, point-in-time
features, tokenization and idempotent loading into the real PostgreSQL."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from sqlalchemy import text

from fraud.core.storage import object_store
from fraud.features.catalog import FEATURE_NAMES

CARD = "4111111111111111"
BASE = {
    "merchant": "fraud_Kirlin and Sons",
    "category": "shopping_net",
    "first": "Ann",
    "last": "O'Neil",
    "gender": "F",
    "street": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "zip": "62701",
    "lat": "39.78",
    "long": "-89.65",
    "city_pop": "116250",
    "job": "Nurse",
    "dob": "1980-05-01",
    "merch_lat": "39.9",
    "merch_long": "-89.5",
}


def row(trans_num, when, amt, cc=CARD, **extra):
    return {**BASE, "trans_num": trans_num, "trans_date_trans_time": when, "amt": amt, "cc_num": cc, **extra}


@pytest.fixture(scope="module")
def messy_batch(settings):
    rows = [
        row("t1", "2026-11-01 10:00:00", "10.00"),
        row("t2", "2026-11-01 10:30:00", "20.00"),
        row("t3", "1/11/2026 12:00", "30.00", cc="4.111111111111111E+15"),  # float-written card, day-first slashed date
        row("t4", "01-11-2026 13:00", "40.00"),  # day-first date
        row("t5", "2026-11-01 14:00:00", "abc"),  # bad amount
        row("", "2026-11-01 14:00:00", "5.00"),  # no trans_num
        row("t7", "not a date", "5.00"),  # no usable time
        row("t8", "2026-11-01 15:00:00", "5.00", cc="12"),  # not a card number
        row("t1", "2026-11-01 16:00:00", "99.00"),  # same trans_num, other content
    ]
    lines = [json.dumps(r) for r in rows] + [json.dumps(rows[1]), "{not json"]  # exact duplicate, broken line
    store = object_store(settings, settings.raw_bucket)
    key = "transactions/dt=2026-11-01/hour=10/messy-1.jsonl.gz"
    store.put_bytes(key, gzip.compress(("\n".join(lines) + "\n").encode()))
    labels_key = "labels/dt=2026-11-03/messy-1.jsonl.gz"
    store.put_bytes(
        labels_key,
        gzip.compress(json.dumps({"trans_num": "t2", "is_fraud": 1, "labelled_at": "2026-11-03 00:00:00"}).encode()),
    )
    return {
        "raw_uri": store.uri(),
        "processed_uri": object_store(settings, settings.processed_bucket).uri(),
        "transactions_keys": key,
        "labels_keys": labels_key,
    }


@pytest.fixture(scope="module")
def first_run(messy_batch, settings, engine):
    from glue.process_transactions import run

    return run(messy_batch, settings, report=lambda summary: None)


def test_every_row_is_accounted_for(first_run):
    assert first_run["rows_in"] == 11
    assert first_run["duplicates_dropped"] == 1
    assert first_run["rows_loaded"] == 4
    assert first_run["rows_quarantined"] == 6
    assert first_run["quarantine_reasons"] == {
        "malformed_json": 1,
        "invalid_amount": 1,
        "missing_trans_num": 1,
        "invalid_timestamp": 1,
        "invalid_card_number": 1,
        "conflicting_duplicate_trans_num": 1,
    }


def test_quarantine_keeps_rows_with_reasons_in_the_raw_zone(first_run, settings):
    folder = settings.store_root / settings.raw_bucket / "quarantine" / "etl" / "batch_id=messy-1"
    quarantined = [json.loads(line) for path in folder.glob("*.json") for line in path.read_text().splitlines()]
    assert len(quarantined) == 6 and all(q["quarantine_reason"] for q in quarantined)


def test_loaded_rows_are_tokenized_and_point_in_time(first_run, engine, settings):
    with engine.connect() as connection:
        facts = pd.read_sql(
            text(
                "SELECT trans_num, card_token, amount FROM fact_transaction "
                "WHERE batch_id = 'messy-1' ORDER BY trans_num"
            ),
            connection,
        )
        features = pd.read_sql(
            text(
                "SELECT trans_num, values FROM transaction_features "
                "WHERE trans_num IN ('t1','t2','t3','t4') ORDER BY trans_num"
            ),
            connection,
        )
        label = connection.execute(text("SELECT is_fraud FROM transaction_label WHERE trans_num = 't2'")).scalar_one()
        card = connection.execute(
            text("SELECT last4, last_name FROM dim_card WHERE card_token = :t"), {"t": facts.card_token[0]}
        ).one()
    assert list(facts.trans_num) == ["t1", "t2", "t3", "t4"]
    assert facts.card_token.nunique() == 1 and CARD not in facts.card_token[0]  # float-written card is the same card
    assert card == ("1111", "O'Neil") and label is True
    count_1d = {r.trans_num: r.values[FEATURE_NAMES.index("card_count_1d")] for r in features.itertuples()}
    mean_7d = {r.trans_num: r.values[FEATURE_NAMES.index("card_mean_amt_7d")] for r in features.itertuples()}
    # strictly before: t1 sees nothing, t2 sees t1, t4 sees t1..t3
    assert count_1d == {"t1": 0, "t2": 1, "t3": 2, "t4": 3}
    assert mean_7d["t4"] == pytest.approx(20.0)


def test_no_raw_card_number_in_the_processed_zone(first_run, settings):
    processed = settings.store_root / settings.processed_bucket
    for path in processed.rglob("*.parquet"):
        assert CARD.encode() not in path.read_bytes()
    frame = pd.read_parquet(processed / "transactions")
    assert "cc_num" not in frame.columns and (frame.astype(str) != CARD).all().all()


def test_rerunning_the_batch_changes_nothing(first_run, messy_batch, settings):
    from glue.process_transactions import run

    again = run(messy_batch, settings, report=lambda summary: None)
    assert set(again["rows_gained"].values()) == {0}
    assert again["rows_loaded"] == first_run["rows_loaded"]


def test_a_batch_bigger_than_a_load_chunk_loads_whole(first_run, messy_batch, settings, engine, monkeypatch):
    import glue.process_transactions as job

    rows = [row(f"c{i}", f"2026-11-02 {10 + i}:00:00", f"{i + 1}.00") for i in range(7)]
    key = "transactions/dt=2026-11-02/hour=10/chunked-1.jsonl.gz"
    object_store(settings, settings.raw_bucket).put_bytes(
        key, gzip.compress("\n".join(json.dumps(r) for r in rows).encode())
    )
    fetched = []
    original_load = job.load_processed

    def counting(engine, transactions, labels, accounting):  # the chunks as the loader receives them
        def tables():
            for table in transactions:
                fetched.append(table.num_rows)
                yield table

        return original_load(engine, tables(), labels, accounting)

    monkeypatch.setattr(job, "LOAD_CHUNK_ROWS", 2)
    monkeypatch.setattr(job, "load_processed", counting)
    summary = job.run(
        {**messy_batch, "transactions_keys": key, "labels_keys": ""}, settings, report=lambda summary: None
    )
    assert len(fetched) == 4 and sum(fetched) == 7  # ceil(7 / 2) chunks, every row in one of them
    assert summary["rows_loaded"] == 7 and summary["rows_gained"]["fact_transaction"] == 7
    with engine.connect() as connection:
        loaded = connection.execute(
            text("SELECT count(*) FROM fact_transaction WHERE batch_id = 'chunked-1'")
        ).scalar_one()
    assert loaded == 7


def test_a_chunk_that_fails_leaves_nothing_of_its_batch(first_run, settings, engine):
    from fraud.db.load import PROCESSED_COLUMNS, BatchAccounting, load_processed

    curated = pd.read_parquet(settings.store_root / settings.processed_bucket / "transactions").head(1)
    processed = curated.assign(
        features=[list(curated[list(FEATURE_NAMES)].iloc[0])], trans_num="broken-1", batch_id="broken"
    )[list(PROCESSED_COLUMNS)]

    def chunks():  # the first chunk is COPY'd, then fetching the second one fails
        yield processed
        raise RuntimeError("the connection to Spark dropped")

    with pytest.raises(RuntimeError, match="dropped"):
        load_processed(
            engine,
            chunks(),
            pd.DataFrame(columns=["trans_num", "is_fraud", "labelled_at"]),
            [BatchAccounting("broken", "test/broken", 2, 2, 0, 0)],
        )
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM fact_transaction WHERE batch_id = 'broken'")).scalar_one()
            == 0
        )
        assert connection.execute(text("SELECT count(*) FROM batch_load WHERE batch_id = 'broken'")).scalar_one() == 0


def test_batches_load_at_once_each_in_its_own_transaction(monkeypatch):
    import threading

    import glue.process_transactions as job
    from fraud.db.load import BatchAccounting

    both_loading = threading.Barrier(2, timeout=10)  # breaks (and fails the test) unless two loads overlap
    transactions = {}

    def load(engine, chunks, labels, accounting):
        both_loading.wait()
        transactions[accounting[0].batch_id] = [len(chunk) for chunk in chunks]
        return {"fact_transaction": sum(transactions[accounting[0].batch_id])}

    monkeypatch.setattr(job, "load_processed", load)
    batches = [BatchAccounting(f"b{i}", f"k{i}", i + 1, i + 1, 0, 0) for i in range(4)]
    gained = job.load_batches(None, batches, lambda item: [[0] * item.rows_loaded], connections=2)
    assert transactions == {"b0": [1], "b1": [2], "b2": [3], "b3": [4]}  # one load call (transaction) per batch
    assert gained["fact_transaction"] == 10
