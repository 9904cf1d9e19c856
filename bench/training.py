"""Training benchmark: the neural network against the baselines on a 7/7/7-day protocol over simulated data
(~0.8% fraud), and its training time on about one million labelled rows against the gradient-boosted trees'
time on the same rows. The feature matrix comes from the simulator and the pandas reference features
(bench/pandas_features.py, checked against the Spark job), so no Spark or database is needed."""

from __future__ import annotations

import time
from datetime import date, timedelta

import numpy as np
import pandas as pd

from bench.pandas_features import pandas_features
from fraud.model.evaluation import LabelledData, Protocol

START = date(2026, 1, 1)


def simulated_data(
    customers: int,
    days: int,
    fraud_rate: float = 0.0068,
    seed: int = 1,
    worlds: int = 1,
    start: date = START,
    label_delay_days: float = 2.0,
) -> LabelledData:
    """Simulated transactions with the model's features and their chargeback labels, from `worlds` independent
    worlds of `customers` cardholders each (seeds seed, seed + 1, ...). Several small worlds rather than one big
    one: the simulator's compromised-merchant fraud grows with the cards per merchant (the merchant count is
    fixed), so one 17,000-card world has 4% fraud, while 1,500-card worlds at this rate have about 0.8%."""
    parts = [_one_world(customers, days, fraud_rate, seed + i, start, label_delay_days) for i in range(worlds)]
    return LabelledData.of(pd.concat([p.rows for p in parts], ignore_index=True), np.concatenate([p.x for p in parts]))


def _one_world(
    customers: int, days: int, fraud_rate: float, seed: int, start: date, label_delay_days: float
) -> LabelledData:
    from fraud.core.privacy import card_token, normalize_card_number
    from fraud.ingest.simulate import build_world, simulate_days

    batches = simulate_days(build_world(customers, seed=seed), start, days, fraud_rate, label_delay_days)
    tx = pd.concat([b.transactions for b in batches], ignore_index=True)
    labels = pd.concat([b.labels for b in batches], ignore_index=True)
    labels = labels.assign(
        is_fraud=labels["is_fraud"].astype(bool), labelled_at=pd.to_datetime(labels["labelled_at"], utc=True)
    )
    tokens = {card: card_token(normalize_card_number(card), b"bench") for card in tx["cc_num"].unique()}
    tx = tx.assign(
        card_token=tx["cc_num"].map(tokens), event_time=pd.to_datetime(tx["trans_date_trans_time"], utc=True)
    )
    features = pandas_features(tx, labels).set_index("trans_num")
    rows = tx[["trans_num", "event_time", "card_token"]].merge(
        labels[["trans_num", "is_fraud", "labelled_at"]], on="trans_num"
    )
    x = features.loc[rows["trans_num"]].to_numpy(dtype=np.float32)
    # transaction ids of worlds with different seeds can collide: the world's seed keeps them apart
    return LabelledData.of(rows.assign(trans_num=f"w{seed}-" + rows["trans_num"]), x)


def protocol_777(budget: int = 40) -> Protocol:
    """7 days of training after a 9-day warm-up of history, 7 days of label delay, 7 test days."""
    return Protocol(
        train_start=START + timedelta(days=9), train_days=7, delay_days=7, test_days=7, alert_budget_per_day=budget
    )


def compare_on_protocol(data: LabelledData, protocol: Protocol) -> dict:
    """Train the network and the baselines under the protocol; AP of each and the seconds each took to fit."""
    from fraud.model import evaluation
    from fraud.model.baselines import BASELINES
    from fraud.model.network import NAME, fit_network, keras_scorer

    split = evaluation.split(data, protocol.windows(data.rows["event_time"]))
    started = time.perf_counter()
    network, epochs = fit_network(split.train)
    seconds = {NAME: time.perf_counter() - started}
    scorers = {NAME: keras_scorer(network)}
    for name, fit in BASELINES.items():
        started = time.perf_counter()
        scorers[name] = fit(split.train)
        seconds[name] = time.perf_counter() - started
    results = {
        name: evaluation.evaluate_scorer(name, score, split, protocol).metrics for name, score in scorers.items()
    }
    return {
        "train_rows": len(split.train),
        "train_frauds": split.train.frauds,
        "test_rows": len(split.test),
        "test_frauds": split.test.frauds,
        "epochs": epochs,
        "seconds": seconds,
        "metrics": results,
    }


def time_training(data: LabelledData) -> dict:
    """Seconds to fit the network, and the gradient-boosted trees (the baseline), on all of `data`."""
    from fraud.model.baselines import gradient_boosting
    from fraud.model.network import fit_network

    started = time.perf_counter()
    _, epochs = fit_network(data)
    network = time.perf_counter() - started
    started = time.perf_counter()
    gradient_boosting(data)
    return {"rows": len(data), "network": network, "gradient_boosting": time.perf_counter() - started, "epochs": epochs}


def run(console) -> list[tuple[str, ...]]:
    """Rows for the bench table: (benchmark, rows, baseline, baseline figure, measured figure, ratio)."""
    from fraud.model.network import NAME

    with console.status("training: simulating ~1.1 million transactions and their features (pandas, ~2 minutes)"):
        data = simulated_data(customers=1_500, days=30, worlds=12)
    with console.status("training: network vs baselines on a 7/7/7-day protocol"):
        comparison = compare_on_protocol(data, protocol_777())
    aps = {name: m["average_precision"] for name, m in comparison["metrics"].items()}
    best = max((n for n in aps if n != NAME), key=lambda n: aps[n])
    console.print(
        f"7/7/7 protocol: {comparison['train_rows']:,} training rows ({comparison['train_frauds']:,} frauds), "
        f"{comparison['test_rows']:,} test rows ({comparison['test_frauds']:,} frauds), "
        f"{comparison['epochs']} epochs; fit seconds { ({k: round(v, 1) for k, v in comparison['seconds'].items()}) }"
    )
    for name, values in comparison["metrics"].items():
        console.print(
            f"  {name:20} AUC {values['roc_auc']:.4f}  AP {values['average_precision']:.4f}  "
            f"CP@100 {values['card_precision_at_100']:.4f}"
        )
    with console.status("training: network and gradient-boosted trees on ~1 million rows"):
        timing = time_training(data.where(np.arange(len(data)) < 1_000_000))
    return [
        (
            "training: NN average precision, 7/7/7 days",
            f"{comparison['test_rows']:,} test",
            f"best baseline ({best})",
            f"{aps[best]:.4f}",
            f"{aps[NAME]:.4f}",
            f"{aps[NAME] / aps[best]:.2f}x",
        ),
        (
            "training: NN fit (goal: under 120 s)",
            f"{timing['rows']:,}",
            "gradient-boosted trees fit",
            f"{timing['gradient_boosting']:.1f}",
            f"{timing['network']:.1f} ({timing['epochs']} epochs)",
            f"{timing['gradient_boosting'] / timing['network']:.1f}x",
        ),
    ]
