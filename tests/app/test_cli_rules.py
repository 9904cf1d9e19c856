"""`fraud rules check` and `fraud rules backtest` through the command line (typer's CliRunner): the figures of a
backtest on a small history in the session's database (--json, computed by hand below), the table, the window
options, the live rules by default, and the refusal of a rule file that does not load.

The rows have their own trans_num prefix and event times in February 2034 (no other module writes then); each is
scored by one model version only, so the promoted version (whatever other modules promoted) changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from fraud.app.cli import app
from fraud.rules import load_rules
from fraud.rules.ruleset import DEFAULT_RULES_PATH
from tests.db.test_replay import Past, forget_history, insert_history, vector

PREFIX = "rcl-"
DAY1 = datetime(2034, 2, 1, tzinfo=UTC)
WINDOW = ["--since", "2034-02-01", "--until", "2034-02-03"]

RULES = """version = "cli-1"

[[rule]]
id = "big"
description = "a large amount"
expression = "amt >= 1000.0"
outcome = "block"
priority = 20

[[rule]]
id = "model"
description = "the model's threshold"
expression = "score >= threshold"
outcome = "review"
priority = 10
"""


def past(n: int, day: int, amount: float, score: float | None, label: bool | None, category: str = "travel") -> Past:
    when = DAY1 + timedelta(days=day, hours=n)
    scores = () if score is None else (("rcl-model", score, 0.5, score >= 0.5, when, "approve", "none"),)
    return Past(f"{PREFIX}{n}", when, amount, category, scores, label, vector(float(n)))


HISTORY = [
    past(1, 0, 1500.0, 0.9, True),  # big, model: block (big)
    past(2, 0, 20.0, 0.1, False, "grocery_pos"),  # nothing: approve
    past(3, 1, 2500.0, 0.3, None),  # big: block (big)
    past(4, 2, 30.0, 0.6, False),  # model: review (model)
    past(5, 2, 10.0, None, None),  # never scored: left out
    past(6, 3, 5000.0, 0.95, True),  # the day after --until
]


@pytest.fixture(scope="module")
def history(engine):
    insert_history(engine, HISTORY, PREFIX)
    yield
    forget_history(engine, PREFIX)


@pytest.fixture()
def rules_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["rules", *args])


def test_backtest_json_figures(history, rules_file, tmp_path):
    out = tmp_path / "figures.json"
    result = run("backtest", "--rules", str(rules_file), *WINDOW, "--json", str(out))
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["rules_file"] == str(rules_file) and figures["ruleset_version"] == "cli-1"
    assert figures["requested"] == {"since": "2034-02-01T00:00:00+00:00", "until": "2034-02-04T00:00:00+00:00"}
    assert figures["window"] == {"first_day": "2034-02-01", "last_day": "2034-02-03", "days": 3}
    assert (figures["transactions"], figures["labelled"], figures["frauds"]) == (4, 3, 1)
    assert (figures["fraud_amount"], figures["unscored_left_out"]) == (1500.0, 1)
    big, model = figures["rules"]
    # big: rcl-1 (fraud, flagged) and rcl-3 (no label)
    assert {k: big[k] for k in ("id", "hits", "labelled_hits", "unlabelled_hits", "fraud_hits", "decided")} == {
        "id": "big",
        "hits": 2,
        "labelled_hits": 1,
        "unlabelled_hits": 1,
        "fraud_hits": 1,
        "decided": 2,
    }
    assert (big["precision"], big["recall"], big["fraud_amount"]) == (1.0, 1.0, 1500.0)
    assert (big["hits_per_day"], big["model_overlap"], big["model_overlap_share"]) == (pytest.approx(2 / 3), 1, 0.5)
    # model: rcl-1 (fraud) and rcl-4 (genuine), both flagged; it decides rcl-4 only
    assert (model["hits"], model["labelled_hits"], model["fraud_hits"], model["decided"]) == (2, 2, 1, 1)
    assert (model["precision"], model["recall"], model["model_overlap_share"]) == (0.5, 1.0, 1.0)
    assert figures["set"]["outcomes"] == {"approve": 1, "review": 1, "block": 2}
    acted = figures["set"]["acted_on"]  # rcl-1, rcl-3, rcl-4
    assert (acted["hits"], acted["labelled_hits"], acted["fraud_hits"], acted["precision"]) == (
        3,
        2,
        1,
        0.5,
    )
    assert (figures["set"]["block"]["hits"], figures["set"]["block"]["precision"]) == (2, 1.0)
    assert figures["model_flags"]["hits"] == 2  # rcl-1, rcl-4
    # the table too
    for text in ("rule set cli-1", "big", "the set: acted on", "the set: blocked", "block 2", "left out"):
        assert text in result.stdout, text
    assert "replayed 4 transactions" in result.stderr


def test_backtest_json_to_stdout_and_the_window(history, rules_file):
    result = run(
        "backtest", "--rules", str(rules_file), "--since", "2034-02-02", "--until", "2034-02-04", "--json", "-"
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # only the JSON
    assert figures["window"]["first_day"] == "2034-02-02" and figures["transactions"] == 3  # rcl-3, rcl-4, rcl-6
    assert run("backtest", "--since", "2034-02-03", "--until", "2034-02-01").exit_code == 2
    empty = run("backtest", "--rules", str(rules_file), "--since", "2034-01-10", "--until", "2034-01-11")
    assert empty.exit_code == 0 and "rule set cli-1" in empty.stdout
    assert "no scored transaction in the window" in empty.stdout and "hits" not in empty.stdout
    assert run("backtest", "--since", "Feb 1").exit_code == 2


def test_backtest_of_the_live_rules_by_default(history):
    result = run("backtest", *WINDOW)
    assert result.exit_code == 0, result.output
    for rule in load_rules(DEFAULT_RULES_PATH).rules:
        assert rule.id in result.stdout
    assert str(DEFAULT_RULES_PATH) in result.stdout


def test_a_rule_file_that_does_not_load(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(RULES.replace('"amt >= 1000.0"', '"amount >= 1000.0"'))
    for args in (["check", str(bad)], ["backtest", "--rules", str(bad)]):
        result = run(*args)
        assert result.exit_code == 1
        assert result.stderr.startswith("error: rule 'big': unknown field(s) amount"), result.stderr
    missing = run("check", str(tmp_path / "nowhere.toml"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_check_lists_the_rules(rules_file, tmp_path):
    result = run("check", str(rules_file))
    assert result.exit_code == 0, result.output
    assert "rule set cli-1, 2 rules" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "amt >= 1000.0" in line or "score >= threshold" in line]
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines]
    assert cells == [["big", "block", "20", "amt >= 1000.0"], ["model", "review", "10", "score >= threshold"]]
    # an expression with CEL's list brackets is shown as written, not taken for rich markup
    listed = tmp_path / "list.toml"
    listed.write_text(RULES.replace('"amt >= 1000.0"', "\"category in ['travel', 'misc_net']\""))
    assert "category in ['travel', 'misc_net']" in run("check", str(listed)).stdout
