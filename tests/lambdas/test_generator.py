"""The generator Lambda against a moto S3 server on 127.0.0.1 (aws mode) and on the local folder store."""

import json

import boto3
import pytest

from fraud.core.schema import decode_jsonl_gz
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.ingest.generator import BatchConflict, label_timing
from fraud.ingest.simulate import LabelTiming
from lambdas.generator.handler import LISTED_BATCHES_BYTES, figures, handler
from tests.helpers.lambda_standin import pipes_event, pipes_messages

WINDOW = {"start": "2026-03-02T10:00:00Z", "end": "2026-03-02T12:00:00Z", "customers": 300, "seed": 5}


def test_window_batch_into_s3(moto_endpoint, aws_credentials, tmp_path):
    settings = Settings(mode="aws", s3_endpoint_url=moto_endpoint, raw_bucket="gen-raw", home=tmp_path)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket="gen-raw")
    result = handler(WINDOW, None, settings=settings)
    [batch] = result["batches"]
    assert batch["batch_id"].startswith("sim-5-c300-") and batch["batch_id"].endswith("-20260302T1000-20260302T1200")
    assert batch["transactions_key"] == f"transactions/dt=2026-03-02/hour=10/{batch['batch_id']}.jsonl.gz"
    # genuine labels mature two days later; fraud labels land under the days they become known
    assert f"labels/dt=2026-03-04/{batch['batch_id']}.jsonl.gz" in batch["labels_keys"]
    assert all(
        k.startswith("labels/dt=") and k.endswith(f"/{batch['batch_id']}.jsonl.gz") for k in batch["labels_keys"]
    )
    store = object_store(settings, "gen-raw")
    rows = decode_jsonl_gz(store.get_bytes(batch["transactions_key"]))
    labels = [label for key in batch["labels_keys"] for label in decode_jsonl_gz(store.get_bytes(key))]
    assert len(rows) == batch["rows"] > 0 and len(labels) + batch["unlabelled_frauds"] == batch["rows"]
    assert all("is_fraud" not in row for row in rows)
    assert all("2026-03-02 10:00:00" <= row["trans_date_trans_time"] < "2026-03-02 12:00:00" for row in rows)
    assert sum(label["is_fraud"] for label in labels) + batch["unlabelled_frauds"] == batch["frauds"]

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
    # the digest is a pure function of the content parameters (here the defaults): stable across processes
    assert [b["batch_id"] for b in result["batches"]] == [
        "sim-7-c100-189ec2e3-20260301T0000-20260302T0000",
        "sim-7-c100-189ec2e3-20260302T0000-20260303T0000",
        "sim-7-c100-189ec2e3-20260303T0000-20260304T0000",
    ]


def test_labels_are_written_under_the_day_they_become_known(tmp_path):
    settings = Settings(home=tmp_path, sim_customers=300, sim_fraud_rate=0.05)
    [batch] = handler({"start_day": "2026-03-01", "days": 1}, None, settings=settings)["batches"]
    store = object_store(settings, settings.raw_bucket)
    days = [key.split("/")[1].removeprefix("dt=") for key in batch["labels_keys"]]
    assert days == sorted(set(days)) and len(days) > 3  # reports within days, chargebacks over weeks
    seen = set()
    for key, day in zip(batch["labels_keys"], days, strict=False):
        labels = decode_jsonl_gz(store.get_bytes(key))
        assert labels and all(label["labelled_at"].startswith(day) for label in labels)
        seen.update(label["trans_num"] for label in labels)
    rows = decode_jsonl_gz(store.get_bytes(batch["transactions_key"]))
    assert len(seen) == len(rows) - batch["unlabelled_frauds"]
    assert sum(batch["scenarios"].values()) == batch["frauds"]


