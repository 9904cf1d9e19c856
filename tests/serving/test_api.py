"""The real-time API (`fraud serve`) over HTTP with a real database and a real `.tflite` model: bearer auth,
clear 4xx for every kind of bad request (never a 500, also under random bodies), body size limit, rate limit,
health, the OpenAPI schema, and `fraud serve` itself in a subprocess on a free loopback port."""

import os
import re
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bench.scoring import load_world, requests_for
from fraud.ingest.raw_values import FIRST_UNIX_SECOND, LAST_UNIX_SECOND
from fraud.serving.api import ANONYMOUS_BURST, api_token, create_app
from fraud.serving.realtime import APPLICATION_NAME, RealtimeScorer
from lambdas.scorer.handler import handler
from tests.helpers.homes import free_port
from tests.helpers.litert_models import publish_logistic, weights_for
from tests.helpers.realtime import fresh

REPO = Path(__file__).resolve().parents[2]
TOKEN = "api-test-token-not-a-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEW_CARD = "4024007103939509"  # Luhn-valid, in no world of these tests
NOT_A_CARD = "4024007103939508"  # the same with a wrong check digit


@pytest.fixture(scope="module")
def world(settings, engine):
    mine = settings.model_copy(update={"model_name": "api-test-mlp", "api_token": SecretStr(TOKEN)})
    frame = load_world(engine, mine, 2_000, "api-test", seed=21)
    publish_logistic(mine, "api-v1", weights_for(amt_log=0.8, card_count_1d=0.3, is_night=1.0), -4.0, 0.5)
    return mine, frame


@pytest.fixture(scope="module")
def client(world):
    settings, _ = world
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def body(world):
    return requests_for(world[1], 1)[0]


def detail(response) -> list[dict]:
    return response.json()["detail"]


