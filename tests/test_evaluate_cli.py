"""`fraud evaluate` on a small labelled CSV: ingest -> Glue job -> train -> evaluate in a throwaway FRAUD_HOME,
the network and each baseline on the test window as JSON; the user's FRAUD_HOME is left alone."""
import json
from datetime import date

import pandas as pd
from typer.testing import CliRunner

from fraud.cli import app
from fraud.schema import RAW_COLUMNS

MODELS = {"neural_network", "logistic_regression", "gradient_boosting", "random"}


def _labelled_csv(path, days: int = 16) -> int:
    """Simulated Sparkov rows with is_fraud and some optional columns emptied, as a CSV file."""
    from fraud.simulate import build_world, simulate_days

    batches = simulate_days(build_world(400, seed=11), date(2026, 2, 1), days, 0.03, 2.0)
    rows = pd.concat([b.transactions.merge(b.labels[["trans_num", "is_fraud"]], on="trans_num") for b in batches])
    rows.loc[rows.index[::7], ["job", "street", "gender"]] = ""  # columns other than the required ones may be empty
    rows[[*RAW_COLUMNS, "is_fraud"]].to_csv(path, index=False)
    return int(rows["is_fraud"].sum())


def test_fraud_evaluate_prints_every_model_as_json(tmp_path, fraud_env):
    csv = tmp_path / "labelled.csv"
    frauds = _labelled_csv(csv)
    out = tmp_path / "metrics.json"
    raw_zone = fraud_env / "s3" / "fraud-raw"
    before = sorted(raw_zone.rglob("*")) if raw_zone.exists() else []  # other tests may have written there already
    result = CliRunner().invoke(app, ["evaluate", "--csv", str(csv), "--train-start", "2026-02-03", "--train-days", "7",
                                      "--delay-days", "2", "--test-days", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert set(printed["models"]) == MODELS
    protocol = printed["protocol"]
    assert protocol["train_start"] == "2026-02-03T00:00:00+00:00" and protocol["test_end"] == "2026-02-17T00:00:00+00:00"
    assert printed["rows"]["read"] == printed["rows"]["loaded"] == printed["rows"]["labelled"]
    assert printed["rows"]["frauds"] == frauds
    test = printed["test"]
    assert test["rows"] > 3_000 and test["frauds"] > 20
    for name, values in printed["models"].items():
        assert {"roc_auc", "average_precision", "card_precision_at_100", "precision_at_budget", "recall_at_budget",
                "threshold"} <= set(values), name
        assert values["test_rows"] == test["rows"] and values["test_frauds"] == test["frauds"]
    nn, random = printed["models"]["neural_network"], printed["models"]["random"]
    assert nn["average_precision"] > 3 * random["average_precision"] and nn["roc_auc"] > 0.85
    assert printed["best_baseline"] in {"logistic_regression", "gradient_boosting"}
    # the session's own FRAUD_HOME got nothing: evaluate worked in a throwaway one
    assert (sorted(raw_zone.rglob("*")) if raw_zone.exists() else []) == before


def test_fraud_evaluate_refuses_a_csv_without_labels(tmp_path, fraud_env):
    csv = tmp_path / "unlabelled.csv"
    csv.write_text("trans_num,trans_date_trans_time,cc_num,merchant,amt\n"
                   "t1,2026-02-01 10:00:00,4111111111111111,shop,12.5\n")
    result = CliRunner().invoke(app, ["evaluate", "--csv", str(csv)])
    assert result.exit_code == 1 and "no labelled fraud" in result.stderr
    missing = CliRunner().invoke(app, ["evaluate", "--csv", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
