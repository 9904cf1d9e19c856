import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud.core.privacy import normalize_card_number
from fraud.core.schema import RAW_COLUMNS
from fraud.core.storage import LocalObjectStore
from fraud.ingest.simulate import (
    FRAUD_KEY,
    REPORT_MAX_DAYS,
    SCENARIO_SHARE,
    Events,
    LabelTiming,
    build_world,
    label_delays,
    load_or_build_world,
    scenario_mix,
    simulate_days,
    simulate_window,
)

UTC = UTC
DAY = 86400


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
    for a, b in zip(first, second, strict=False):
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


# --- label timing -------------------------------------------------------------------------------------------


def _delays(batches) -> pd.DataFrame:
    """Each label's scenario and delay in days (from the transaction's unix_time to labelled_at)."""
    rows = pd.concat([b.transactions for b in batches])[["trans_num", "unix_time"]]
    labels = pd.concat([b.labels for b in batches]).merge(rows, on="trans_num")
    seconds = pd.to_datetime(labels["labelled_at"]).astype("int64") // 10**9 - labels["unix_time"]
    return labels.assign(days=seconds / DAY)


@pytest.fixture(scope="module")
def realistic(world):
    return simulate_days(world, date(2026, 1, 1), 40, 0.03, 2.0, label_timing=LabelTiming())


def test_label_delays_per_scenario_stay_in_their_documented_ranges(realistic):
    delays = _delays(realistic)
    assert (delays.loc[delays["scenario"] == "", "days"] == 2.0).all()  # genuine: at maturity, exactly
    for scenario in ("card_testing", "account_takeover"):  # reports: gamma(2), mean 2 days, cut at 14
        days = delays.loc[delays["scenario"] == scenario, "days"]
        assert len(days) > 50 and (days > 0).all() and (days <= REPORT_MAX_DAYS).all()
        assert 1.4 < days.mean() < 2.6 and days.max() > 3  # spread out, not a constant
    for scenario in ("compromised_merchant", "large_outlier"):  # chargebacks: uniform over 7-45 days
        days = delays.loc[delays["scenario"] == scenario, "days"]
        assert len(days) > 20 and (days >= 7).all() and (days <= 45).all()
        assert 18 < days.mean() < 34 and days.max() - days.min() > 20


def test_label_timing_parameters_move_the_delays(world):
    timing = LabelTiming(report_mean_days=0.5, chargeback_days=(10, 12), unlabelled_share=0.0)
    delays = _delays(simulate_days(world, date(2026, 1, 1), 30, 0.03, 3.0, label_timing=timing))
    report = delays.loc[delays["scenario"].isin(["card_testing", "account_takeover"]), "days"]
    chargeback = delays.loc[delays["scenario"].isin(["compromised_merchant", "large_outlier"]), "days"]
    assert 0.3 < report.mean() < 0.7
    assert chargeback.between(10, 12).all()
    assert (delays.loc[delays["scenario"] == "", "days"] == 3.0).all()


def test_a_share_of_frauds_is_never_labelled(realistic):
    # on 200,000 synthetic frauds, the share is what the timing says
    keys = FRAUD_KEY | np.arange(200_000, dtype=np.uint64)
    n = len(keys)
    events = Events(
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.zeros(n),
        np.full(n, "card_testing", dtype=object),
        keys,
    )
    for share in (0.05, 0.2):
        missing = (label_delays(events, 3, 2.0, LabelTiming(unlabelled_share=share)) < 0).mean()
        assert abs(missing - share) < 0.005
    assert (label_delays(events, 3, 2.0, None) == 2 * DAY).all()  # constant timing: every label, at maturity
    # in the batches: unlabelled frauds have no label row, are all fraud, and genuine transactions all have one
    labels = pd.concat([b.labels for b in realistic])
    unlabelled = pd.concat([b.unlabelled for b in realistic])
    rows = pd.concat([b.transactions for b in realistic])
    assert len(labels) + len(unlabelled) == len(rows)
    assert not unlabelled["trans_num"].isin(labels["trans_num"]).any()
    assert set(unlabelled["scenario"]) <= set(SCENARIO_SHARE) and "" not in set(unlabelled["scenario"])
    frauds = (labels["is_fraud"] == 1).sum() + len(unlabelled)
    assert 0.02 < len(unlabelled) / frauds < 0.09


def test_constant_timing_keeps_every_label_at_the_delay(world):
    """label_timing None (the benchmarks) is the simulator's labels as they were: all of them, each exactly
    label_delay_days after its transaction; realistic timing changes only the labels, never the traffic."""
    constant = simulate_days(world, date(2026, 1, 1), 4, 0.03, 2.0)
    for batch in constant:
        rows, labels = batch.transactions, batch.labels
        assert list(labels.columns) == ["trans_num", "is_fraud", "labelled_at", "scenario"] and batch.unlabelled.empty
        assert (labels["trans_num"] == rows["trans_num"]).all()
        expected = (pd.to_datetime(rows["trans_date_trans_time"]) + pd.Timedelta(days=2)).dt.strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        assert (labels["labelled_at"] == expected).all()
        assert (labels["is_fraud"] == (labels["scenario"] != "").astype(int)).all()
    realistic = simulate_days(world, date(2026, 1, 1), 4, 0.03, 2.0, label_timing=LabelTiming())
    for a, b in zip(constant, realistic, strict=False):
        assert a.transactions.equals(b.transactions)
        genuine = a.labels[a.labels["is_fraud"] == 0].reset_index(drop=True)
        assert genuine.equals(b.labels[b.labels["is_fraud"] == 0].reset_index(drop=True))