def test_a_known_card_is_scored_like_the_lambda_scores_it(client, world, body):
    response = client.post("/v1/score", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == "api-v1" and answer["trans_num"] == body["trans_num"]
    assert answer["flagged"] == (answer["score"] >= answer["threshold"])
    assert answer == handler({"transaction": body}, settings=world[0])  # the same path as the Lambda's real-time event
    as_strings = {k: str(v) for k, v in body.items()}  # raw CSV values are strings
    assert client.post("/v1/score", json=as_strings, headers=AUTH).json()["score"] == pytest.approx(answer["score"])


def test_missing_or_wrong_token_is_401(client, body):
    missing = client.post("/v1/score", json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post("/v1/score", json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and detail(wrong)[0]["type"] == "invalid_token"
    basic = client.post("/v1/score", json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert client.post("/v1/score", content=b"{oops", headers={"Authorization": "Bearer x"}).status_code in (400, 401)


DROP = object()  # leave the field out


@pytest.mark.parametrize(
    "change, status, field, kind",
    [
        ({"merchant": DROP}, 422, "merchant", "missing"),
        ({"merchant": None}, 422, "merchant", "string_type"),
        ({"amt": "twelve"}, 422, "amt", "float_parsing"),
        ({"amt": [1, 2]}, 422, "amt", "float_type"),
        ({"amt": 5_000_000}, 422, "amt", "absurd_amount"),
        ({"amt": -3}, 422, "amt", "negative_amount"),
        ({"lat": 123.0}, 422, "lat", "invalid_coordinate"),
        ({"city_pop": "many"}, 422, "city_pop", "int_parsing"),
        ({"cc_num": "12"}, 422, "cc_num", "invalid_card_number"),
        ({"cc_num": NOT_A_CARD}, 422, "cc_num", "invalid_card_checksum"),
        ({"trans_date_trans_time": "tomorrow-ish"}, 422, "trans_date_trans_time", "invalid_timestamp"),
        ({"trans_date_trans_time": None}, 422, None, "value_error"),
        ({"merchant": "bad\x00name"}, 422, "merchant", "value_error"),
        ({"trans_num": "x" * 65}, 422, "trans_num", "string_too_long"),
    ],
)
def test_bad_transactions_get_a_clear_4xx(client, body, change, status, field, kind):
    sent = {k: v for k, v in {**body, **change}.items() if v is not DROP}
    response = client.post("/v1/score", json=sent, headers=AUTH)
    assert response.status_code == status, response.text
    problem = detail(response)[0]
    assert problem["type"] == kind and problem["msg"]
    if field:
        assert problem["loc"] == ["body", field]
    assert "input" not in problem and NOT_A_CARD not in response.text and str(body["cc_num"]) not in response.text


@pytest.mark.parametrize(
    "change, field, kind",
    [  # issue 21: each was a 500 (OverflowError) or accepted
        ({"trans_date_trans_time": "9999-12-31 23:59:59"}, "trans_date_trans_time", "event_time_out_of_range"),
        ({"trans_date_trans_time": "0001-01-01 00:00:00"}, "trans_date_trans_time", "event_time_out_of_range"),
        ({"trans_date_trans_time": DROP, "unix_time": 253402300799}, "unix_time", "event_time_out_of_range"),
        ({"trans_date_trans_time": "1969-12-31 23:59:59"}, "trans_date_trans_time", "event_time_out_of_range"),
        ({"trans_date_trans_time": "garbage"}, "trans_date_trans_time", "invalid_timestamp"),
        ({"trans_date_trans_time": "2026-13-01 10:00:00"}, "trans_date_trans_time", "invalid_timestamp"),
        ({"dob": "9999-12-31"}, "dob", "invalid_dob"),
        ({"dob": "2100-01-01"}, "dob", "invalid_dob"),
        ({"dob": "1899-12-31"}, "dob", "invalid_dob"),
    ],
)
def test_times_and_birth_dates_outside_their_bounds_get_their_own_reason(client, body, change, field, kind):
    sent = {k: v for k, v in {**body, **change}.items() if v is not DROP}
    response = client.post("/v1/score", json=sent, headers=AUTH)
    assert response.status_code == 422, response.text
    problem = detail(response)[0]
    assert (problem["type"], problem["loc"]) == (kind, ["body", field]) and "required" not in problem["msg"]
    assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200  # the next request is served


def test_a_request_cannot_override_the_stored_holder(client, body):
    # new trans_nums at the same second: none is in another's history (windows end before the transaction's second)
    stored = client.post("/v1/score", json=fresh({k: v for k, v in body.items() if k != "dob"}), headers=AUTH).json()
    today = body["trans_date_trans_time"][:10]
    for dob in ("1900-01-01", today):  # the oldest and the youngest holder a request could claim
        claimed = client.post("/v1/score", json=fresh(body, dob=dob), headers=AUTH)
        assert claimed.status_code == 200 and claimed.json()["score"] == stored["score"]


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), f"{asset} is not served by the app"
        assert client.get(asset).status_code == 200, asset
    assert "cdn." not in page.text and "https://" not in page.text


def test_malformed_and_oversized_bodies(client):
    bad_json = client.post("/v1/score", content=b'{"trans_num": ', headers={**AUTH, "content-type": "application/json"})
    assert bad_json.status_code == 400 and detail(bad_json)[0]["type"] == "json_invalid"
    not_utf8 = client.post("/v1/score", content=b"\x80", headers={**AUTH, "content-type": "application/json"})
    assert not_utf8.status_code == 400 and detail(not_utf8)[0]["type"] == "invalid_body"
    assert client.post("/v1/score", json=[1, 2, 3], headers=AUTH).status_code == 422
    big = client.post("/v1/score", content=b" " * (16 * 1024 + 1), headers={**AUTH, "content-type": "application/json"})
    assert big.status_code == 413 and "16384" in detail(big)[0]["msg"]

    def streamed():  # no Content-Length: the limit counts the bytes as they arrive
        for _ in range(40):
            yield b" " * 1024

    chunked = client.post("/v1/score", content=streamed(), headers={**AUTH, "content-type": "application/json"})
    assert chunked.status_code == 413


@pytest.mark.fuzz  # examples: the Hypothesis profile (HYPOTHESIS_PROFILE: ci 300, soak 10,000)
@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from(
                [
                    "trans_num",
                    "cc_num",
                    "merchant",
                    "amt",
                    "trans_date_trans_time",
                    "unix_time",
                    "category",
                    "lat",
                    "long",
                    "merch_lat",
                    "merch_long",
                    "city_pop",
                    "dob",
                    "zip",
                ]
            ),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(10**20), 10**20),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=40),
                st.lists(st.integers(), max_size=3),
            ),
            max_size=14,
        ),
        st.binary(max_size=300),
    )
)  # or not JSON at all
def test_random_bodies_never_get_a_500(client, body, payload):
    if isinstance(payload, bytes):
        response = client.post("/v1/score", content=payload, headers={**AUTH, "content-type": "application/json"})
    else:
        response = client.post("/v1/score", json={**fresh(body), **payload}, headers=AUTH)
    # 409: a trans_num drawn twice with two different transactions
    assert response.status_code in (200, 400, 409, 422), response.text
    if response.status_code != 200:  # every error says what is wrong
        detail = response.json()["detail"]
        assert detail and (isinstance(detail, str) or all(d["msg"] and d["type"] for d in detail)), response.text


