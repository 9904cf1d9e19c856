"""The backtest on a hand-made history of 15 transactions over 5 days: every figure below was counted by hand from
the table (labels known and unknown, the model's flags, a rule that fails at run time on an empty category, a rule
that never fires), not recomputed with the code under test."""

from __future__ import annotations

import json
from datetime import date

import pytest

import fraud.rules.backtest as backtest_module
from fraud.features.catalog import FEATURE_NAMES
from fraud.rules import Outcome, load_rules
from fraud.rules.backtest import BacktestResult, Catch, HistoryRow, backtest

RULES = load_rules("""
version = "bt-1"

[[rule]]
id = "big"
description = "a large amount"
expression = "amt >= 1000.0"
outcome = "review"
priority = 20

[[rule]]
id = "velocity"
description = "five or more on the card in an hour"
expression = "card_count_1h >= 5.0"
outcome = "block"
priority = 100

[[rule]]
id = "model"
description = "the model's threshold"
expression = "score >= threshold"
outcome = "review"
priority = 10

[[rule]]
id = "divides"
description = "short category names (an integer division by zero when the category is empty)"
expression = "10 / size(category) >= 1"
outcome = "block"
priority = 50

[[rule]]
id = "negative"
description = "never fires"
expression = "amt < 0.0"
outcome = "approve"
priority = 1
""")

# trans_num, day of November 2026, amount, category, card_count_1h, score, label (None: unknown), model flagged.
# Threshold 0.5. Fired rules and the verdict, by hand, on the right.
TABLE = [
    ("t01", 1, 50.0, "grocery_pos", 1, 0.10, False, False),  # -                               approve
    ("t02", 1, 1500.0, "grocery_pos", 1, 0.20, True, False),  # big                            review (big)
    ("t03", 1, 30.0, "grocery_pos", 6, 0.90, True, True),  # velocity, model                   block (velocity)
    ("t04", 2, 2500.0, "grocery_pos", 7, 0.70, None, True),  # velocity, big, model            block (velocity)
    ("t05", 2, 20.0, "gas", 1, 0.05, False, False),  # divides                                 block (divides)
    ("t06", 2, 80.0, "", 1, 0.60, False, True),  # model; divides fails                        review (model)
    ("t07", 3, 1200.0, "", 2, 0.30, None, False),  # big; divides fails                        review (big)
    ("t08", 3, 60.0, "grocery_pos", 1, 0.80, True, True),  # model                             review (model)
    ("t09", 3, 40.0, "grocery_pos", 1, 0.10, True, False),  # - (a fraud nothing caught)       approve
    ("t10", 4, 3000.0, "gas", 5, 0.95, True, True),  # velocity, divides, big, model           block (velocity)
    ("t11", 4, 25.0, "grocery_pos", 1, 0.55, None, True),  # model                              review (model)
    ("t12", 5, 10.0, "grocery_pos", 1, 0.02, None, False),  # -                                 approve
    ("t13", 5, 1000.0, "grocery_pos", 1, 0.45, False, True),  # big (flagged at another threshold) review (big)
    ("t14", 5, 70.0, "", 9, 0.20, True, False),  # velocity; divides fails                     block (velocity)
    ("t15", 5, 15.0, "grocery_pos", 1, 0.50, False, True),  # model (0.50 >= 0.50)              review (model)
]


def history() -> list[HistoryRow]:
    return [
        HistoryRow(
            trans_num=trans_num,
            day=date(2026, 11, day),
            fields=dict.fromkeys(FEATURE_NAMES, 0.0)
            | {
                "card_count_1h": float(count),
                "amt": amount,
                "category": category,
                "merchant": "fraud_Hand",
                "score": score,
                "threshold": 0.5,
            },
            is_fraud=label,
            amount=amount,
            model_flagged=flagged,
        )
        for trans_num, day, amount, category, count, score, label, flagged in TABLE
    ]


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    return backtest(RULES, iter(history()))  # an iterator: read in one pass


def test_the_window_and_its_totals(result):
    # labelled: 11 (t04, t07, t11, t12 unknown); frauds t02 t03 t08 t09 t10 t14: 1500 + 30 + 60 + 40 + 3000 + 70
    assert (result.first_day, result.last_day, result.days) == (date(2026, 11, 1), date(2026, 11, 5), 5)
    assert (result.transactions, result.labelled, result.frauds) == (15, 11, 6)
    assert result.fraud_amount == 4700.0
    assert result.ruleset_version == "bt-1"
    assert [rule.rule_id for rule in result.rules] == ["big", "velocity", "model", "divides", "negative"]


