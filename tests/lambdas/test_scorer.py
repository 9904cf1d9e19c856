"""The scorer Lambda on the real database with real `.tflite` models run by LiteRT: batch scoring with top
reasons, idempotent per transaction and model version, a newer LATEST picked up by a warm handler, time-range
selection, and the real-time event (direct and as a Lambda function URL request)."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from bench.scoring import load_world, requests_for
from fraud.core.storage import object_store
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.features.online import online_features, parse_transaction
from fraud.model import registry
from fraud.rules import live_rules
from fraud.serving.batch import attribution_baseline
from lambdas.scorer.handler import handler
from tests.helpers.lambda_standin import pipes_event, pipes_messages
from tests.helpers.litert_models import logistic, publish_logistic, weights_for
from tests.helpers.realtime import fresh

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = weights_for(amt_log=0.0, card_count_1h=3.0, merchant_fraud_rate_7d=2.0, distance_km=1.0, hour=-1.0)
BIAS = -3.5
THRESHOLD = 0.6


@pytest.fixture(scope="module")
def world(settings, engine):
    """Two processed batches (random feature vectors) and a model name of their own, so LATEST is theirs."""
    mine = settings.model_copy(update={"model_name": "scorer-test-mlp"})
    first = load_world(engine, mine, 1_500, "scorer-test-a", seed=11)
    second = load_world(engine, mine, 700, "scorer-test-b", seed=12)
    publish_logistic(mine, "scorer-v1", WEIGHTS, BIAS, THRESHOLD)
    return mine, engine, first, second


def stored_scores(engine, model_version: str, batch_id: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text("""
            SELECT s.trans_num, s.score, s.flagged, s.threshold, s.top_reasons, f.values
            FROM fraud_score s JOIN fact_transaction t USING (trans_num) JOIN transaction_features f USING (trans_num)
            WHERE s.model_version = :model AND t.batch_id = :batch"""),
            connection,
            params={"model": model_version, "batch": batch_id},
        )


def test_batch_scores_with_reasons_once_per_model_version(world):
    settings, engine, first, second = world
    result = handler({"batch_id": "scorer-test-a"}, settings=settings)
    assert result["model_version"] == "scorer-v1" and result["threshold"] == THRESHOLD
    assert result["scored"] == result["pending"] == len(first)
    json.dumps(result)  # a Lambda result must serialise

    rows = stored_scores(engine, "scorer-v1", "scorer-test-a")
    assert len(rows) == len(first) and stored_scores(engine, "scorer-v1", "scorer-test-b").empty  # only that batch
    x = np.array(rows["values"].tolist())
    np.testing.assert_allclose(rows["score"], logistic(x, WEIGHTS, BIAS), atol=1e-5)  # LiteRT = the model's formula
    assert (rows["flagged"] == (rows["score"] >= THRESHOLD)).all() and result["flagged"] == rows["flagged"].sum() > 0
    assert (rows["threshold"] == THRESHOLD).all()
    # the reasons are the model's own occlusion contributions against the median transaction
    baseline = attribution_baseline(engine, {"feature_names": list(FEATURE_NAMES), "feature_version": FEATURE_VERSION})
    occluded = np.repeat(x[:, None, :], len(FEATURE_NAMES), axis=1)
    occluded[:, np.arange(len(FEATURE_NAMES)), np.arange(len(FEATURE_NAMES))] = baseline
    contributions = logistic(x, WEIGHTS, BIAS)[:, None] - logistic(occluded, WEIGHTS, BIAS)
    for reasons, expected in zip(rows["top_reasons"], contributions, strict=False):
        if reasons is None:  # reasons only where they are read (issue 24): checked below
            continue
        assert len(reasons) <= 3 and all(r["contribution"] > 0 for r in reasons)
        top = [FEATURE_NAMES[j] for j in np.argsort(-expected)[:3] if expected[j] > 1e-6]
        assert [r["feature"] for r in reasons][: len(top)] == top
        for r in reasons:
            assert r["contribution"] == pytest.approx(expected[FEATURE_NAMES.index(r["feature"])], abs=1e-5)
    given = rows["top_reasons"].notna()
    assert (given >= rows["flagged"]).all()  # every flagged row has reasons
    assert (rows.loc[given, "top_reasons"].map(len) > 0).mean() > 0.5

    again = handler({"batch_id": "scorer-test-a"}, settings=settings)
    assert again["scored"] == again["pending"] == 0
    assert len(stored_scores(engine, "scorer-v1", "scorer-test-a")) == len(first)


def test_a_newer_promoted_model_is_picked_up_by_a_warm_handler(world):
    settings, engine, first, second = world
    handler({"batch_id": "scorer-test-b"}, settings=settings)  # warm: scorer-v1 cached
    publish_logistic(settings, "scorer-v2", weights_for(amt_log=1.0), -2.0, 0.9)
    result = handler({"batch_id": "scorer-test-b"}, settings=settings)
    assert result["model_version"] == "scorer-v2" and result["scored"] == len(second)
    rows = stored_scores(engine, "scorer-v2", "scorer-test-b")
    x = np.array(rows["values"].tolist())
    np.testing.assert_allclose(rows["score"], logistic(x, weights_for(amt_log=1.0), -2.0), atol=1e-5)
    assert len(stored_scores(engine, "scorer-v1", "scorer-test-b")) == len(second)  # the old version's rows stay


def test_time_range_scores_exactly_that_range(world):
    settings, engine, first, second = world
    publish_logistic(settings, "scorer-v3", WEIGHTS, BIAS, THRESHOLD)
    since, until = first["event_time"].quantile(0.25), first["event_time"].quantile(0.5)
    result = handler({"since": since.isoformat(), "until": until.isoformat()}, settings=settings)
    with engine.connect() as connection:
        expected = set(
            connection.execute(
                text("SELECT trans_num FROM fact_transaction WHERE event_time >= :s AND event_time < :u"),
                {"s": since, "u": until},
            ).scalars()
        )
        scored = set(
            connection.execute(text("SELECT trans_num FROM fraud_score WHERE model_version = 'scorer-v3'")).scalars()
        )
    assert scored == expected and result["scored"] == len(expected) > 0


def test_real_time_event_scores_one_transaction_and_records_the_decision(world):
    settings, engine, first, _ = world
    body = requests_for(first, 1)[0]
    with engine.connect() as connection:  # the features before the decision is recorded
        features, _ = online_features(
            connection.connection.driver_connection, parse_transaction(body, settings.token_key())
        )
    result = handler({"transaction": body}, settings=settings)
    assert set(result) == {
        *("trans_num", "score", "flagged", "threshold", "model_version", "feature_version", "reasons"),
        *("new_card", "new_merchant"),
        *("outcome", "decided_by", "rules_fired", "ruleset_version"),
    }
    latest = registry.latest_version(object_store(settings, settings.models_bucket), settings.model_name)
    assert result["model_version"] == latest and result["flagged"] == (result["score"] >= THRESHOLD)
    # the live rule set decides: its model-threshold rule sends a flagged transaction to review
    assert result["ruleset_version"] == live_rules().version
    assert ("model-threshold" in result["rules_fired"]) == result["flagged"]
    assert not result["new_card"] and not result["new_merchant"]
    assert result["score"] == pytest.approx(logistic(features[None, :], WEIGHTS, BIAS)[0], abs=1e-5)
    assert all(r["feature"] in FEATURE_NAMES and r["contribution"] > 0 for r in result["reasons"])
    json.dumps(result)
    with engine.connect() as connection:
        facts = connection.execute(
            text("SELECT count(*) FROM fact_transaction WHERE trans_num = :t"), {"t": body["trans_num"]}
        ).scalar_one()
        logged = connection.execute(
            text("SELECT channel, score, features FROM realtime_decision WHERE trans_num = :t"),
            {"t": body["trans_num"]},
        ).all()
    assert facts == 0  # the settled transaction reaches fact_transaction through the batch path
    assert [(channel, score) for channel, score, _ in logged] == [("lambda", result["score"])]
    np.testing.assert_allclose(logged[0][2], features)
    assert handler({"transaction": body}, settings=settings) == result  # a retry: the recorded answer

    invalid = handler({"transaction": {**body, "amt": "-5"}}, settings=settings)
    assert invalid == {
        "error": {"code": "negative_amount", "field": "amt", "message": "amt must not be negative"},
        "status": 422,
    }
    checksum = handler({"transaction": {**body, "cc_num": "4024007103939508"}}, settings=settings)
    assert checksum["error"]["code"] == "invalid_card_checksum" and "4024007103939508" not in json.dumps(checksum)
    new = handler({"transaction": fresh(body, cc_num="4024007103939509")}, settings=settings)
    assert new["new_card"] and 0 <= new["score"] <= 1
    reused = handler({"transaction": {**body, "amt": float(body["amt"]) + 1}}, settings=settings)
    assert reused["status"] == 409 and reused["error"]["code"] == "trans_num_conflict"
    assert handler({"transaction": "not an object"}, settings=settings)["status"] == 422


def function_url_event(body: bytes, method: str = "POST", encoded: bool = False) -> dict:
    return {
        "version": "2.0",
        "rawPath": "/",
        "requestContext": {"http": {"method": method, "path": "/"}},
        "body": base64.b64encode(body).decode() if encoded else body.decode(),
        "isBase64Encoded": encoded,
    }


def test_function_url_requests_get_http_answers(world):
    settings, _, first, _ = world
    body = json.dumps(requests_for(first, 1, seed=5)[0]).encode()
    ok = handler(function_url_event(body, encoded=True), settings=settings)
    assert ok["statusCode"] == 200 and "score" in json.loads(ok["body"])
    assert handler(function_url_event(b"{oops"), settings=settings)["statusCode"] == 400
    assert handler(function_url_event(body, method="GET"), settings=settings)["statusCode"] == 405
    assert handler(function_url_event(b" " * 20_000), settings=settings)["statusCode"] == 413
    missing = handler(function_url_event(b'{"trans_num": "x"}'), settings=settings)
    assert missing["statusCode"] == 422 and json.loads(missing["body"])["error"]["field"] == "cc_num"


def test_the_handler_imports_neither_tensorflow_nor_pandas():
    heavy = ("tensorflow", "keras", "pandas", "pyspark", "fastapi")
    code = f"import sys, lambdas.scorer.handler; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_a_page_another_run_partly_wrote_is_completed_without_doubling(world):
    """Two runs racing on the same rows: the second run's direct COPY hits the first run's rows, so that page goes
    through the ON CONFLICT path instead: only the missing rows are added, the existing ones keep their values."""
    from fraud.db.scores import write_scores

    settings, engine, first, second = world
    ids = list(second["trans_num"][:5])
    assert (
        write_scores(
            engine,
            "race-v1",
            0.5,
            ids[:2],
            np.array([0.9, 0.1]),
            np.array([True, False]),
            ['[{"feature":"hour","contribution":0.25}]', "[]"],
        )
        == 2
    )
    assert write_scores(engine, "race-v1", 0.5, ids, np.full(5, 0.7), np.full(5, True), ["[]"] * 5) == 3
    with engine.connect() as connection:
        rows = dict(
            connection.execute(text("SELECT trans_num, score FROM fraud_score WHERE model_version = 'race-v1'")).all()
        )
        reasons = dict(
            connection.execute(
                text("SELECT trans_num, top_reasons FROM fraud_score WHERE model_version = 'race-v1'")
            ).all()
        )
    assert sorted(rows) == sorted(ids) and rows[ids[0]] == 0.9 and rows[ids[1]] == 0.1 and rows[ids[4]] == 0.7
    # JSON arrays by both paths (direct COPY, and staging + ON CONFLICT), not JSON strings holding the text
    assert reasons[ids[0]] == [{"feature": "hour", "contribution": 0.25}] and reasons[ids[4]] == []


def test_batch_ids_through_pipes_report_the_summed_result(world, capsys):
    """fraud_flags' event in aws mode: the batches in turn, summed, reported as the asset's materialization."""
    settings, engine, first, second = world
    publish_logistic(settings, "scorer-v4", WEIGHTS, BIAS, THRESHOLD)
    capsys.readouterr()
    result = handler(pipes_event({"batch_ids": ["scorer-test-a", "scorer-test-b"]}, "fraud_flags"), settings=settings)
    assert result["batches"] == 2 and result["model_version"] == "scorer-v4"
    assert result["scored"] == result["pending"] == len(first) + len(second)
    messages = pipes_messages(capsys.readouterr().err)
    assert [m["method"] for m in messages] == ["opened", "report_asset_materialization", "closed"]
    reported = {k: v["raw_value"] for k, v in messages[1]["params"]["metadata"].items()}
    assert reported == result