def _stamp(moment: datetime | date, with_time: bool = True) -> str:
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"  # strftime writes year 1 as "1"
    return f"{text} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}" if with_time else text


GARBAGE_TIMES = st.one_of(
    st.text(max_size=32),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z"),  # the right shape: month 13, day 32, hour 25
    st.from_regex(r"\A\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}\Z"),
)
TIMES = st.one_of(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)).map(_stamp), GARBAGE_TIMES)
UNIX_TIMES = st.one_of(
    st.integers(FIRST_UNIX_SECOND, LAST_UNIX_SECOND),  # years 1 to 9999
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
DOBS = st.one_of(st.dates().map(lambda d: _stamp(d, with_time=False)), GARBAGE_TIMES)


@pytest.mark.fuzz  # examples: the Hypothesis profile (HYPOTHESIS_PROFILE: ci 300, soak 10,000)
@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(st.none(), TIMES),
    st.one_of(st.none(), UNIX_TIMES),
    st.one_of(st.none(), DOBS),
)
def test_any_time_or_birth_date_gets_a_score_or_a_4xx_with_a_reason(client, body, when, unix_time, dob):
    sent = {k: v for k, v in fresh(body).items() if k not in ("trans_date_trans_time", "unix_time", "dob")}
    for name, value in (("trans_date_trans_time", when), ("unix_time", unix_time), ("dob", dob)):
        if value is not None:
            sent[name] = value
    response = client.post("/v1/score", json=sent, headers=AUTH)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert all(d["msg"] and d["type"] for d in detail(response)), response.text


