"""Card testing through the real-time API, against a network the project's own training code fitted on a world whose
fraud is the simulator's card-testing scenario (tiny online probes minutes apart, then large cash-outs): a burst of
small online payments on an ordinary card is visible to the next request at once, so its later answers score far
above its first; a retried request (same body, same trans_num) gets the recorded answer and adds nothing to the
card's history, so the requests after it score as if it had never been sent."""

from __future__ import annotations

import math
import secrets
import time
import uuid
from datetime import date

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from bench.pandas_features import pandas_features
from bench.scoring import as_loaded
from fraud.core.storage import object_store
from fraud.db.load import load_processed
from fraud.features.catalog import FEATURE_NAMES
from fraud.ingest.generator import label_timing
from fraud.ingest.simulate import build_world, simulate_days
from fraud.model import registry
from fraud.model.evaluation import LabelledData
from fraud.model.litert import TFLiteScorer
from fraud.model.network import TrainingConfig, train
from fraud.model.promotion import protocol_for
from fraud.serving.api import create_app
from tests.helpers.figures import figure

TOKEN = secrets.token_urlsafe(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BATCH = "card-testing-test"
BURST = 18  # small online payments on one card, 10-15 s apart: about three and a half minutes
DUPLICATE = 9  # the burst's 10th payment is sent twice
LAST = 5
# The model has learnt the pattern when, on its own world, the card-testing probes that follow two or more
# transactions of the card within the hour have a median fraud log-odds at least log(ODDS_RISE) above that of the
# probes that follow none. The burst through the API must then rise at least as much as the model's own probes do,
# from its first answer to the median of its last five: those come 13 to 17 payments into the burst, 10-15 s apart,
# more of the same evidence than the world's 2 to 5 probes minutes apart.
ODDS_RISE = 10.0
COLUMNS = ("trans_num", "event_time", "card_token", "merchant", "category", "amt")
COLUMNS += ("lat", "long", "merch_lat", "merch_long", "city_pop", "dob")


def log_odds(p: float | np.ndarray) -> float | np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)  # a float32 sigmoid saturates at 1.0
    return np.log(p / (1 - p))


@pytest.fixture(scope="module")
def world(settings, engine):
    """300 cards over two weeks, about 4% fraud, all of it card testing; its history loaded like the ETL loads it
    (computed feature vectors, labels) under a batch id of its own, and a network trained on it under the
    project's protocol, published and promoted under a model name of its own."""
    started = time.perf_counter()
    mine = settings.model_copy(
        update={
            "model_name": "card-testing-mlp",
            "api_token": SecretStr(TOKEN),
            "sim_seed": 2107,
            "sim_customers": 300,
            "sim_start": date(2027, 5, 3),  # a period no other test loads
            "sim_days": 14,
            "sim_fraud_rate": 0.05,
            "sim_scenario_share": {"card_testing": 1.0},
            # the settings' 40 alerts a day are for their 1,500-card world: the same share of this one's traffic
            "alert_budget_per_day": 8,
        }
    )
    batches = simulate_days(
        build_world(mine.sim_customers, seed=mine.sim_seed),
        mine.sim_start,
        mine.sim_days,
        mine.sim_fraud_rate,
        mine.label_delay_days,
        label_timing=label_timing(mine),
        scenario_share=mine.sim_scenario_share,
    )
    raw = pd.concat([b.transactions for b in batches], ignore_index=True)
    labels = pd.concat([b.labels for b in batches], ignore_index=True)
    never_labelled = set(pd.concat([b.unlabelled for b in batches])["trans_num"])
    key = mine.token_key()
    tx = as_loaded(raw, key, BATCH)
    labels = labels.assign(
        trans_num=BATCH + "-" + labels["trans_num"],
        is_fraud=labels["is_fraud"].astype(bool),
        labelled_at=pd.to_datetime(labels["labelled_at"], utc=True),
    )
    features = pandas_features(tx, labels).set_index("trans_num").loc[tx["trans_num"], list(FEATURE_NAMES)]
    load_processed(engine, tx.assign(features=list(features.to_numpy(np.float64))), labels, [])

    labelled = tx[["trans_num", "event_time", "card_token", "amt"]].merge(
        labels[["trans_num", "is_fraud", "labelled_at", "scenario"]], on="trans_num"
    )
    data = LabelledData.of(labelled, features.loc[labelled["trans_num"]].to_numpy(np.float32))
    trained = train(data, protocol_for(mine), TrainingConfig(epochs=20))
    models = object_store(mine, mine.models_bucket)  # as a retraining that passed the gate publishes and promotes
    registry.publish(models, mine.model_name, trained.version, trained.files)
    registry.promote(models, mine.model_name, trained.version)
    fraud_cards = set(labelled.loc[labelled["is_fraud"], "card_token"]) | set(
        tx.loc[tx["trans_num"].isin({BATCH + "-" + t for t in never_labelled}), "card_token"]
    )
    return {
        "settings": mine,
        "tx": tx,
        "labels": labels,
        "data": data,
        "trained": trained,
        "fraud_cards": fraud_cards,
        "seconds": time.perf_counter() - started,
    }