def test_windows_agree_under_realistic_label_timing(world):
    t = datetime(2026, 1, 20, tzinfo=UTC)
    timing = LabelTiming()
    parts = [
        simulate_window(
            world, t + timedelta(hours=6 * i), t + timedelta(hours=6 * (i + 1)), 0.05, 2.0, label_timing=timing
        )
        for i in range(4)
    ]
    whole = simulate_window(world, t, t + timedelta(days=1), 0.05, 2.0, label_timing=timing)
    for field in ("transactions", "labels", "unlabelled"):
        joined = pd.concat([getattr(p, field) for p in parts]).reset_index(drop=True)
        assert joined.equals(getattr(whole, field).reset_index(drop=True)), field
    assert (whole.labels["is_fraud"] == 1).sum() > 5  # the windows held frauds to agree on


# --- the fraud mix --------------------------------------------------------------------------------------------


def test_scenario_share_is_validated_and_normalised():
    assert dict(scenario_mix()) == SCENARIO_SHARE  # bit for bit: the default traffic does not move
    assert scenario_mix({k: 10 * v for k, v in SCENARIO_SHARE.items()}) == scenario_mix()
    assert dict(scenario_mix({"card_testing": 3, "large_outlier": 1})) == {
        "card_testing": 0.75,
        "account_takeover": 0.0,
        "compromised_merchant": 0.0,
        "large_outlier": 0.25,
    }
    for bad, message in (
        ({"skimming": 1}, "unknown fraud scenarios"),
        ({"card_testing": -1, "large_outlier": 2}, "non-negative"),
        ({"card_testing": 0}, "more than 0"),
        ({"card_testing": float("nan")}, "finite"),
    ):
        with pytest.raises(ValueError, match=message):
            scenario_mix(bad)


def test_scenario_share_reaches_the_fraud_plans(world):
    batches = simulate_days(world, date(2026, 1, 1), 10, 0.03, 2.0, scenario_share={"card_testing": 1})
    labels = pd.concat([b.labels for b in batches])
    assert set(labels.loc[labels["is_fraud"] == 1, "scenario"]) == {"card_testing"}
    assert (labels["is_fraud"] == 1).sum() > 50


# --- batch ids ------------------------------------------------------------------------------------------------


def test_the_batch_id_names_every_content_parameter(world):
    t = datetime(2026, 1, 5, tzinfo=UTC)

    def batch_id(w=world, rate=0.02, delay=2.0, **content) -> str:
        return simulate_window(w, t, t + timedelta(hours=1), rate, delay, **content).batch_id

    base = batch_id()
    assert re.fullmatch(r"sim-3-c300-[0-9a-f]{8}-20260105T0000-20260105T0100", base)
    assert batch_id() == base == batch_id(scenario_share=SCENARIO_SHARE) == batch_id(label_timing=None)
    assert batch_id(label_timing=LabelTiming()) == batch_id(label_timing=LabelTiming())
    others = [
        batch_id(build_world(60, seed=3)),
        batch_id(rate=0.03),
        batch_id(delay=3.0),
        batch_id(scenario_share={"card_testing": 1}),
        batch_id(label_timing=LabelTiming()),
        batch_id(label_timing=LabelTiming(unlabelled_share=0.1)),
        batch_id(label_timing=LabelTiming(report_mean_days=1.0)),
        batch_id(label_timing=LabelTiming(chargeback_days=(7.0, 30.0))),
    ]
    assert len({base, *others}) == 1 + len(others)
    assert others[0].startswith("sim-3-c60-")


# --- refusing to rewrite a batch ------------------------------------------------------------------------------


def test_the_cli_refuses_to_rewrite_a_batch_with_other_content(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fraud.app.cli import app
    from fraud.core.settings import Settings
    from fraud.core.storage import object_store

    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    command = ["simulate", "--start-day", "2027-03-01", "--days", "1", "--customers", "40"]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    store = object_store(Settings(), Settings().raw_bucket)
    assert CliRunner().invoke(app, command).exit_code == 0  # the same content again: a no-op
    [key] = store.list_keys("transactions/")
    store.put_bytes(key, b"another simulator's batch")
    refused = CliRunner().invoke(app, command)
    assert refused.exit_code == 1
    assert f"BatchConflict: fraud-raw/{key} already exists with different content" in refused.stderr
    assert "Traceback" not in refused.output and isinstance(refused.exception, SystemExit)
    assert store.get_bytes(key) == b"another simulator's batch"  # nothing overwritten


def test_a_stored_world_comes_back_exactly_and_needs_no_parquet_engine(tmp_path, monkeypatch):
    from fraud.core.settings import Settings
    from fraud.core.storage import object_store
    from fraud.ingest.simulate import build_world, load_or_build_world

    store = object_store(Settings(home=tmp_path), "fraud-raw")
    built = load_or_build_world(store, 200, 5)
    monkeypatch.setattr(pd, "read_parquet", None)  # the generator Lambda's zip has no Parquet engine
    loaded = load_or_build_world(store, 200, 5)
    fresh = build_world(200, 5)
    for frame in ("customers", "merchants"):
        pd.testing.assert_frame_equal(getattr(loaded, frame), getattr(built, frame), check_exact=True)
        pd.testing.assert_frame_equal(getattr(loaded, frame), getattr(fresh, frame), check_exact=True)
