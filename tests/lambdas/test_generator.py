"""The generator Lambda against a moto S3 server on 127.0.0.1 (aws mode) and on the local folder store."""
import boto3

from fraud.schema import decode_jsonl_gz
from fraud.settings import Settings
from fraud.storage import object_store
from lambdas.generator.handler import handler

WINDOW = {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T12:00:00Z", "customers": 300, "seed": 5}


def test_window_batch_into_s3(moto_endpoint, aws_credentials, tmp_path):
    settings = Settings(mode="aws", s3_endpoint_url=moto_endpoint, raw_bucket="gen-raw", home=tmp_path)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket="gen-raw")
    result = handler(WINDOW, None, settings=settings)
    [batch] = result["batches"]
    assert batch["batch_id"] == "sim-5-20260302T1000-20260302T1200"
    assert batch["transactions_key"] == f"transactions/dt=2026-03-02/hour=10/{batch['batch_id']}.jsonl.gz"
    assert batch["labels_key"] == f"labels/dt=2026-03-04/{batch['batch_id']}.jsonl.gz"
    store = object_store(settings, "gen-raw")
    rows = decode_jsonl_gz(store.get_bytes(batch["transactions_key"]))
    labels = decode_jsonl_gz(store.get_bytes(batch["labels_key"]))
    assert len(rows) == len(labels) == batch["rows"] > 0
    assert all("is_fraud" not in row for row in rows)
    assert all("2026-03-02 10:00:00" <= row["trans_date_trans_time"] < "2026-03-02 12:00:00" for row in rows)
    assert sum(label["is_fraud"] for label in labels) == batch["frauds"]

    # idempotent per batch id: a redelivered event rewrites identical objects and adds none
    keys = store.list_keys()
    before = {k: store.get_bytes(k) for k in keys}
    assert handler(WINDOW, None, settings=settings)["batches"][0]["batch_id"] == batch["batch_id"]
    assert {k: store.get_bytes(k) for k in store.list_keys()} == before


def test_world_is_reused_between_invocations(tmp_path):
    settings = Settings(home=tmp_path)
    handler(WINDOW, None, settings=settings)
    world_keys = object_store(settings, settings.raw_bucket).list_keys("simulator/world/")
    assert len(world_keys) == 2
    stamp = [(tmp_path / "s3" / settings.raw_bucket / k).stat().st_mtime_ns for k in world_keys]
    handler({**WINDOW, "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T13:00:00Z"}, None, settings=settings)
    assert [(tmp_path / "s3" / settings.raw_bucket / k).stat().st_mtime_ns for k in world_keys] == stamp


def test_daily_batches_for_the_demo(tmp_path):
    settings = Settings(home=tmp_path, sim_customers=100)
    result = handler({"start_day": "2026-03-01", "days": 3}, None, settings=settings)
    assert [b["batch_id"] for b in result["batches"]] == [
        "sim-7-20260301T0000-20260302T0000", "sim-7-20260302T0000-20260303T0000", "sim-7-20260303T0000-20260304T0000"]
