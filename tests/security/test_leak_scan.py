"""The leak scan (tests/helpers/leak_scan.py) cannot be fooled: a card number planted in each form it can be
written in, and in each place the platform writes past the raw zone, is found where it was planted; numbers the
platform writes that are not card numbers (hex trans_nums and tokens, timestamps, amounts, MIME boundaries,
Keras's object ids) are not."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
from email.message import EmailMessage

import pandas as pd
import pytest
from sqlalchemy import text

from tests.helpers.homes import own_migrated_home
from tests.helpers.leak_scan import cards_in, cards_in_data, cards_in_files, leaks_after_run, spark_local_dirs

CARD = "4539148803436467"  # Luhn-valid, no long repeats (a compressor would not split it)
AMEX = "378282246310005"
FORMS = {
    "contiguous": CARD,
    "spaces": "4539 1488 0343 6467",
    "dashes": "4539-1488-0343-6467",
    "dots": "4539.1488.0343.6467",
    "spaces and dashes": "4539 1488-0343 6467",
    "no-break spaces": "4539\u00a01488\u00a00343\u00a06467",
    "float": "4.539148803436467e+15",
    "float, capital E": "4.539148803436467E15",
    "float with a fraction": "4539148803436467.0",
    "thousands": "4 539 148 803 436 467",
}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_is_found(form, tmp_path):
    path = tmp_path / "note.txt"
    path.write_text(f"customer wrote: {FORMS[form]}, thanks\n")
    assert cards_in_files([path]) == {str(path): [CARD]}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_found(encoding):
    assert cards_in_data(f"card {FORMS['spaces']}".encode(encoding), "note.txt") == {"note.txt": [CARD]}


def test_amex_grouping_and_a_planted_number_that_fails_luhn():
    assert cards_in("amex 3782 822463 10005") == [AMEX]
    seeded = "4111111111111112"  # the seed's numbers lost digits: many fail Luhn, the scan is told them
    assert cards_in(f"x {seeded} y") == [] and cards_in(f"x {seeded} y", known={seeded}) == [seeded]
    assert cards_in("4111-1111-1111-1112", known={seeded}) == [seeded]


NOT_CARDS = {
    "trans_num": "44dd5367796d62495017740374312f",
    "card token": f"2eb0e{CARD[1:]}fc9a1b2",  # hex around the digits, as a token could be
    "a float's fraction": "0.4539148803436467",
    "a timestamp": "2026-12-05 09:08:28.123456+00",
    "an epoch with microseconds": "1764925708.123456",
    "amounts": "1234.5678 9012.3456 12.50",
    "a date range": "2019-01-01 - 2019-12-31",
    "a part of a longer number": "45391488034364671",
    "a MIME boundary": 'Content-Type: multipart/alternative; boundary="===============4539148803436467=="',
    "a small float": "4.539148803436467e-05",
}


@pytest.mark.parametrize("case", NOT_CARDS)
def test_what_is_not_a_card_number_is_not_found(case):
    found = cards_in_data(NOT_CARDS[case].encode(), "out.txt")
    if case == "a MIME boundary":  # in a message the boundary is left out; as plain text it is a number
        message = EmailMessage()
        message["To"] = "a@example.com"
        message.set_content("hello")
        message.add_alternative("<p>hello</p>", subtype="html")
        message.set_boundary("===============4539148803436467==")
        found = cards_in_data(bytes(message), "m.eml")
    assert found == {}


def test_keras_object_ids_are_not_found_and_a_card_beside_them_is():
    """Keras names shared objects by their `id()` in config.json (CI met 140704561367184, Luhn-valid)."""
    policy = {"class_name": "DTypePolicy", "config": {"name": "float32"}, "shared_object_id": 140704561367184}
    assert cards_in(json.dumps(policy)) == ["140704561367184"]

    def archive(config: dict) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as out:
            out.writestr("config.json", json.dumps(config))
            out.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
        return buffer.getvalue()

    assert cards_in_data(archive({"layers": [{"dtype": policy}, {"dtype": policy}]}), "model.keras") == {}
    leaked = archive({"layers": [{"dtype": policy, "name": f"card {FORMS['dashes']}"}]})
    assert cards_in_data(leaked, "model.keras") == {"model.keras!config.json": [CARD]}


# --- each place past the raw zone ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home():
    with own_migrated_home("fraud-leakscan-") as (settings, engine):
        yield settings, engine


@pytest.fixture()
def scan(home):
    """Scan the home after the test plants a card, and remove what it planted afterwards."""
    settings, engine = home
    planted = []

    def plant(path, data: bytes):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        planted.append(path)
        return str(path)

    yield settings, engine, plant
    for path in planted:
        path.unlink(missing_ok=True)


@pytest.fixture()
def fresh_home():
    """A home of the test's own, for plants that PostgreSQL also keeps in its files (WAL, heap pages)."""
    with own_migrated_home("fraud-leakscan-") as (settings, engine):
        yield settings, engine


def test_a_clean_home_has_no_leak(fresh_home):
    settings, engine = fresh_home
    assert leaks_after_run(settings, engine) == {}


def test_a_tflite_binary(scan):
    settings, engine, plant = scan
    # a flatbuffer keeps strings (a signature or tensor name) as bytes among the weights
    model = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4 + f"dense_{FORMS['spaces']}".encode() + b"\x00" * 8
    where = plant(settings.store_root / settings.models_bucket / "m" / "v1" / "model.tflite", model)
    assert leaks_after_run(settings, engine) == {where: [CARD]}


