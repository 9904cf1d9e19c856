"""Reading and writing the raw zone: transaction and label batches as gzipped JSON lines."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from fraud.core.schema import batch_id_of, encode_jsonl_gz, labels_key, transactions_key
from fraud.core.storage import ObjectStore, StoredObject


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: v for k, v in row.items() if v is not None and v == v} for row in frame.to_dict("records")]


def write_transactions(store: ObjectStore, batch_id: str, frame: pd.DataFrame, event_hour: datetime) -> str:
    key = transactions_key(event_hour, batch_id)
    store.put_bytes(key, encode_jsonl_gz(_records(frame)), "application/gzip")
    return key


def write_labels(store: ObjectStore, batch_id: str, frame: pd.DataFrame, day: datetime) -> str:
    key = labels_key(day, batch_id)
    store.put_bytes(key, encode_jsonl_gz(_records(frame)), "application/gzip")
    return key


def transaction_keys(store: ObjectStore) -> list[str]:
    return [k for k in store.list_keys("transactions/") if k.endswith(".jsonl.gz")]


def label_keys(store: ObjectStore) -> list[str]:
    return [k for k in store.list_keys("labels/") if k.endswith(".jsonl.gz")]


def transaction_objects(store: ObjectStore) -> list[StoredObject]:
    """Transaction batches with their arrival times (for the raw-batch sensor)."""
    return [o for o in store.list_objects("transactions/") if o.key.endswith(".jsonl.gz")]


def label_objects(store: ObjectStore) -> list[StoredObject]:
    return [o for o in store.list_objects("labels/") if o.key.endswith(".jsonl.gz")]


def batch_ids(keys: list[str]) -> list[str]:
    return [batch_id_of(k) for k in keys]
