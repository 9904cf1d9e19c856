"""Faults around the scorer, on the real database with real `.tflite` models: the database connection killed
in the middle of a batch run (pg_terminate_backend), and a truncated or corrupt model promoted to LATEST."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from bench.scoring import load_world, requests_for
from fraud.core.storage import object_store
from fraud.db.scores import Selection
from fraud.model import registry
from fraud.rules import live_rules
from fraud.serving.api import create_app
from fraud.serving.batch import ModelCache, ModelRejected, score_selection
from fraud.serving.realtime import RealtimeScorer
from lambdas.scorer import handler as scorer_lambda
from tests.helpers.figures import figure
from tests.helpers.litert_models import logistic, logistic_tflite, publish_logistic, weights_for
from tests.helpers.realtime import fresh

WEIGHTS = weights_for(amt_log=0.7, card_count_1h=1.5, hour=-0.5)


@pytest.fixture(scope="module")
def world(settings, engine):
    mine = settings.model_copy(update={"model_name": "faults-mlp", "api_token": SecretStr("faults-test-token")})
    frame = load_world(engine, mine, 3_000, "faults-score", seed=31)
    publish_logistic(mine, "faults-v1", WEIGHTS, -3.0, 0.5)
    return mine, engine, frame


def _terminate(engine, pattern: str) -> int:
    """Kill the server processes whose current or last statement matches `pattern` (not this connection)."""
    with engine.connect() as connection:
        return connection.execute(
            text("""
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE query ILIKE :pattern AND pid <> pg_backend_pid() AND datname = current_database()"""),
            {"pattern": pattern},
        ).scalar_one()


def test_connection_killed_mid_run_is_retried_without_duplicate_scores(world):
    settings, engine, frame = world
    model = ModelCache().get(settings)
    killed = []

    def predict_and_kill(features: np.ndarray) -> np.ndarray:
        predict_and_kill.calls += 1
        if predict_and_kill.calls in (3, 7):  # the reader's server process, in the middle of the run, twice
            killed.append(_terminate(engine, "%pending_scores%"))
        return model.scorer.predict(features)

    predict_and_kill.calls = 0
    result = score_selection(
        engine, model, Selection(batch_id="faults-score"), live_rules(), predict=predict_and_kill, page_rows=250
    )
    assert killed == [1, 1]  # each kill hit the reading connection
    with engine.connect() as connection:
        rows = connection.execute(
            text("""
            SELECT count(*), count(DISTINCT s.trans_num) FROM fraud_score s JOIN fact_transaction t USING (trans_num)
            WHERE t.batch_id = 'faults-score' AND s.model_version = 'faults-v1'""")
        ).one()
        stored = dict(
            connection.execute(
                text("""
            SELECT s.trans_num, s.score FROM fraud_score s JOIN fact_transaction t USING (trans_num)
            WHERE t.batch_id = 'faults-score' AND s.model_version = 'faults-v1'""")
            ).all()
        )
    assert tuple(rows) == (len(frame), len(frame))  # every transaction scored, none twice
    assert result.scored == result.pending == len(frame)  # and the run's own figures add up exactly
    x = np.stack(frame.set_index("trans_num").loc[list(stored), "features"].to_numpy())
    np.testing.assert_allclose(list(stored.values()), logistic(x, WEIGHTS, -3.0), atol=1e-5)
    figure(
        "tests/reliability/test_scorer_faults.py::test_connection_killed_mid_run_is_retried_without_duplicate_scores",
        f"scorer's connection killed twice mid-run: {len(frame):,} transactions, {result.scored:,} scores, "
        "0 doubled, 0 missing",
    )


def _promote_broken(settings, version: str, tflite: bytes) -> None:
    """A complete version whose model.tflite is then replaced by `tflite`, promoted to LATEST."""
    publish_logistic(settings, version, WEIGHTS, -3.0, 0.5, promote=False)
    store = object_store(settings, settings.models_bucket)
    store.put_bytes(f"{settings.model_name}/{version}/model.tflite", tflite)
    registry.promote(store, settings.model_name, version)


def broken_models() -> dict[str, bytes]:
    good, _ = logistic_tflite(WEIGHTS, -3.0)
    nan_weights, _ = logistic_tflite(weights_for(amt_log=float("nan")), -3.0)  # loads, scores NaN
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "garbage": bytes(range(256)) * (len(good) // 256 + 1),
        "nan-weights": nan_weights,
    }


def test_a_corrupt_model_promoted_is_refused_and_the_previous_one_keeps_serving(world, request):
    settings, engine, frame = world
    body = requests_for(frame, 1, seed=8)[0]
    publish_logistic(settings, "faults-v1", WEIGHTS, -3.0, 0.5)
    realtime = RealtimeScorer(settings, recheck_seconds=0)
    request.addfinalizer(realtime.close)
    assert scorer_lambda.handler({"batch_id": "faults-score"}, settings=settings)["model_version"] == "faults-v1"
    assert realtime.score(fresh(body))["model_version"] == "faults-v1"
    with TestClient(create_app(settings, scorer=realtime)) as client:
        auth = {"Authorization": "Bearer faults-test-token"}
        for kind, tflite in broken_models().items():
            _promote_broken(settings, f"faults-{kind}", tflite)
            batch = scorer_lambda.handler({"batch_id": "faults-score"}, settings=settings)
            assert batch["model_version"] == "faults-v1", kind  # still serving the previous version
            answer = client.post("/v1/score", json=fresh(body), headers=auth)  # not a replay of a recorded answer
            assert answer.status_code == 200 and answer.json()["model_version"] == "faults-v1", (kind, answer.text)
            reason = scorer_lambda._models.rejected[f"faults-{kind}"]
            assert reason.startswith(f"model faults-{kind}:") and ("TFLite" in reason or "probabilities" in reason), (
                reason
            )
    with engine.connect() as connection:
        assert (
            connection.execute(
                text(
                    "SELECT count(*) FROM fraud_score WHERE model_version LIKE 'faults-%' "
                    "AND model_version <> 'faults-v1'"
                )
            ).scalar_one()
            == 0
        )

    # with nothing loaded before, a corrupt promoted model is a clear error (503 from the API), not a crash
    cache = ModelCache()
    with pytest.raises(ModelRejected, match="faults-truncated: model.tflite is not a loadable TFLite model"):
        _promote_broken(settings, "faults-truncated", broken_models()["truncated"])
        cache.get(settings)
    with TestClient(create_app(settings, scorer=RealtimeScorer(settings, ModelCache(), recheck_seconds=0))) as client:
        answer = client.post("/v1/score", json=fresh(body), headers={"Authorization": "Bearer faults-test-token"})
        assert answer.status_code == 503 and "not a loadable TFLite model" in answer.json()["detail"][0]["msg"]
    publish_logistic(settings, "faults-v1", WEIGHTS, -3.0, 0.5)  # LATEST back to a good model
    figure(
        "tests/reliability/test_scorer_faults.py::test_a_corrupt_model_promoted_is_refused_and_the_previous_one_keeps_serving",
        f"{len(broken_models())} broken model.tflite promoted (truncated, empty, garbage, NaN weights): all refused, "
        "batch and API kept serving the previous version, 0 scores from them",
    )
