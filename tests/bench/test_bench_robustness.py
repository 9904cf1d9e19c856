"""The robustness table's building blocks on tiny sizes: the Fraud Detection Handbook generator (bench/worlds.py)
and the world x label-delay table (bench/robustness.py), so `make bench` cannot rot."""

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from bench.worlds import EMPTY_COLUMNS, handbook_world
from fraud.core.privacy import luhn_valid
from fraud.core.schema import RAW_COLUMNS

START = date(2026, 1, 1)
DAY = 86_400


@pytest.fixture(scope="module")
def world():
    return handbook_world(n_customers=300, n_terminals=600, days=40, start=START, seed=5, label_delay_days=3)


def _day_index(transactions: pd.DataFrame) -> np.ndarray:
    return (transactions["unix_time"].to_numpy() - int(pd.Timestamp(START, tz="UTC").timestamp())) // DAY


def test_handbook_rows_are_raw_sparkov_rows(world):
    tx, labels = world.transactions, world.labels
    assert list(tx.columns) == list(RAW_COLUMNS) and len(tx) > 5_000
    assert tx["trans_num"].is_unique and list(labels["trans_num"]) == list(tx["trans_num"])
    assert (tx[list(EMPTY_COLUMNS)] == "").all().all()  # no holder or merchant-location fields
    assert tx["merchant"].isin(set(world.terminals["merchant"])).all()
    assert tx["unix_time"].is_monotonic_increasing
    assert (pd.to_datetime(tx["trans_date_trans_time"], utc=True).astype("int64") // 10**9 == tx["unix_time"]).all()
    assert (
        pd.to_datetime(labels["labelled_at"], utc=True) - pd.to_datetime(tx["trans_date_trans_time"], utc=True)
        == pd.Timedelta(days=3)
    ).all()
    assert (tx["amt"] >= 0).all() and _day_index(tx).max() == 39


def test_handbook_cards_are_luhn_valid_one_per_customer(world):
    cards = world.customers["cc_num"]
    assert cards.is_unique and all(len(c) == 16 and c.isdigit() and luhn_valid(c) for c in cards)
    assert set(world.transactions["cc_num"]) <= set(cards)


def test_handbook_fraud_scenarios(world):
    tx, labels = world.transactions, world.labels
    fraud = labels["is_fraud"].to_numpy() == 1
    assert 0.005 < fraud.mean() < 0.3 and set(labels.loc[fraud, "scenario"]) == {
        "amount_over_220",
        "compromised_terminal",
        "compromised_customer",
    }
    assert (labels.loc[~fraud, "scenario"] == "").all()
    # scenario 1: every transaction above 220 is fraud
    assert fraud[tx["amt"].to_numpy() > 220].all() and (tx["amt"] > 220).any()
    # scenario 2: each day 2 terminals; all their transactions on that day and the next 27 are fraud
    day = _day_index(tx)
    compromised = world.compromised_terminals
    assert (compromised.groupby("day").size() == 2).all() and len(compromised) == 2 * 40
    covered = np.zeros(len(tx), dtype=bool)
    for d, merchant in compromised.itertuples(index=False):
        covered |= (tx["merchant"].to_numpy() == merchant) & (day >= d) & (day < d + 28)
    assert covered.sum() > 50 and fraud[covered].all()
    scenario = labels["scenario"].to_numpy()
    assert (
        (covered == (scenario == "compromised_terminal")).all()
        or ((scenario == "compromised_terminal") <= covered).all()
        and (scenario[covered & (scenario != "compromised_terminal")] == "compromised_customer").all()
    )  # scenario 3 comes last
    # scenario 3: each day 3 customers; about a third of their next 14 days' transactions, amount x 5
    customers = world.compromised_customers
    assert (customers.groupby("day").size() == 3).all()
    exposed = np.zeros(len(tx), dtype=bool)
    for d, card in customers.itertuples(index=False):
        exposed |= (tx["cc_num"].to_numpy() == card) & (day >= d) & (day < d + 14)
    hit = (labels["scenario"] == "compromised_customer").to_numpy()
    assert hit.any() and exposed[hit].all()
    assert 0.2 < hit.sum() / exposed.sum() < 0.5


def test_handbook_world_is_deterministic_for_a_seed(world):
    again = handbook_world(n_customers=300, n_terminals=600, days=40, start=START, seed=5, label_delay_days=3)
    pd.testing.assert_frame_equal(again.transactions, world.transactions)
    pd.testing.assert_frame_equal(again.labels, world.labels)
    other = handbook_world(n_customers=300, n_terminals=600, days=40, start=START, seed=6, label_delay_days=3)
    assert not other.transactions["trans_num"].isin(set(world.transactions["trans_num"])).any()
    assert not other.customers["cc_num"].isin(set(world.customers["cc_num"])).any()


def test_handbook_world_of_60_days_and_3000_customers_in_seconds():
    import time

    started = time.perf_counter()
    big = handbook_world(n_customers=3_000, n_terminals=6_000, days=60, start=START, seed=1)
    assert len(big.transactions) > 300_000 and time.perf_counter() - started < 30  # ~1.5 s on a quiet machine


@pytest.fixture
def no_export(monkeypatch):
    """The table does not need the model files: skip the .keras/.tflite export (seconds per cell)."""
    monkeypatch.setattr("fraud.model.network.export", lambda model: {})


def test_table_has_a_row_per_world_and_delay_with_an_ap_per_model(tmp_path, no_export):
    from rich.console import Console

    from bench.robustness import cell_data, robustness_table, summarize, summary_lines, table
    from fraud.model.baselines import BASELINES
    from fraud.model.network import NAME, TrainingConfig

    config = TrainingConfig(hidden_units=(8,), members=1, epochs=2)
    cells = robustness_table(("a", "c"), (2, 7), size="quick", cache=tmp_path, config=config)
    assert [(c["world"], c["delay_days"]) for c in cells] == [("a", 2), ("a", 7), ("c", 2), ("c", 7)]
    for cell in cells:
        assert set(cell["models"]) == {NAME, *BASELINES, "random"}
        assert all(0 <= m["average_precision"] <= 1 for m in cell["models"].values())
        assert cell["test_frauds"] > 0 and cell["best_baseline"] in BASELINES and cell["network_over_best"] > 0
    rendered = table(cells)
    assert rendered.row_count == 4 and len(rendered.columns) == 4 + len(BASELINES) + 1 + 4
    summary = summarize(cells)
    assert summary["cells"] == 4 and 0 <= summary["network_at_or_above_best"] <= 4
    assert summary["goal_met"] is False or "random_forest" in BASELINES
    console = Console(width=200, record=True)
    console.print(rendered)
    assert "NN / best" in console.export_text() and any("goal" in line for line in summary_lines(cells, summary))
    # the cells were cached: read back, the same data
    assert len(list(tmp_path.iterdir())) == 4
    cached = cell_data("c", 2, size="quick", cache=tmp_path)
    built = cell_data("c", 2, size="quick")
    assert cached.fingerprint() == built.fingerprint() and cached.rows["event_time"].dt.tz is not None


def test_world_b_has_its_own_fraud_mix():
    import inspect

    from bench.robustness import raw_rows
    from fraud.ingest.simulate import simulate_days

    if "scenario_share" not in inspect.signature(simulate_days).parameters:
        with pytest.raises(RuntimeError, match="scenario_share"):
            raw_rows("b", 2, size="quick")
        return
    _, a = raw_rows("a", 2, size="quick")
    _, b = raw_rows("b", 2, size="quick")
    share = {
        name: (labels["scenario"] == "card_testing").sum() / max(1, labels["is_fraud"].astype(bool).sum())
        for name, labels in (("a", a), ("b", b))
    }
    assert share["b"] > share["a"]


def test_cli_quick_writes_json(tmp_path, no_export, monkeypatch, capsys):
    import bench.robustness as robustness

    monkeypatch.setattr(robustness, "QUICK_EPOCHS", 1)
    assert robustness.main(["--quick", "--worlds", "c", "--delays", "2", "--json", str(tmp_path / "t.json")]) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["size"] == "quick" and len(report["cells"]) == 1 and report["summary"]["cells"] == 1
    assert "goal" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown world"):
        robustness.main(["--quick", "--worlds", "z"])


def test_bench_phase_rows(no_export):
    from rich.console import Console

    from bench.robustness import run
    from fraud.model.network import TrainingConfig

    console = Console(width=200, record=True)
    rows = run(
        console,
        size="quick",
        config=TrainingConfig(hidden_units=(8,), members=1, epochs=1),
        world_names=("c",),
        delays=(7,),
    )
    assert len(rows) == 2 and all(len(row) == 6 for row in rows)  # the cell and the summary, as the bench table's rows
    assert rows[0][0] == "robustness: NN AP, world c, label delay 7 d" and "goal" in console.export_text()
