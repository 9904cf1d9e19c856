"""`fraud evaluate` on a small labelled CSV: ingest -> Glue job -> train -> evaluate in a throwaway FRAUD_HOME,
the network and each baseline on the test window as JSON (and every test row's scores as CSV); windows without
fraud are refused before training, with windows that fit; the user's FRAUD_HOME is left alone."""

import json
from datetime import date, datetime, timedelta

import pandas as pd
from typer.testing import CliRunner

from fraud.app.cli import app
from fraud.core.schema import RAW_COLUMNS
from fraud.model import metrics

BASELINES = {"logistic_regression", "gradient_boosting", "random_forest"}
MODELS = {"neural_network", *BASELINES, "random"}


def _labelled_csv(path, days: int = 16, no_fraud_from: date | None = None) -> int:
    """Simulated Sparkov rows with is_fraud and some optional columns emptied, as a CSV file; every row from
    `no_fraud_from` on labelled genuine."""
    from fraud.ingest.simulate import build_world, simulate_days

    batches = simulate_days(build_world(400, seed=11), date(2026, 2, 1), days, 0.03, 2.0)
    rows = pd.concat([b.transactions.merge(b.labels[["trans_num", "is_fraud"]], on="trans_num") for b in batches])
    if no_fraud_from is not None:
        rows.loc[pd.to_datetime(rows["trans_date_trans_time"]) >= pd.Timestamp(no_fraud_from), "is_fraud"] = 0
    rows.loc[rows.index[::7], ["job", "street", "gender"]] = ""  # columns other than the required ones may be empty
    rows[[*RAW_COLUMNS, "is_fraud"]].to_csv(path, index=False)
    return int(rows["is_fraud"].sum())


def test_fraud_evaluate_prints_every_model_as_json_and_the_scores_of_every_test_row(tmp_path, fraud_env):
    csv = tmp_path / "labelled.csv"
    frauds = _labelled_csv(csv)
    out, scores = tmp_path / "metrics.json", tmp_path / "scores.csv"
    raw_zone = fraud_env / "s3" / "fraud-raw"
    before = sorted(raw_zone.rglob("*")) if raw_zone.exists() else []  # other tests may have written there already
    # labels known 1.5 days after each transaction: the delay window defaults to 2 days
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--csv",
            str(csv),
            "--train-start",
            "2026-02-03",
            "--train-days",
            "7",
            "--label-delay-days",
            "1.5",
            "--test-days",
            "5",
            "--json",
            str(out),
            "--scores",
            str(scores),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert set(printed["models"]) == MODELS
    protocol = printed["protocol"]
    assert (
        protocol["train_start"] == "2026-02-03T00:00:00+00:00" and protocol["test_end"] == "2026-02-17T00:00:00+00:00"
    )
    assert protocol["delay_days"] == 2 and printed["label_delay_days"] == 1.5
    assert printed["rows"]["read"] == printed["rows"]["loaded"] == printed["rows"]["labelled"]
    assert printed["rows"]["frauds"] == frauds
    test = printed["test"]
    assert test["rows"] > 3_000 and test["frauds"] > 20
    windows = printed["windows"]
    assert {k: windows["test"][k] for k in test} == test
    assert {k: windows["train"][k] for k in ("rows", "frauds")} == printed["train"]
    assert windows["delay"]["start"] == protocol["train_end"] and windows["delay"]["rows"] > 0
    # progress names the real windows, after the split is known
    assert f"train window 2026-02-03 .. 2026-02-09: {windows['train']['rows']:,} rows" in result.stderr
    assert f"test window  2026-02-12 .. 2026-02-16: {test['rows']:,} rows, {test['frauds']:,} frauds" in result.stderr
    for name, values in printed["models"].items():
        assert {
            "roc_auc",
            "average_precision",
            "card_precision_at_100",
            "precision_at_budget",
            "recall_at_budget",
            "threshold",
        } <= set(values), name
        assert values["test_rows"] == test["rows"] and values["test_frauds"] == test["frauds"]
    nn, random = printed["models"]["neural_network"], printed["models"]["random"]
    assert nn["average_precision"] > 3 * random["average_precision"] and nn["roc_auc"] > 0.85
    assert printed["best_baseline"] in BASELINES
    # the scores file: one row per test transaction, whose scores give the reported average precision
    assert printed["scores"] == str(scores)
    rows = pd.read_csv(scores, float_precision="round_trip")
    assert list(rows.columns) == ["trans_num", "event_time", "card_token", "is_fraud", *printed["models"]]
    assert len(rows) == test["rows"] and rows["is_fraud"].sum() == test["frauds"] and rows["trans_num"].is_unique
    times = pd.to_datetime(rows["event_time"], utc=True)
    assert times.min() >= pd.Timestamp(windows["test"]["start"]) and times.max() < pd.Timestamp(windows["test"]["end"])
    for name, values in printed["models"].items():
        assert (
            metrics.average_precision(rows["is_fraud"].to_numpy(bool), rows[name].to_numpy())
            == values["average_precision"]
        ), name
    # the session's own FRAUD_HOME got nothing: evaluate worked in a throwaway one
    assert (sorted(raw_zone.rglob("*")) if raw_zone.exists() else []) == before