def test_a_keras_member(scan):
    settings, engine, plant = scan
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("config.json", json.dumps({"layers": [{"name": f"card_{FORMS['spaces']}"}]}))
        out.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    where = plant(settings.store_root / settings.models_bucket / "m" / "v1" / "model.keras", buffer.getvalue())
    assert leaks_after_run(settings, engine) == {f"{where}!config.json": [CARD]}


def test_a_gzip_member(scan):
    settings, engine, plant = scan
    data = gzip.compress(json.dumps({"cc": FORMS["dots"]}).encode())
    where = plant(settings.store_root / settings.reports_bucket / "export.json.gz", data)
    assert leaks_after_run(settings, engine) == {f"{where}!gunzip": [CARD]}


def test_a_zip_member(scan):
    settings, engine, plant = scan
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("flagged.csv", f"trans_num,cc\nabc,{FORMS['dashes']}\n")
    where = plant(settings.store_root / settings.reports_bucket / "flagged.zip", buffer.getvalue())
    assert leaks_after_run(settings, engine) == {f"{where}!flagged.csv": [CARD]}


@pytest.mark.parametrize("value", [FORMS["spaces"], float(CARD)], ids=["text", "float"])
def test_a_parquet_value(scan, value):
    settings, engine, plant = scan
    frame = pd.DataFrame({"trans_num": ["44dd5367796d62495017740374312f"], "note": [value], "amt": [12.5]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, compression="snappy")
    folder = settings.store_root / settings.processed_bucket / "transactions" / "dt=2026-12-05" / "batch_id=b1"
    where = plant(folder / "part-0.parquet", buffer.getvalue())
    assert leaks_after_run(settings, engine) == {where: [CARD]}


def test_a_quarantined_object_outside_the_raw_zone(scan):
    """Quarantined rows keep cc_num in the raw bucket (allowed there); the same object anywhere else is a leak."""
    settings, engine, plant = scan
    row = gzip.compress(json.dumps({"cc_num": CARD, "reason": "invalid_amount"}).encode() + b"\n")
    key = "quarantine/ingest/batch_id=b1/ingest.jsonl.gz"
    plant(settings.store_root / settings.raw_bucket / key, row)
    assert leaks_after_run(settings, engine) == {}
    where = plant(settings.store_root / settings.processed_bucket / key, row)
    assert leaks_after_run(settings, engine) == {f"{where}!gunzip": [CARD]}


def _message(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "alerts@example.com", "a@example.com", "Your card"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Did you make these payments?")
    message.add_alternative("<p>Did you make these payments?</p>", subtype="html")
    return message


def test_a_mail_header(scan):
    settings, engine, plant = scan
    message = _message(X_Card_Reference=FORMS["dashes"])
    where = plant(settings.outbox_dir / "alert.eml", bytes(message))
    assert leaks_after_run(settings, engine) == {f"{where} header X-Card-Reference": [CARD]}


def test_a_base64_attachment(scan):
    settings, engine, plant = scan
    message = _message()
    message.add_attachment(f"card {CARD}\n".encode(), maintype="application", subtype="octet-stream")
    raw = bytes(message)
    assert base64.b64encode(f"card {CARD}".encode())[:12] in raw  # the card travels base64-encoded
    where = plant(settings.outbox_dir / "alert.eml", raw)
    assert leaks_after_run(settings, engine) == {f"{where} part 4 application/octet-stream": [CARD]}


def test_a_spark_temp_file(scan, spark):
    settings, engine, plant = scan
    files = lambda: {p for d in spark_local_dirs(spark) for p in d.rglob("*") if p.is_file()}  # noqa: E731
    before = files()
    spark.range(1000).repartition(3).count()  # a shuffle: Spark writes its blocks there
    written = files() - before
    assert written
    where = plant(next(iter(written)).parent / "temp_shuffle_planted", f"\x00\x01{FORMS['spaces']}\x00".encode())
    leaks = leaks_after_run(settings, engine, places=spark_local_dirs(spark))
    assert leaks[where] == [CARD]


def test_a_postgresql_server_log_line(fresh_home):
    settings, engine = fresh_home
    with engine.connect() as connection:  # PostgreSQL logs a failing statement with its literal values
        with pytest.raises(Exception, match="invalid input syntax"):
            connection.execute(text(f"SELECT '{FORMS['dashes']}'::bigint"))
    log = settings.pg_dir / "log"
    assert FORMS["dashes"] in log.read_text(errors="replace")
    assert leaks_after_run(settings, engine) == {str(log): [CARD]}


def test_a_dagster_event_log_row_in_the_instance_database(fresh_home):
    from dagster import asset, materialize

    from assets.instance import DAGSTER_DATABASE, local_instance

    settings, engine = fresh_home

    @asset
    def chatty(context):
        context.log.info(f"customer wrote {FORMS['spaces']}")

    instance = local_instance(settings)
    try:
        assert materialize([chatty], instance=instance).success
    finally:
        instance.dispose()
    leaks = leaks_after_run(settings, engine)
    assert leaks[f"database {DAGSTER_DATABASE} table public.event_logs"] == [CARD]


def test_a_table_in_the_platform_database(fresh_home):
    settings, engine = fresh_home
    with engine.begin() as connection:
        connection.execute(text("CREATE SCHEMA staging"))
        connection.execute(text("CREATE TABLE staging.notes (note text, blob bytea)"))
        connection.execute(
            text("INSERT INTO staging.notes VALUES (:note, NULL), ('x', :blob)"),
            {"note": f"card {FORMS['float']}", "blob": gzip.compress(AMEX.encode())},
        )
    leaks = leaks_after_run(settings, engine)
    assert leaks[f"database {engine.url.database} table staging.notes"] == [AMEX, CARD]
