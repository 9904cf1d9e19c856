import pandas as pd
import pytest

from fraud.core.schema import decode_jsonl_gz
from fraud.core.storage import object_store
from lambdas.generator.handler import handler as generate


@pytest.fixture(scope="session")
def first_loaded_simulation(settings, engine):
    """Three simulated days (with their labels) through the Glue job into the session's database."""
    from glue.process_transactions import run

    small = settings.model_copy(update={"sim_customers": 200, "sim_fraud_rate": 0.05})
    generated = generate({"start_day": "2026-05-01", "days": 3}, settings=small)
    raw = object_store(settings, settings.raw_bucket)
    keys = [b["transactions_key"] for b in generated["batches"]]
    label_keys = [k for b in generated["batches"] for k in b["labels_keys"]]
    run(
        {
            "raw_uri": raw.uri(),
            "processed_uri": object_store(settings, settings.processed_bucket).uri(),
            "transactions_keys": ",".join(keys),
            "labels_keys": ",".join(label_keys),
        },
        settings,
        report=lambda s: None,
    )
    labels = pd.DataFrame([row for key in label_keys for row in decode_jsonl_gz(raw.get_bytes(key))])
    labels["is_fraud"] = labels["is_fraud"].astype(bool)
    return engine, labels[["trans_num", "is_fraud", "labelled_at"]]