def test_rate_limit_per_token(world, body):
    settings, _ = world
    with TestClient(create_app(settings, rate_limit=0.5, burst=2)) as limited:
        answers = [limited.post("/v1/score", json=body, headers=AUTH) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1 and detail(answers[2])[0]["type"] == "rate_limited"


def test_a_spoofed_forwarded_for_does_not_change_the_rate_limit_key(world):
    settings, _ = world
    with TestClient(create_app(settings, anonymous_rate_limit=0.01, anonymous_burst=2)) as api:
        spoofed = [api.get("/health", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(3)]
    assert spoofed == [200, 200, 429]  # one caller, one bucket, whatever the header says
    # behind a trusted proxy the header names the client: two clients, two buckets; a hop the caller wrote to the
    # left of the proxy's is not the key
    behind = settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    app = create_app(behind, anonymous_rate_limit=0.01, anonymous_burst=2)
    with TestClient(app, client=("10.0.0.5", 50000)) as proxied:

        def health(forwarded: str) -> int:
            return proxied.get("/health", headers={"X-Forwarded-For": forwarded}).status_code

        assert [health("203.0.113.1"), health("203.0.113.2"), health("6.6.6.6, 203.0.113.1")] == [200, 200, 200]
        assert [health("7.7.7.7, 203.0.113.1"), health("203.0.113.2")] == [429, 200]


def test_an_unauthenticated_flood_hits_the_strict_limit_and_not_the_token_holder(world, body):
    settings, _ = world
    with TestClient(create_app(settings)) as api:  # the default limits
        guesses = [
            api.post("/v1/score", json=body, headers={"Authorization": f"Bearer guess-{i}"}).status_code
            for i in range(ANONYMOUS_BURST + 5)
        ]
        anonymous_health = api.get("/health").status_code
        scored = api.post("/v1/score", json=body, headers=AUTH)
        health = api.get("/health", headers=AUTH)
    assert set(guesses[:ANONYMOUS_BURST]) == {401} and guesses[-1] == 429  # refused before the token is judged
    assert anonymous_health == 429
    assert scored.status_code == 200 and health.json()["model_version"] == "api-v1"


def test_health_tells_an_anonymous_caller_only_up_or_down(client, world, body):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/health", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ok"}
    assert client.get("/health", headers=AUTH).json() == {"status": "ok", "model_version": "api-v1"}
    empty = world[0].model_copy(update={"model_name": "api-test-nothing-promoted"})
    with TestClient(create_app(empty)) as no_model:
        down = no_model.get("/health")
        assert down.status_code == 503 and down.json() == {"status": "unavailable"}
        told = no_model.get("/health", headers=AUTH)
        assert told.status_code == 503 and told.json() == {"status": "unavailable", "reason": "NoPromotedModel"}
        answer = no_model.post("/v1/score", json=body, headers=AUTH)
        assert answer.status_code == 503 and detail(answer)[0]["type"] == "no_model"


def test_openapi_schema_documents_the_contract(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/score"]["post"]
    assert {"200", "401", "409", "413", "422", "429", "503"} <= set(operation["responses"])
    assert (
        "records the decision" in operation["description"] and "Idempotent by `trans_num`" in operation["description"]
    )
    answer = schema["components"]["schemas"]["Score"]["properties"]
    assert {"new_card", "new_merchant", "reasons", "model_version"} <= set(answer)
    assert operation["security"] and schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    request = schema["components"]["schemas"]["RawTransaction"]
    assert {"trans_num", "cc_num", "merchant", "amt"} <= set(request["required"])
    amount = request["properties"]["amt"]["description"]  # the bounds are the ETL's rules, documented
    assert "negative_amount" in amount and "1,000,000" in amount and "absurd_amount" in amount
    assert client.get("/docs").status_code == 200


def test_a_newly_promoted_model_reaches_the_api_within_its_recheck_interval(world, body):
    settings, _ = world
    scorer = RealtimeScorer(settings, recheck_seconds=0)
    before = scorer.score(fresh(body))["model_version"]
    publish_logistic(settings, "api-v2", weights_for(amt_log=0.5), -1.0, 0.5)
    try:
        assert (before, scorer.score(fresh(body))["model_version"]) == ("api-v1", "api-v2")
    finally:
        publish_logistic(settings, "api-v1", weights_for(amt_log=0.8, card_count_1d=0.3, is_night=1.0), -4.0, 0.5)


def test_a_dropped_database_connection_is_replaced(world, body, engine):
    scorer = RealtimeScorer(world[0])
    first = scorer.score(body)
    with engine.begin() as connection:  # what a database restart or an idle-connection reaper does
        killed = connection.exec_driver_sql(
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{APPLICATION_NAME}'"
        ).scalar_one()
    assert killed >= 1
    assert scorer.score(body) == first


def test_the_api_replaces_a_dropped_database_connection(world, body, engine):
    with TestClient(create_app(world[0])) as api:
        first = api.post("/v1/score", json=body, headers=AUTH)
        with engine.begin() as connection:  # every asyncio read connection of the API, killed between two requests
            killed = connection.exec_driver_sql(
                f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE application_name = '{APPLICATION_NAME}'"
            ).scalar_one()
        assert killed >= 1
        again = api.post("/v1/score", json=body, headers=AUTH)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()


def test_local_token_is_generated_once_and_private(tmp_path, settings):
    local = settings.model_copy(update={"home": tmp_path, "api_token": None})
    token, path = api_token(local)
    assert path == tmp_path / "secrets" / "api_token" and (path.stat().st_mode & 0o777) == 0o600
    assert api_token(local) == (token, path) and len(token) >= 32
    with pytest.raises(RuntimeError, match="FRAUD_API_TOKEN"):
        api_token(local.model_copy(update={"mode": "aws"}))


def test_fraud_serve_runs_on_loopback_and_never_prints_the_token(world, body, fraud_env):
    port = free_port()
    env = {**os.environ, "FRAUD_HOME": str(fraud_env), "FRAUD_MODEL_NAME": "api-test-mlp"}
    env.pop("FRAUD_API_TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud.app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        token_file = fraud_env / "secrets" / "api_token"
        token = token_file.read_text().strip()
        scored = httpx.post(f"{url}/v1/score", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert scored.status_code == 200 and scored.json()["model_version"] == "api-v1"
        assert httpx.post(f"{url}/v1/score", json=body, timeout=10).status_code == 401
        # uvicorn's own X-Forwarded-For handling is off: a loopback caller naming other clients is still one client
        flood = [
            httpx.get(f"{url}/health", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10).status_code
            for i in range(ANONYMOUS_BURST + 1)
        ]
        assert 429 in flood, flood
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert str(token_file) in output and token not in output and "127.0.0.1" in output