def test_label_timing_from_settings(tmp_path):
    assert label_timing(Settings(home=tmp_path)) == LabelTiming()  # the settings' defaults are LabelTiming's
    assert label_timing(Settings(home=tmp_path, sim_label_timing="constant")) is None
    custom = Settings(home=tmp_path, sim_report_mean_days=1.0, sim_chargeback_days=(10, 20), sim_unlabelled_share=0.1)
    assert label_timing(custom) == LabelTiming(1.0, (10.0, 20.0), 0.1)
    # constant timing: one label object per daily batch, every label at maturity, none missing
    constant = Settings(home=tmp_path, sim_customers=100, sim_label_timing="constant")
    [batch] = handler({"start_day": "2026-03-01", "days": 1}, None, settings=constant)["batches"]
    assert batch["labels_keys"] == [f"labels/dt=2026-03-03/{batch['batch_id']}.jsonl.gz"]
    assert batch["unlabelled_frauds"] == 0


def test_rewriting_a_batch_with_other_content_is_refused(tmp_path):
    settings = Settings(home=tmp_path, sim_customers=100)
    event = {"start_day": "2026-03-01", "days": 1}
    [batch] = handler(event, None, settings=settings)["batches"]
    store = object_store(settings, settings.raw_bucket)
    key = batch["transactions_key"]
    stamp = (tmp_path / "s3" / settings.raw_bucket / key).stat().st_mtime_ns
    handler(event, None, settings=settings)  # identical content: nothing rewritten, not even the arrival time
    assert (tmp_path / "s3" / settings.raw_bucket / key).stat().st_mtime_ns == stamp
    store.put_bytes(key, b"written by another simulator")
    with pytest.raises(BatchConflict, match=f"{settings.raw_bucket}/{key} already exists with different content"):
        handler(event, None, settings=settings)
    assert store.get_bytes(key) == b"written by another simulator"


def test_invoked_through_pipes_it_reports_its_figures_on_every_warm_invocation(tmp_path, capsys):
    """PipesLambdaClient's event: the figures come back as the asset's materialization, on stderr when the
    session closes; a warm Lambda's second invocation opens a session of its own."""
    settings = Settings(home=tmp_path)
    later = {**WINDOW, "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T13:00:00Z"}
    for event in (WINDOW, later):
        result = handler(pipes_event(event, "raw_transactions"), None, settings=settings)
        log = capsys.readouterr().err
        messages = pipes_messages(log)
        assert [m["method"] for m in messages] == ["opened", "report_asset_materialization", "closed"]
        reported = messages[1]["params"]
        assert reported["asset_key"] == "raw_transactions"
        [batch] = result["batches"]
        assert reported["metadata"]["rows"]["raw_value"] == batch["rows"]
        assert reported["metadata"]["batch_keys"] == {
            "raw_value": [[batch["batch_id"], batch["rows"], batch["frauds"], batch["transactions_key"]]],
            "type": "json",
        }
        assert len(log.encode()) < 2048  # far inside the 4 KB log tail
    handler(WINDOW, None, settings=settings)  # the schedule's event: no Pipes, nothing on stderr
    assert pipes_messages(capsys.readouterr().err) == []


def test_figures_list_only_what_fits_a_pipes_report():
    batch_id = "sim-7-c1500-189ec2e3-20261101T0000-20261102T0000"
    batch = {
        "batch_id": batch_id,
        "transactions_key": f"transactions/dt=2026-11-01/hour=00/{batch_id}.jsonl.gz",
        "rows": 12345,
        "frauds": 99,
        "unlabelled_frauds": 5,
        "scenarios": {"card_testing": 60, "account_takeover": 39},
    }
    shown = figures({"bucket": "fraud-raw", "batches": [batch] * 60})
    assert shown["batches"] == 60 and shown["rows"] == 60 * 12345
    assert shown["fraud_scenarios"] == {"card_testing": 3600, "account_takeover": 2340}
    assert 0 < len(shown["batch_keys"]) < 60 and len(json.dumps(shown["batch_keys"])) <= LISTED_BATCHES_BYTES + 2
