"""Every real-time answer is recorded before it leaves (fraud/serving/realtime.py): once per trans_num, whatever
retries, concurrency or crashes do; the next request's velocity counts it; new cards and merchants are scored;
both doors (the API and the scorer Lambda's real-time event) are one implementation with one log."""

import asyncio
import json
import secrets
from datetime import datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from bench.scoring import load_world, requests_for
from fraud.features.catalog import FEATURE_NAMES
from fraud.serving import realtime
from fraud.serving.api import create_app
from fraud.serving.realtime import RealtimeScorer
from lambdas.scorer.handler import handler
from tests.helpers.litert_models import publish_logistic, weights_for
from tests.helpers.realtime import fresh

TOKEN = secrets.token_urlsafe(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COLUMN = {name: j for j, name in enumerate(FEATURE_NAMES)}
NEW_CARD = "4929939187355598"  # Luhn-valid, in no simulated world


@pytest.fixture(scope="module")
def world(settings, engine):
    mine = settings.model_copy(update={"model_name": "recorded-mlp", "api_token": SecretStr(TOKEN)})
    frame = load_world(engine, mine, 2_000, "recorded", seed=51)
    publish_logistic(mine, "recorded-v1", weights_for(amt_log=0.6, card_count_1h=1.2), -4.0, 0.5)
    return mine, frame


@pytest.fixture(scope="module")
def client(world):
    with TestClient(create_app(world[0])) as test_client:
        yield test_client


@pytest.fixture
def body(world):
    return requests_for(world[1], 1, seed=np.random.default_rng().integers(1 << 30))[0]


def logged(engine, *trans_nums: str) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM realtime_decision WHERE trans_num = ANY(:t) ORDER BY event_time, trans_num"),
            {"t": list(trans_nums)},
        )
        return [dict(row) for row in rows.mappings()]