@pytest.fixture(scope="module")
def learnt(world):
    """What the served model learnt on its own world: the median score of the card-testing probes (the tiny
    payments) that follow no transaction of the card within the hour, of those that follow two or more, and the
    rise of the median log-odds between them."""
    data = world["data"]
    scores = TFLiteScorer(world["trained"].files["model.tflite"]).predict(data.x)
    probe = (data.rows["scenario"] == "card_testing").to_numpy() & (data.rows["amt"] <= 3.0).to_numpy()
    count_1h = data.x[:, FEATURE_NAMES.index("card_count_1h")]
    first, later = scores[probe & (count_1h == 0)], scores[probe & (count_1h >= 2)]
    return {
        "probes": (len(first), len(later)),
        "first": float(np.median(first)),
        "later": float(np.median(later)),
        "rise": float(np.median(log_odds(later)) - np.median(log_odds(first))),
    }


def test_the_model_learnt_the_velocity_of_card_testing(world, learnt):
    assert min(learnt["probes"]) >= 20, learnt  # enough probes of each kind to take a median
    assert learnt["rise"] >= math.log(ODDS_RISE), learnt
    metrics = world["trained"].metadata["metrics"]
    assert metrics["average_precision"] > 0.5 and metrics["test_frauds"] >= 20, metrics


def ordinary_card(world) -> pd.DataFrame:
    """The history of a card with no fraud whose number of transactions is the median of such cards."""
    tx = world["tx"]
    clean = tx[~tx["card_token"].isin(world["fraud_cards"])]
    counts = clean.groupby("cc_num").size().sort_index()  # by card number: the tokens' key is the home's own
    card = (counts - counts.median()).abs().sort_values(kind="stable").index[0]
    return clean[clean["cc_num"] == card].sort_values("event_time")


def burst_requests(world, history: pd.DataFrame) -> list[dict]:
    """BURST payments of one to five dollars at online merchants the card never paid at, each at its own merchant,
    10-15 s apart, from 14:00 UTC on the day after the loaded history ends (daytime; the card's last payment is
    hours earlier, so none falls in the first payment's hour)."""
    tx = world["tx"]
    rng = np.random.default_rng(21)
    online = tx[tx["category"].isin(["misc_net", "shopping_net"]) & ~tx["merchant"].isin(set(history["merchant"]))]
    online = online.drop_duplicates("merchant").sort_values("merchant")
    merchants = online.iloc[rng.choice(len(online), BURST, replace=False)]
    start = tx["event_time"].max().floor("D") + pd.Timedelta(days=1, hours=14)
    gaps = np.concatenate([[0], rng.integers(10, 16, BURST - 1)])
    holder = history.iloc[-1]
    out = []
    for when, merchant in zip(start + pd.to_timedelta(np.cumsum(gaps), unit="s"), merchants.itertuples(), strict=True):
        out.append(
            {
                "trans_num": f"ct-{uuid.uuid4().hex}",
                "trans_date_trans_time": when.strftime("%Y-%m-%d %H:%M:%S"),
                "cc_num": str(holder["cc_num"]),
                "merchant": merchant.merchant,
                "category": merchant.category,
                "amt": round(float(rng.uniform(1.0, 5.0)), 2),
                "lat": float(holder["lat"]),
                "long": float(holder["long"]),
                "city_pop": int(holder["city_pop"]),
                "dob": str(holder["dob"]),
                "merch_lat": float(merchant.merch_lat),
                "merch_long": float(merchant.merch_long),
            }
        )
    return out