# hits, hits/day, labelled hits, unlabelled hits, fraud hits, precision, recall, fraud amount, overlap, share
EXPECTED = {
    # t02 t04 t07 t10 t13; frauds t02 t10 (1500 + 3000); labelled t02 t10 t13; flagged t04 t10 t13
    "big": Catch(5, 1.0, 3, 2, 2, 2 / 3, 2 / 6, 4500.0, 3, 3 / 5),
    # t03 t04 t10 t14; frauds t03 t10 t14 (30 + 3000 + 70); flagged t03 t04 t10
    "velocity": Catch(4, 0.8, 3, 1, 3, 1.0, 3 / 6, 3100.0, 3, 3 / 4),
    # t03 t04 t06 t08 t10 t11 t15; labelled t03 t06 t08 t10 t15, frauds t03 t08 t10 (30 + 60 + 3000); all flagged
    "model": Catch(7, 1.4, 5, 2, 3, 3 / 5, 3 / 6, 3090.0, 7, 1.0),
    # t05 t10 (category "gas"); fraud t10; flagged t10
    "divides": Catch(2, 0.4, 2, 0, 1, 1 / 2, 1 / 6, 3000.0, 1, 1 / 2),
    # no hit: no precision, no share; recall 0 of the 6 frauds
    "negative": Catch(0, 0.0, 0, 0, 0, None, 0.0, 0.0, 0, None),
}
DECIDED = {"big": 3, "velocity": 4, "model": 4, "divides": 1, "negative": 0}  # t02 t07 t13 / t06 t08 t11 t15 / t05


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_each_rule(result, rule_id):
    rule = result.rule(rule_id)
    _same(rule.catch, EXPECTED[rule_id])
    assert rule.decided == DECIDED[rule_id]
    assert rule.errors == (3 if rule_id == "divides" else 0)  # t06 t07 t14: size("") is 0


def _same(got: Catch, expected: Catch) -> None:
    """Field by field: counts exactly, ratios to rounding, None where there is no denominator."""
    for name, want in expected.as_json().items():
        have = got.as_json()[name]
        assert (have is None) == (want is None), name
        if want is not None:
            assert have == pytest.approx(want), name


def test_a_rule_failing_at_run_time_is_counted_and_does_not_fire(result):
    divides = result.rule("divides")
    assert divides.first_error is not None and "ZeroDivisionError" in divides.first_error
    assert result.rule("big").first_error is None
    assert result.transactions_with_errors == 3


def test_the_set(result):
    assert dict(result.outcomes) == {Outcome.APPROVE: 3, Outcome.REVIEW: 7, Outcome.BLOCK: 5}
    # acted on: all but t01 t09 t12; labelled t02 t03 t05 t06 t08 t10 t13 t14 t15; frauds t02 t03 t08 t10 t14
    # (1500 + 30 + 60 + 3000 + 70); flagged t03 t04 t06 t08 t10 t11 t13 t15
    _same(result.acted_on, Catch(12, 2.4, 9, 3, 5, 5 / 9, 5 / 6, 4660.0, 8, 8 / 12))
    # blocked: t03 t04 t05 t10 t14; labelled t03 t05 t10 t14, frauds t03 t10 t14; flagged t03 t04 t10
    _same(result.block, Catch(5, 1.0, 4, 1, 3, 3 / 4, 3 / 6, 3100.0, 3, 3 / 5))
    # the model alone: t03 t04 t06 t08 t10 t11 t13 t15; labelled t03 t06 t08 t10 t13 t15, frauds t03 t08 t10
    _same(result.model, Catch(8, 1.6, 6, 2, 3, 3 / 6, 3 / 6, 3090.0, 8, 1.0))


def test_each_transaction_is_evaluated_once(monkeypatch):
    calls = []
    real = backtest_module.evaluate

    def counting(ruleset, fields):
        calls.append(fields)
        return real(ruleset, fields)

    monkeypatch.setattr(backtest_module, "evaluate", counting)
    backtest(RULES, history())
    assert len(calls) == len(TABLE)


def test_as_json(result):
    figures = json.loads(json.dumps(result.as_json()))
    assert figures["window"] == {"first_day": "2026-11-01", "last_day": "2026-11-05", "days": 5}
    assert figures["set"]["outcomes"] == {"approve": 3, "review": 7, "block": 5}
    assert figures["set"]["acted_on"]["hits"] == 12 and figures["set"]["block"]["fraud_amount"] == 3100.0
    assert figures["set"]["transactions_with_errors"] == 3
    assert figures["model_flags"]["hits"] == 8
    big = figures["rules"][0]
    assert big["id"] == "big" and big["outcome"] == "review" and big["expression"] == "amt >= 1000.0"
    assert (big["hits"], big["fraud_hits"], big["decided"], big["precision"]) == (5, 2, 3, pytest.approx(2 / 3))
    negative = figures["rules"][4]
    assert negative["precision"] is None and negative["model_overlap_share"] is None and negative["recall"] == 0.0


def test_an_empty_history():
    empty = backtest(RULES, [])
    assert (empty.first_day, empty.last_day, empty.days, empty.transactions) == (None, None, 0, 0)
    assert dict(empty.outcomes) == {Outcome.APPROVE: 0, Outcome.REVIEW: 0, Outcome.BLOCK: 0}
    big = empty.rule("big").catch
    assert (big.hits, big.hits_per_day, big.precision, big.recall, big.model_overlap_share) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert empty.as_json()["window"] == {"first_day": None, "last_day": None, "days": 0}