def test_a_decision_is_recorded_once_and_a_retry_gets_the_same_answer(client, body, engine):
    first = client.post("/v1/score", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    [row] = logged(engine, body["trans_num"])
    answer = first.json()
    assert (row["score"], row["flagged"], row["model_version"], row["reasons"]) == (
        answer["score"],
        answer["flagged"],
        answer["model_version"],
        answer["reasons"],
    )
    assert row["channel"] == "api" and row["latency_ms"] > 0 and len(row["features"]) == len(FEATURE_NAMES)
    assert row["last4"] == str(body["cc_num"])[-4:] and str(body["cc_num"]) not in json.dumps(row, default=str)
    for _ in range(3):
        again = client.post("/v1/score", json=body, headers=AUTH)
        assert again.status_code == 200 and again.json() == answer
    assert len(logged(engine, body["trans_num"])) == 1

    other = client.post("/v1/score", json={**body, "amt": float(body["amt"]) + 10}, headers=AUTH)
    assert other.status_code == 409 and other.json()["detail"][0]["type"] == "trans_num_conflict"
    assert len(logged(engine, body["trans_num"])) == 1


def test_concurrent_duplicates_record_one_decision_and_all_get_it(world, body, engine):
    scorer = RealtimeScorer(world[0])

    async def burst():
        async with scorer.serving():
            return await asyncio.gather(*(scorer.score_async(body) for _ in range(8)))

    answers = asyncio.run(burst())
    assert all(a == answers[0] for a in answers)
    assert len(logged(engine, body["trans_num"])) == 1


def test_a_crash_before_recording_leaves_nothing_and_the_retry_records_once(world, body, engine, monkeypatch):
    """The process dies after scoring, before its INSERT: no answer left, nothing recorded; the client's retry
    is scored and recorded once."""
    monkeypatch.setattr(realtime, "RECORD_SQL", "SELECT 1/0")  # the write fails where the INSERT would run
    with TestClient(create_app(world[0]), raise_server_exceptions=False) as api:
        crashed = api.post("/v1/score", json=body, headers=AUTH)
    assert crashed.status_code == 500 and logged(engine, body["trans_num"]) == []
    monkeypatch.undo()
    with TestClient(create_app(world[0])) as api:
        retried = api.post("/v1/score", json=body, headers=AUTH)
    assert retried.status_code == 200 and len(logged(engine, body["trans_num"])) == 1


def test_a_crash_after_recording_gives_the_retry_the_recorded_answer(world, body, engine, monkeypatch):
    """The process dies after its INSERT committed, before the answer left: the retry gets the recorded
    decision, and nothing more is recorded."""
    original = RealtimeScorer._on_connection

    async def dies_after_the_write(self, work):
        result = await original(self, work)
        if work.__name__ == "write":
            raise SystemExit("killed after the decision was recorded")
        return result

    monkeypatch.setattr(RealtimeScorer, "_on_connection", dies_after_the_write)
    scorer = RealtimeScorer(world[0])
    with pytest.raises(SystemExit):
        scorer.score(body, channel="lambda")
    [recorded] = logged(engine, body["trans_num"])
    monkeypatch.undo()
    retried = handler({"transaction": body}, settings=world[0])
    assert (retried["score"], retried["flagged"], retried["reasons"]) == (
        recorded["score"],
        recorded["flagged"],
        recorded["reasons"],
    )
    assert len(logged(engine, body["trans_num"])) == 1


def test_velocity_counts_the_decisions_just_recorded(client, body, engine):
    start = datetime.fromisoformat(body["trans_date_trans_time"]) + timedelta(days=400)  # nothing near it
    sent = [
        fresh(body, cc_num=NEW_CARD, trans_date_trans_time=str(start + timedelta(minutes=i)), amt=2.5 + i)
        for i in range(5)
    ]
    answers = [client.post("/v1/score", json=request, headers=AUTH).json() for request in sent]
    rows = logged(engine, *(request["trans_num"] for request in sent))
    assert [r["features"][COLUMN["card_count_1h"]] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["features"][COLUMN["card_mean_amt_1h"]] for r in rows][1:] == pytest.approx([2.5, 3.0, 3.5, 4.0])
    assert [a["new_card"] for a in answers] == [True, False, False, False, False]
    assert answers[-1]["score"] > answers[0]["score"]  # the model weighs card_count_1h


def test_new_cards_and_merchants_are_scored_with_or_without_holder_fields(client, body, engine):
    when = str(datetime.fromisoformat(body["trans_date_trans_time"]) + timedelta(days=800))
    holderless = {k: v for k, v in body.items() if k not in ("dob", "city_pop", "lat", "long")}
    cases = {
        "with the holder's fields": fresh(body, cc_num="4716108999716531", trans_date_trans_time=when),
        "without them": fresh(holderless, cc_num="4532015112830366", trans_date_trans_time=when),
        "a new merchant": fresh(body, merchant="fraud_Never Seen Before", trans_date_trans_time=when),
    }
    answers = {name: client.post("/v1/score", json=request, headers=AUTH) for name, request in cases.items()}
    assert all(a.status_code == 200 for a in answers.values()), {k: a.text for k, a in answers.items()}
    assert answers["with the holder's fields"].json()["new_card"] and answers["without them"].json()["new_card"]
    assert answers["a new merchant"].json()["new_merchant"] and not answers["a new merchant"].json()["new_card"]
    [without] = logged(engine, cases["without them"]["trans_num"])
    [with_fields] = logged(engine, cases["with the holder's fields"]["trans_num"])
    unknown = {name: without["features"][COLUMN[name]] for name in ("age_known", "city_pop_known", "distance_known")}
    assert unknown == {"age_known": 0.0, "city_pop_known": 0.0, "distance_known": 0.0}
    assert with_fields["features"][COLUMN["age_known"]] == 1.0


def test_both_doors_answer_alike_and_share_one_log(client, body, world, engine):
    # the same transaction under two trans_nums at the same second: neither is in the other's history
    twin = fresh(body)
    through_api = client.post("/v1/score", json=body, headers=AUTH).json()
    through_lambda = handler({"transaction": twin}, settings=world[0])
    assert {**through_lambda, "trans_num": body["trans_num"]} == through_api
    assert handler({"transaction": body}, settings=world[0]) == through_api  # the API's decision, replayed
    channels = {r["trans_num"]: r["channel"] for r in logged(engine, body["trans_num"], twin["trans_num"])}
    assert channels == {body["trans_num"]: "api", twin["trans_num"]: "lambda"}
    for bad in ({**twin, "amt": "-1"}, {**twin, "cc_num": "4929939187355599"}, {**twin, "trans_num": ""}):
        refused_api = client.post("/v1/score", json=fresh(bad) if bad["trans_num"] else bad, headers=AUTH)
        refused_lambda = handler({"transaction": bad}, settings=world[0])
        assert refused_api.status_code == refused_lambda["status"] == 422
        assert refused_api.json()["detail"][0]["type"] == refused_lambda["error"]["code"]


def test_the_openapi_example_scores(client):
    schema = client.get("/openapi.json").json()
    example = schema["components"]["schemas"]["RawTransaction"]["examples"][0]
    answer = client.post("/v1/score", json=fresh(example), headers=AUTH)
    assert answer.status_code == 200, answer.text


def test_the_read_stays_within_psycopgs_parse_cache():
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    from fraud.db.decisions import DECISION_SQL, RECORD_SQL, RECORDED

    # over either limit psycopg parses the statement again on every request (6% of the server's CPU, measured)
    assert len(DECISION_SQL) <= MAX_CACHED_STATEMENT_LENGTH and len(RECORD_SQL) <= MAX_CACHED_STATEMENT_LENGTH
    assert len(RECORDED) <= MAX_CACHED_STATEMENT_PARAMS
