"""CSVs the platform writes for people (the report's flagged.csv, `fraud evaluate --scores`) cannot carry a
formula: every text cell starting with = + - @, tab or carriage return gets a leading quote, in every text column."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from fraud.outreach.report import FORMULA_PREFIXES, csv_for_people, flagged_csv

PAYLOAD = "cmd|' /C calc'!A0"
# the flagged frame's text columns, and the CSV column each one lands in (the card column always starts "•••• ")
TEXT_COLUMNS = {
    "trans_num": "trans_num",
    "merchant": "merchant",
    "category": "category",
    "state": "state",
    "model_version": "model_version",
    "top_reasons": "reasons",
}


def _flagged(**values: str) -> pd.DataFrame:
    row = {
        "trans_num": "t-1",
        "event_time": pd.Timestamp("2026-11-02T10:00:00Z"),
        "last4": "1111",
        "merchant": "fraud_Kub PLC",
        "category": "grocery_pos",
        "state": "NY",
        "amount": 12.5,
        "score": 0.9,
        "threshold": 0.5,
        "model_version": "v1",
        "is_fraud": True,
        "top_reasons": "card_count_1h",
        **values,
    }
    return pd.DataFrame([row])


def _cells(text: str) -> dict[str, str]:
    return next(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES, ids=repr)
@pytest.mark.parametrize("column", TEXT_COLUMNS)
def test_flagged_csv_quotes_every_formula_prefix_in_every_text_column(column, prefix):
    hostile = prefix + PAYLOAD
    cells = _cells(flagged_csv(_flagged(**{column: hostile})))
    shown = TEXT_COLUMNS[column]
    assert cells[shown].startswith("'"), (shown, cells[shown])
    assert hostile in cells[shown]
    if column == "top_reasons":  # the reason in words is the stored text too
        assert cells["reasons_in_words"].startswith("'")
    assert not any(value.startswith(FORMULA_PREFIXES) for value in cells.values())


def test_harmless_text_and_numbers_are_left_alone():
    cells = _cells(flagged_csv(_flagged(merchant="fraud_Kub PLC")))
    assert cells["merchant"] == "Kub PLC" and cells["trans_num"] == "t-1" and cells["amount"] == "12.5"
    frame = pd.DataFrame({"trans_num": ["-5", "ok"], "score": np.array([-0.25, 0.5])})
    assert _cells(csv_for_people(frame)) == {"trans_num": "'-5", "score": "-0.25"}  # a negative number stays one


def test_evaluate_scores_csv_is_guarded():
    from fraud.app.evaluate import scores_frame
    from fraud.model.evaluation import LabelledData

    class Result:
        test_scores = [0.1]

    rows = pd.DataFrame(
        {
            "trans_num": ["=HYPERLINK(1)"],
            "event_time": [pd.Timestamp("2026-11-02", tz="UTC")],
            "card_token": ["@x"],
            "is_fraud": [True],
        }
    )
    test = LabelledData(rows, np.zeros((1, 3), dtype=np.float32))
    cells = _cells(csv_for_people(scores_frame(test, {"network": Result()})))
    assert cells["trans_num"] == "'=HYPERLINK(1)" and cells["card_token"] == "'@x"