def test_fraud_evaluate_refuses_windows_without_fraud_before_training_and_suggests_some(tmp_path, fraud_env):
    csv = tmp_path / "quiet_end.csv"
    _labelled_csv(csv, days=10, no_fraud_from=date(2026, 2, 8))  # no fraud in the last 3 days
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--csv",
            str(csv),
            "--train-days",
            "4",
            "--test-days",
            "3",
            "--label-delay-days",
            "1",
            "--scores",
            str(tmp_path / "scores.csv"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "no fraud in the test window" in result.stderr
    assert "test window  2026-02-08 .. 2026-02-10: " in result.stderr and ", 0 frauds" in result.stderr
    assert "train window 2026-02-03 .. 2026-02-06: " in result.stderr  # the delay window: the label delay, 1 day
    suggestion = next(line for line in result.stderr.splitlines() if "try: " in line)
    assert "--train-days 4 --delay-days 1 --test-days 3" in suggestion, suggestion
    assert "training the network" not in result.stderr and not (tmp_path / "scores.csv").exists()
    assert result.stdout == ""


def test_label_delay_days_sets_when_the_ingested_labels_become_known(tmp_path, fraud_env):
    from fraud.app.evaluate import throwaway_settings
    from fraud.core.schema import decode_jsonl_gz
    from fraud.core.settings import Settings
    from fraud.core.storage import object_store
    from fraud.ingest.csv_files import ingest_csv

    csv = tmp_path / "two.csv"
    csv.write_text(
        "trans_num,trans_date_trans_time,cc_num,merchant,amt,is_fraud\n"
        "t1,2026-02-01 10:00:00,4111111111111111,shop,12.5,1\n"
        "t2,2026-02-02 11:30:00,4111111111111111,shop,8.0,0\n"
    )

    def labelled_at(label_delay_days):
        settings = throwaway_settings(tmp_path / f"home-{label_delay_days}", Settings(), label_delay_days)
        labels = ingest_csv(csv, settings).labels_key
        return {
            row["trans_num"]: row["labelled_at"]
            for row in decode_jsonl_gz(object_store(settings, settings.raw_bucket).get_bytes(labels))
        }

    default = Settings().label_delay_days
    assert labelled_at(None) == {
        "t1": str(datetime(2026, 2, 1, 10) + timedelta(days=default)),
        "t2": str(datetime(2026, 2, 2, 11, 30) + timedelta(days=default)),
    }
    assert labelled_at(5) == {"t1": "2026-02-06 10:00:00", "t2": "2026-02-07 11:30:00"}
    assert labelled_at(0.25) == {"t1": "2026-02-01 16:00:00", "t2": "2026-02-02 17:30:00"}


def test_fraud_evaluate_refuses_a_csv_without_labels(tmp_path, fraud_env):
    csv = tmp_path / "unlabelled.csv"
    csv.write_text(
        "trans_num,trans_date_trans_time,cc_num,merchant,amt\nt1,2026-02-01 10:00:00,4111111111111111,shop,12.5\n"
    )
    result = CliRunner().invoke(app, ["evaluate", "--csv", str(csv)])
    assert result.exit_code == 1 and "no labelled fraud" in result.stderr
    missing = CliRunner().invoke(app, ["evaluate", "--csv", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