def recorded(engine, card: str) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text(
                "SELECT trans_num, event_time, score, flagged, features FROM realtime_decision "
                "WHERE card_token = :card ORDER BY event_time"
            ),
            connection,
            params={"card": card},
        )


def reference_features(world, history: pd.DataFrame, bodies: list[dict]) -> np.ndarray:
    """The control: the burst's feature vectors as the ETL's reference computes them over the loaded history and
    the burst, each payment sent once (no duplicate)."""
    burst = pd.DataFrame(bodies).assign(
        card_token=history["card_token"].iloc[0],
        event_time=lambda f: pd.to_datetime(f["trans_date_trans_time"], utc=True),
    )
    everything = pd.concat([world["tx"][list(COLUMNS)], burst[list(COLUMNS)]], ignore_index=True)
    features = pandas_features(everything, world["labels"][["trans_num", "is_fraud", "labelled_at"]])
    return features.set_index("trans_num").loc[burst["trans_num"], list(FEATURE_NAMES)].to_numpy(np.float64)


def test_a_card_testing_burst_scores_higher_with_every_probe_and_a_retry_changes_nothing(world, learnt, engine):
    started = time.perf_counter()
    settings = world["settings"]
    history = ordinary_card(world)
    card = history["card_token"].iloc[0]
    assert len(history) >= 15 and recorded(engine, card).empty  # an ordinary history, nothing real-time yet
    bodies = burst_requests(world, history)
    answers, rows_around_retry = [], []
    with TestClient(create_app(settings)) as client:
        for i, body in enumerate(bodies):
            response = client.post("/v1/score", json=body, headers=AUTH)
            assert response.status_code == 200, response.text
            answers.append(response.json())
            if i == DUPLICATE:  # a retry: the same body, the same trans_num
                rows_around_retry.append(len(recorded(engine, card)))
                retry = client.post("/v1/score", json=body, headers=AUTH)
                assert retry.status_code == 200, retry.text
                assert retry.json() == answers[-1]
                rows_around_retry.append(len(recorded(engine, card)))

    assert rows_around_retry == [DUPLICATE + 1] * 2  # the retry added no row
    decisions = recorded(engine, card)
    assert list(decisions["trans_num"]) == [b["trans_num"] for b in bodies]  # one row a payment
    np.testing.assert_array_equal(decisions["score"], [a["score"] for a in answers])
    x = np.array(decisions["features"].tolist())
    # each payment saw the burst's earlier payments at once, and the retried one only once
    assert x[:, FEATURE_NAMES.index("card_count_1h")].tolist() == list(range(BURST))
    assert x[:, FEATURE_NAMES.index("card_distinct_merchants_1h")].tolist() == list(range(BURST))
    # the control: each payment's vector and score as if no retry had been sent (the ETL's reference features over
    # the same history, the served model run on them by LiteRT), the payment right after the retry among them
    expected = reference_features(world, history, bodies)
    np.testing.assert_allclose(x, expected, rtol=1e-9, atol=1e-9)
    control = TFLiteScorer(world["trained"].files["model.tflite"]).predict(expected.astype(np.float32))
    np.testing.assert_allclose(decisions["score"], control, rtol=0, atol=1e-6)

    scores = np.array([a["score"] for a in answers])
    first, last = float(scores[0]), float(np.median(scores[-LAST:]))
    rise = float(log_odds(last) - log_odds(first))
    assert rise >= max(learnt["rise"], math.log(ODDS_RISE)), (scores.round(6).tolist(), learnt)
    # at the alert threshold training set for this world's budget: the first payment is not an alert, the last are
    assert not answers[0]["flagged"] and all(a["flagged"] for a in answers[-LAST:]), (answers[0], answers[-LAST:])
    seconds = world["seconds"] + time.perf_counter() - started
    figure(
        "tests/serving/test_card_testing.py",
        f"card-testing burst of {BURST} through the API: score {first:.3f} -> median of last {LAST} {last:.6f} "
        f"(log-odds +{rise:.1f}; the model's own probes {learnt['first']:.3f} -> {learnt['later']:.3f}, "
        f"+{learnt['rise']:.1f}); threshold {answers[0]['threshold']:.5f}, flagged from payment "
        f"{next(i for i, a in enumerate(answers) if a['flagged']) + 1}; world, training and burst {seconds:.0f} s",
    )
