import boto3
import pytest

from fraud.core.settings import Settings
from fraud.core.storage import LocalObjectStore, S3ObjectStore, object_store


def exercise(store):
    store.put_bytes("transactions/dt=2026-11-01/hour=00/b1.jsonl.gz", b"one")
    store.put_bytes("transactions/dt=2026-11-02/hour=00/b2.jsonl.gz", b"two")
    store.put_bytes("labels/dt=2026-11-01/b1.jsonl.gz", b"label")
    assert store.get_bytes("transactions/dt=2026-11-02/hour=00/b2.jsonl.gz") == b"two"
    assert store.list_keys("transactions/") == [
        "transactions/dt=2026-11-01/hour=00/b1.jsonl.gz",
        "transactions/dt=2026-11-02/hour=00/b2.jsonl.gz",
    ]
    assert store.exists("labels/dt=2026-11-01/b1.jsonl.gz")
    assert not store.exists("labels/dt=2026-11-01/b")  # a prefix is not an object
    store.put_bytes("labels/dt=2026-11-01/b1.jsonl.gz", b"relabel")  # overwrite
    assert store.get_bytes("labels/dt=2026-11-01/b1.jsonl.gz") == b"relabel"
    store.delete("labels/dt=2026-11-01/b1.jsonl.gz")
    assert not store.exists("labels/dt=2026-11-01/b1.jsonl.gz")
    with pytest.raises(KeyError):
        store.get_bytes("missing")


def test_local_store_lays_out_keys_like_s3(tmp_path):
    store = LocalObjectStore(tmp_path, "fraud-raw")
    exercise(store)
    assert (
        tmp_path / "fraud-raw" / "transactions" / "dt=2026-11-01" / "hour=00" / "b1.jsonl.gz"
    ).read_bytes() == b"one"


def test_local_store_refuses_keys_outside_the_bucket(tmp_path):
    with pytest.raises(ValueError):
        LocalObjectStore(tmp_path, "fraud-raw").put_bytes("../escape", b"x")


def test_s3_store_against_moto_server(moto_endpoint, aws_credentials):
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="fraud-raw")
    exercise(S3ObjectStore("fraud-raw", client))
    assert S3ObjectStore("fraud-raw", client).uri("a/b") == "s3://fraud-raw/a/b"


def test_aws_mode_settings_give_an_s3_store(moto_endpoint, aws_credentials):
    settings = Settings(mode="aws", s3_endpoint_url=moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket="fraud-models")
    store = object_store(settings, "fraud-models")
    assert isinstance(store, S3ObjectStore)
    store.put_bytes("fraud-mlp/LATEST", b"m-1")
    assert store.get_bytes("fraud-mlp/LATEST") == b"m-1"


def test_s3_listing_pages_past_1000_keys(moto_endpoint, aws_credentials):
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="many")
    store = S3ObjectStore("many", client)
    for i in range(1005):
        store.put_bytes(f"k/{i:05d}", b"")
    assert len(store.list_keys("k/")) == 1005


def test_listings_carry_arrival_times(moto_endpoint, aws_credentials, tmp_path):
    import time

    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="arrivals")
    for store in (LocalObjectStore(tmp_path, "arrivals"), S3ObjectStore("arrivals", client)):
        before = time.time()
        store.put_bytes("transactions/dt=2026-11-02/hour=00/b.jsonl.gz", b"x")
        store.put_bytes("transactions/dt=2026-11-01/hour=00/a.jsonl.gz", b"y")
        listed = store.list_objects("transactions/")
        assert [o.key for o in listed] == store.list_keys("transactions/") == sorted(o.key for o in listed)
        # S3 stamps whole seconds
        assert all(before - 1 <= o.last_modified <= time.time() + 1 for o in listed)
