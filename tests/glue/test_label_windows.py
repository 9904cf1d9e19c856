"""The Spark job's label-based features (fraud/features/spark.py: the per-merchant step and the card's known-fraud
join) equal the numpy definitions in fraud/features/catalog.py (merchant_risk, known_frauds) on histories built to
hit every case of their point-in-time rule: labels that arrive the same second as a transaction, exactly a window
before it, more than LABEL_LOOKBACK - 30 days late, before their own transaction (bad data), and for a transaction
at the lookback's edge. The simulation the parity tests run has few of these."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from fraud.features.catalog import DAY, LABEL_LOOKBACK_SECONDS, MERCHANT_FEATURES, known_frauds, merchant_risk
from tests.glue.test_features import featurize, tx

START = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())
CARDS = ["4111111111111111", "5500000000000004", "340000000000009"]


def _text(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_label_features_equal_the_catalog_definitions(spark):
    rng = np.random.default_rng(3)
    count = 240
    # every row a whole second in 100 days; some seconds shared, some exactly a day apart
    times = np.sort(START + rng.integers(0, 100 * DAY, count))
    times[10] = times[9]
    times[21] = times[20] + DAY
    merchants = rng.choice(["m1", "m2", "m3"], count)
    cards = rng.choice(len(CARDS), count)
    delays = rng.choice([0, 1, 2 * DAY, 7 * DAY, 29 * DAY, 30 * DAY, 31 * DAY, 45 * DAY, 70 * DAY, -DAY], count)
    labelled = rng.random(count) < 0.8
    fraud = rng.random(count) < 0.3
    label_unix = np.where(labelled, times + delays, np.nan)
    # a label arriving exactly when another transaction of its merchant happens, and one exactly a window before
    label_unix[30] = times[31]
    label_unix[40] = times[41] - 7 * DAY
    labelled[[30, 40]] = True

    rows = [
        tx(f"t{i}", _text(int(t)), card=CARDS[c], merchant=m)
        for i, (t, c, m) in enumerate(zip(times, cards, merchants, strict=True))
    ]
    labels = [(f"t{i}", bool(fraud[i]), _text(int(label_unix[i]))) for i in range(count) if labelled[i]]
    got = featurize(spark, rows, labels)

    is_fraud = fraud & labelled
    for merchant in ("m1", "m2", "m3"):
        mine = merchants == merchant
        expected = merchant_risk(times[mine], is_fraud[mine], label_unix[mine], times[mine])
        names = np.flatnonzero(mine)
        for name in MERCHANT_FEATURES:
            values = np.array([got[f"t{i}"][name] for i in names])
            np.testing.assert_array_equal(values, expected[name], err_msg=f"{merchant} {name}")
    for card in range(len(CARDS)):
        mine = cards == card
        expected = known_frauds(times[mine], is_fraud[mine], label_unix[mine], times[mine])
        values = np.array([got[f"t{i}"]["card_known_frauds_60d"] for i in np.flatnonzero(mine)])
        np.testing.assert_array_equal(values, expected, err_msg=f"card {card}")
        assert expected.any()
    # the history exercised the cases: labels more than the lookback's spare 30 days late and before their event
    assert ((label_unix - times > LABEL_LOOKBACK_SECONDS - 30 * DAY) | (label_unix < times)).sum() > 10


def test_without_labels_the_label_features_are_zero(spark):
    got = featurize(spark, [tx("a", "2026-03-10 10:00:00"), tx("b", "2026-03-10 11:00:00")])
    for name in ("merchant_labels_30d", "merchant_fraud_rate_30d", "card_known_frauds_60d"):
        assert got["b"][name] == 0
    assert got["b"]["merchant_count_1d"] == 1 and got["b"]["merchant_volume_ratio_1d"] == 2 / (1 / 30 + 1)
