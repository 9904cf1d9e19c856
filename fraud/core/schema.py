"""The raw transaction contract (Sparkov columns) and the raw-zone key layout."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterable
from datetime import datetime

# the cardholder's fields a transaction carries (Sparkov repeats them on every row)
HOLDER_COLUMNS: tuple[str, ...] = (
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
)
RAW_COLUMNS: tuple[str, ...] = (
    "trans_date_trans_time",
    "cc_num",
    "merchant",
    "category",
    "amt",
    *HOLDER_COLUMNS,
    "trans_num",
    "unix_time",
    "merch_lat",
    "merch_long",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("trans_num", "cc_num", "merchant", "amt")
LABEL_COLUMNS: tuple[str, ...] = ("trans_num", "is_fraud", "labelled_at")

CATEGORIES: tuple[str, ...] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)

# Date formats seen in real Sparkov exports; tried in order. Slashed dates are day-first: in the seed files
# `11/12/2019 5:12` sits beside unix_time 1355202743 = 11 December (2012) 05:12, so d/M/yyyy, not M/d/yyyy.
TIMESTAMP_FORMATS: tuple[str, ...] = (
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd HH:mm",
    "d/M/yyyy H:mm",
    "d/M/yyyy H:mm:ss",
    "dd-MM-yyyy HH:mm",
    "dd-MM-yyyy HH:mm:ss",
)
# The same formats for datetime.strptime (pure-Python readers such as fraud.ingest.csv_files), in the same order.
PY_TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
)
DATE_FORMATS: tuple[str, ...] = ("yyyy-MM-dd", "d/M/yyyy", "dd-MM-yyyy")


def transactions_key(event_hour: datetime, batch_id: str) -> str:
    return f"transactions/dt={event_hour:%Y-%m-%d}/hour={event_hour:%H}/{batch_id}.jsonl.gz"


def labels_key(day: datetime, batch_id: str) -> str:
    return f"labels/dt={day:%Y-%m-%d}/{batch_id}.jsonl.gz"


def batch_id_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".jsonl.gz")


def encode_jsonl_gz(rows: Iterable[dict]) -> bytes:
    buffer = io.BytesIO()
    # mtime=0 keeps the bytes deterministic, so rewriting a batch is a no-op
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        for row in rows:
            handle.write(json.dumps(row, separators=(",", ":"), default=str).encode() + b"\n")
    return buffer.getvalue()


def decode_jsonl_gz(data: bytes) -> list[dict]:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
        return [json.loads(line) for line in handle if line.strip()]
