"""One leak scan for every place a card number must not reach past the raw zone: the curated Parquet, every
database table, reports and model files, the emails as a customer reads them, and logs. Built on
`fraud.core.privacy.card_numbers_in` (13-19-digit runs that pass the Luhn check)."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from fraud.core.privacy import card_numbers_in
from fraud.core.settings import Settings
from tests.helpers.homes import table_dumps

_STANDALONE_NUMBER = re.compile(r"(?<![\w.])\d{12,19}(?!\w)")


def known_cards_in(text: str, cards: set[str]) -> set[str]:
    """The given card numbers standing alone in the text. A substring test is not enough: a float's fraction
    (61.447500000000005) and a hex trans_num hold digit runs that contain some of the seed's numbers. And those
    numbers lost digits (many fail Luhn), so `card_numbers_in` alone misses them."""
    return set(_STANDALONE_NUMBER.findall(text)) & cards


def in_parquet(folder: Path) -> list[str]:
    return card_numbers_in(pd.read_parquet(folder).to_csv()) if folder.exists() else []


def in_tables(engine: Engine) -> dict[str, list[str]]:
    return {table: found for table, dump in table_dumps(engine).items() if (found := card_numbers_in(dump))}


def readable(path: Path) -> str:
    """A stored file as its reader sees it. Compressed bytes are not text: a Snappy page of Parquet splits a hex
    trans_num such as 44dd5367796...d62495017740374312f at a back-reference and leaves a lone, Luhn-valid run of
    16 digits, so Parquet is read as its rows and gzip is decompressed before the scan."""
    if path.suffix == ".eml":  # what the customer reads (MIME boundaries are random digits)
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        return "\n".join(
            [str(message["Subject"]), str(message["To"])]
            + [part.get_content() for part in message.walk() if part.get_content_maintype() == "text"]
        )
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_csv()
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        return _keras_archive(path)
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8", errors="ignore")


def _keras_archive(path: Path) -> str:
    """A saved Keras model's members. Its config.json names each object shared between layers by the process
    memory address Keras gave it (`"shared_object_id": 140704561367184`, a Python `id()`), and one in ten of those
    passes the Luhn check; they are dropped, and everything else in the archive is kept for the scan."""

    def without_ids(value):
        if isinstance(value, dict):
            return {key: without_ids(item) for key, item in value.items() if key != "shared_object_id"}
        return [without_ids(item) for item in value] if isinstance(value, list) else value

    with zipfile.ZipFile(path) as archive:
        return "\n".join(
            json.dumps(without_ids(json.loads(archive.read(name))))
            if name.endswith(".json")
            else archive.read(name).decode("utf-8", errors="ignore")
            for name in archive.namelist()
        )


def in_files(paths: Iterable[Path]) -> dict[str, list[str]]:
    return {str(path): found for path in paths if path.is_file() and (found := card_numbers_in(readable(path)))}


def in_logs(paths: Iterable[Path]) -> dict[str, list[str]]:
    """Logs also print process memory addresses in decimal (TensorFlow's "Captures: 140267114062736: TensorSpec"),
    and one in ten passes the Luhn check: there, only numbers that start like a card network's (2-6) count."""
    return {
        path: found for path, numbers in in_files(paths).items() if (found := [n for n in numbers if n[0] in "23456"])
    }


def leaks_after_run(settings: Settings, engine: Engine, logs: Iterable[Path] = ()) -> dict[str, list[str]]:
    """Card numbers found after a run, by place ({} when there are none): curated Parquet, each table, the
    reports and models buckets (HTML, CSV, JSON), the outbox, and the given log files."""
    found = {}
    if parquet := in_parquet(settings.store_root / settings.processed_bucket / "transactions"):
        found["curated parquet"] = parquet
    found.update({f"table {table}": numbers for table, numbers in in_tables(engine).items()})
    outputs = [
        path
        for bucket in (settings.reports_bucket, settings.models_bucket)
        for path in (settings.store_root / bucket).rglob("*")
        if path.suffix in {".html", ".csv", ".json"}
    ]
    found.update(in_files(outputs + sorted(settings.outbox_dir.glob("*.eml"))))
    found.update(in_logs(logs))
    return found
