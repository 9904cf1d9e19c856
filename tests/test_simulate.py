from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from fraud.privacy import normalize_card_number
from fraud.schema import RAW_COLUMNS
from fraud.simulate import SCENARIO_SHARE, build_world, load_or_build_world, simulate_days, simulate_window
from fraud.storage import LocalObjectStore

UTC = timezone.utc


@pytest.fixture(scope="module")
def world():
    return build_world(300, seed=3)


@pytest.mark.parametrize("days", [1, 2, 5])
def test_every_day_gets_a_batch_of_that_day(world, days):
    batches = simulate_days(world, date(2026, 1, 1), days, 0.02, 2.0)
    assert [b.start.date() for b in batches] == [date(2026, 1, d) for d in range(1, days + 1)]
    for batch in batches:
        assert list(batch.transactions.columns) == list(RAW_COLUMNS)
        assert "is_fraud" not in batch.transactions.columns  # labels arrive separately
        assert batch.transactions["trans_date_trans_time"].str.startswith(str(batch.start.date())).all()
        assert (batch.labels["trans_num"] == batch.transactions["trans_num"]).all()


def test_windows_agree_with_each_other(world):
    """Two hourly windows hold exactly the rows of the two-hour window (so any window can be generated alone)."""
    t = datetime(2026, 1, 10, 12, tzinfo=UTC)
    hours = [simulate_window(world, t + timedelta(hours=i), t + timedelta(hours=i + 1), 0.02, 2.0) for i in range(2)]
    both = simulate_window(world, t, t + timedelta(hours=2), 0.02, 2.0)
    joined = pd.concat([h.transactions for h in hours]).reset_index(drop=True)
    assert joined.equals(both.transactions.reset_index(drop=True))


def test_deterministic_for_a_seed(world):
    first = simulate_days(world, date(2026, 1, 1), 3, 0.02, 2.0)
    second = simulate_days(build_world(300, seed=3), date(2026, 1, 1), 3, 0.02, 2.0)
    for a, b in zip(first, second):
        assert a.transactions.equals(b.transactions) and a.labels.equals(b.labels)


def test_fraud_rate_scenarios_and_labels(world):
    batches = simulate_days(world, date(2026, 1, 1), 30, 0.02, 2.0)
    labels = pd.concat([b.labels for b in batches])
    rows = pd.concat([b.transactions for b in batches])
    assert 0.01 < labels["is_fraud"].mean() < 0.04
    assert set(labels.loc[labels["is_fraud"] == 1, "scenario"]) == set(SCENARIO_SHARE)
    assert (labels.loc[labels["is_fraud"] == 0, "scenario"] == "").all()
    delay = pd.to_datetime(labels["labelled_at"]) - pd.to_datetime(rows["trans_date_trans_time"]).to_numpy()
    assert (delay == pd.Timedelta(days=2)).all()
    assert rows["trans_num"].is_unique
    assert world.customers["cc_num"].map(normalize_card_number).notna().all()


def test_scenarios_look_like_their_documentation(world):
    batches = simulate_days(world, date(2026, 1, 1), 30, 0.03, 2.0)
    rows = pd.concat([b.transactions for b in batches]).reset_index(drop=True)
    labels = pd.concat([b.labels for b in batches]).reset_index(drop=True)
    amount = rows["amt"].astype(float)
    hour = pd.to_datetime(rows["trans_date_trans_time"]).dt.hour
    testing = labels["scenario"] == "card_testing"
    assert (amount[testing] < 3.01).mean() > 0.5  # mostly tiny probes
    takeover = labels["scenario"] == "account_takeover"
    assert hour[takeover].isin([22, 23, 0, 1, 2, 3, 4]).all()
    legit = labels["is_fraud"] == 0
    assert amount[labels["scenario"] == "large_outlier"].median() > 5 * amount[legit].median()
    distance = np.hypot(rows["lat"] - rows["merch_lat"], rows["long"] - rows["merch_long"])
    assert distance[legit].median() < distance[takeover].median()  # people shop near home


def test_world_persists_in_the_object_store(tmp_path):
    store = LocalObjectStore(tmp_path, "fraud-raw")
    first = load_or_build_world(store, 50, seed=11)
    assert store.list_keys("simulator/world/")
    again = load_or_build_world(store, 50, seed=11)
    assert again.customers.equals(first.customers) and again.merchants.equals(first.merchants)
    t = datetime(2026, 2, 1, tzinfo=UTC)
    a = simulate_window(first, t, t + timedelta(days=1), 0.02, 2.0)
    b = simulate_window(again, t, t + timedelta(days=1), 0.02, 2.0)
    assert a.transactions.equals(b.transactions)
