"""The seed file through `fraud ingest` and the Glue job: every row accounted for, and no card number (by the
file's own numbers and by a Luhn scan) in the curated Parquet or any database table afterwards."""

import csv

import pytest
from sqlalchemy import text

from fraud.core.privacy import normalize_card_number
from fraud.core.storage import object_store
from fraud.ingest.csv_files import ingest_csv
from tests.helpers.homes import SEED_DIR
from tests.helpers.leak_scan import cards_in_databases, cards_in_files

SEED = SEED_DIR / "training_df.csv"


@pytest.mark.skipif(not SEED.exists(), reason=f"seed data not found at {SEED}")
def test_seed_file_through_ingest_and_etl(settings, engine):
    from glue.process_transactions import run

    summary = ingest_csv(SEED, settings)
    assert summary.rows_read == summary.accepted + summary.quarantined + summary.duplicates == 14_000
    raw = object_store(settings, settings.raw_bucket)
    result = run(
        {
            "raw_uri": raw.uri(),
            "processed_uri": object_store(settings, settings.processed_bucket).uri(),
            "transactions_keys": summary.transactions_key,
            "labels_keys": summary.labels_key,
        },
        settings,
        report=lambda s: None,
    )
    assert (
        result["rows_in"]
        == summary.accepted
        == result["rows_loaded"] + result["rows_quarantined"] + result["duplicates_dropped"]
    )
    with engine.connect() as connection:
        loaded = connection.execute(
            text("SELECT count(*) FROM fact_transaction WHERE batch_id = :b"), {"b": summary.batch_id}
        ).scalar_one()
        frauds = connection.execute(
            text(
                "SELECT count(*) FROM transaction_label l JOIN fact_transaction t USING (trans_num) "
                "WHERE t.batch_id = :b AND l.is_fraud"
            ),
            {"b": summary.batch_id},
        ).scalar_one()
    assert loaded == result["rows_loaded"] and frauds == 70

    with SEED.open(newline="") as handle:
        cards = {normalize_card_number(row["cc_num"]) for row in csv.DictReader(handle)} - {None}
    assert cards_in_files([settings.store_root / settings.processed_bucket], known=cards) == {}
    assert cards_in_databases(engine, known=cards) == {}
