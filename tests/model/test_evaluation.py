"""The evaluation protocol on hand-built histories: windows, who trains, who is tested, the budget threshold,
the metric table and the quality gate's rules."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraud.features.catalog import FEATURE_NAMES
from fraud.model.evaluation import (
    LabelledData,
    Protocol,
    Windows,
    budget_threshold,
    evaluate_scorer,
    gate_on_window,
    metrics_table,
    quality_gate,
    random_scorer,
    split,
)

DAY0 = pd.Timestamp("2026-03-01", tz="UTC")


def _data(rows: list[tuple]) -> LabelledData:
    """rows: (trans_num, day offset (float), card, is_fraud, label delay in days, first feature value)."""
    frame = pd.DataFrame(rows, columns=["trans_num", "day", "card_token", "is_fraud", "delay", "f0"])
    frame["event_time"] = DAY0 + pd.to_timedelta(frame["day"], unit="D")
    frame["labelled_at"] = frame["event_time"] + pd.to_timedelta(frame["delay"], unit="D")
    x = np.zeros((len(frame), len(FEATURE_NAMES)), dtype=np.float32)
    x[:, 0] = frame["f0"]
    return LabelledData.of(frame[["trans_num", "event_time", "card_token", "is_fraud", "labelled_at"]], x)


def test_explicit_windows_follow_each_other():
    protocol = Protocol(train_start=date(2026, 3, 1), train_days=7, delay_days=7, test_days=7)
    windows = protocol.windows(pd.Series([], dtype="datetime64[ns, UTC]"))
    assert windows == Windows(
        DAY0, DAY0 + pd.Timedelta(days=7), DAY0 + pd.Timedelta(days=14), DAY0 + pd.Timedelta(days=21)
    )
    assert Windows.from_dict(windows.as_dict()) == windows


def test_anchored_windows_end_on_the_last_day_of_data():
    times = pd.Series(pd.to_datetime(["2026-03-01 10:00", "2026-03-10 00:00"], utc=True))
    windows = Protocol(delay_days=2, test_days=3).windows(times)
    # a transaction at midnight belongs to its own day: the test window runs to the end of 10 March
    assert windows.test_end == pd.Timestamp("2026-03-11", tz="UTC")
    assert windows.test_start == pd.Timestamp("2026-03-08", tz="UTC")
    assert windows.train_end == pd.Timestamp("2026-03-06", tz="UTC")
    assert windows.train_start == DAY0  # all history
    assert Protocol(delay_days=2, test_days=3, train_days=1).windows(times).train_start == pd.Timestamp(
        "2026-03-05", tz="UTC"
    )
    with pytest.raises(ValueError):
        Protocol(delay_days=1, test_days=0)
    with pytest.raises(ValueError):
        Protocol(delay_days=1, test_days=1, train_start=date(2026, 3, 1))


def test_split_trains_on_known_labels_and_drops_known_compromised_cards_from_the_test():
    # windows: train [day 0, 2), delay [2, 4), test [4, 6)
    data = _data(
        [
            ("t1", 0.5, "a", True, 1.0, 0),  # fraud on card a, labelled on day 1.5: known before the test
            ("t2", 1.5, "b", False, 1.0, 0),
            ("t3", 1.9, "c", True, 3.0, 0),  # in the train window but its label arrives on day 4.9: not trainable
            ("t4", 2.5, "d", False, 1.0, 0),  # delay window
            ("t5", 4.2, "a", True, 1.0, 0),  # test: card a already known compromised -> excluded
            ("t6", 4.5, "c", True, 1.0, 0),  # test: card c's earlier fraud was not known yet -> kept
            ("t7", 5.5, "e", False, 1.0, 0),
            ("t8", 6.5, "f", False, 1.0, 0),  # after the test window
        ]
    )
    windows = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2).windows(
        data.rows["event_time"]
    )
    parts = split(data, windows)
    assert list(parts.train.rows["trans_num"]) == ["t1", "t2"]
    assert list(parts.delay.rows["trans_num"]) == ["t4"]
    assert list(parts.test.rows["trans_num"]) == ["t6", "t7"]
    assert parts.excluded_known_compromised == 1
    assert parts.train.x.shape == (2, len(FEATURE_NAMES))


def test_threshold_comes_from_the_delay_window_at_the_alert_budget():
    # delay window (2 days) holds 6 transactions with feature values 1..6; a budget of 1 alert a day -> the
    # 2nd highest delay score, 5; the test scores play no part in it
    rows = [(f"d{i}", 2.1 + i * 0.3, f"c{i}", False, 9.0, float(i)) for i in range(1, 7)]
    rows += [("t1", 0.5, "x", True, 0.1, 0), ("t2", 4.5, "y", True, 0.1, 100.0), ("t3", 4.6, "z", False, 0.1, 5.5)]
    data = _data(rows)
    protocol = Protocol(
        train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2, alert_budget_per_day=1, precision_k=1
    )
    parts = split(data, protocol.windows(data.rows["event_time"]))
    assert budget_threshold(lambda x: x[:, 0], parts, 1) == 5.0
    result = evaluate_scorer("first_feature", lambda x: x[:, 0], parts, protocol)
    assert result.threshold == 5.0
    # test rows: y (100, fraud) and z (5.5, legit), both flagged -> precision 1/2, recall 1, 1 alert a day
    assert result.metrics["precision_at_budget"] == 0.5 and result.metrics["recall_at_budget"] == 1.0
    assert result.metrics["alerts_per_day"] == 1.0
    assert result.metrics["average_precision"] == 1.0 and result.metrics["roc_auc"] == 1.0
    assert result.metrics["card_precision_at_1"] == 1.0  # day 4: card y is the top card and is fraud
    assert result.metrics["test_rows"] == 2 and result.metrics["test_frauds"] == 1


def test_undefined_metrics_are_null_and_the_table_shows_them_as_dashes():
    data = _data([("t1", 0.5, "a", True, 0.1, 1), ("t2", 4.5, "b", False, 0.1, 1)])
    protocol = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2)
    result = evaluate_scorer(
        "random", random_scorer(), split(data, protocol.windows(data.rows["event_time"])), protocol
    )
    assert result.metrics["average_precision"] is None and result.metrics["roc_auc"] is None
    table = metrics_table({"random": result.metrics})
    assert table.splitlines()[0].startswith("| model | roc_auc | average_precision | card_precision_at_100")
    assert "| random | - | - |" in table


def test_quality_gate_rules():
    assert quality_gate("m-new", 0.5, floor=0.2).passed
    assert quality_gate("m-new", 0.5, floor=0.2, latest_version="m-old", latest_ap=0.5).passed  # equal is not worse
    below_floor = quality_gate("m-new", 0.1, floor=0.2)
    assert not below_floor.passed and "below the floor" in below_floor.reasons[0]
    worse = quality_gate("m-new", 0.5, floor=0.2, latest_version="m-old", latest_ap=0.6)
    assert not worse.passed and "m-old" in worse.reasons[0]
    assert not quality_gate("m-new", None, floor=0.0).passed  # no fraud in the test window: cannot judge


def test_gate_scores_both_models_on_the_candidate_test_window():
    rows = [("t0", 0.5, "a", True, 0.1, 0.0)]
    rows += [(f"t{i}", 4.0 + i * 0.1, f"c{i}", i % 3 == 0, 0.1, float(i % 3 == 0)) for i in range(1, 10)]
    data = _data(rows)
    windows = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2).windows(
        data.rows["event_time"]
    )
    perfect, inverted = (lambda x: x[:, 0]), (lambda x: -x[:, 0])
    decision = gate_on_window(data, windows, 0.2, "m-new", inverted, "m-old", perfect)
    assert not decision.passed and decision.latest_average_precision == 1.0
    assert decision.candidate_average_precision < 0.5
    assert gate_on_window(data, windows, 0.2, "m-new", perfect, "m-old", inverted).passed
    # the promoted model is the candidate itself (unchanged data): it is compared with itself and passes
    same = gate_on_window(data, windows, 0.2, "m-new", perfect, "m-new", None)
    assert same.passed and same.latest_average_precision == same.candidate_average_precision == 1.0


# --- `fraud evaluate`'s window check and suggestion (fraud/app/evaluate.py) --------------------------------


def _history(frauds: dict[int, str], days: int) -> LabelledData:
    """Three legitimate transactions a day on cards of their own, and frauds {day: card} at noon; every label
    known half a day after its transaction."""
    rows = [
        (f"l{day}-{i}", day + 0.2 * (i + 1), f"legit{day}-{i}", False, 0.5, 0) for day in range(days) for i in range(3)
    ]
    rows += [(f"f{day}", day + 0.5, card, True, 0.5, 1) for day, card in frauds.items()]
    return _data(rows)


def test_window_check_names_the_empty_test_window_and_suggests_longer_windows_that_fit():
    from fraud.app.evaluate import describe_windows, suggest_windows, window_problems, windows_error

    data = _history({2: "a", 4: "b", 10: "c", 12: "d", 14: "e"}, days=20)
    protocol = Protocol(train_days=3, delay_days=1, test_days=3)  # anchored at the end: train 13-15, test 17-19
    parts = split(data, protocol.windows(data.rows["event_time"]))
    problems = window_problems(parts)
    assert problems[0].startswith("not enough labelled fraud in the train window")
    assert problems[1:] == ["no fraud in the test window: average precision and ROC AUC would be undefined"]
    assert describe_windows(parts)[2].startswith("test window  2026-03-18 .. 2026-03-20: 9 rows, 0 frauds")
    # 3/1/3-day windows never hold 2 frauds in both; 6/1/6 do from day 0, 1 and 2 on: the latest start wins
    suggestion = suggest_windows(data, protocol, target_frauds=2)
    assert suggestion.options() == "--train-start 2026-03-03 --train-days 6 --delay-days 1 --test-days 6"
    assert (suggestion.split.train.frauds, suggestion.split.test.frauds) == (2, 3)
    assert not window_problems(suggestion.split)
    # short of the target, the windows with the most fraud in the poorer one: 3/1/3 days from day 2 (2 and 1)
    few = suggest_windows(_history({2: "a", 4: "b", 8: "c"}, days=12), protocol, target_frauds=10)
    assert few.options() == "--train-start 2026-03-03 --train-days 3 --delay-days 1 --test-days 3"
    assert (few.split.train.frauds, few.split.test.frauds) == (2, 1)
    message = windows_error(data, parts, protocol, problems)
    assert "labelled data: 65 rows, 5 frauds on 5 days, 2026-03-01 .. 2026-03-20" in message
    assert "try: --train-start" in message and "train window 2026-03-14 .. 2026-03-16" in message


def test_no_suggestion_when_no_window_puts_fraud_in_both():
    from fraud.app.evaluate import suggest_windows, windows_error

    protocol = Protocol(train_days=3, delay_days=1, test_days=3)
    assert suggest_windows(_history({2: "a"}, days=12), protocol) is None  # a single fraud cannot train and test
    # the only later fraud is on card a, known compromised since day 1: it is left out of every test window
    compromised = _history({1: "a", 2: "b", 6: "a"}, days=8)
    assert suggest_windows(compromised, protocol) is None
    parts = split(compromised, protocol.windows(compromised.rows["event_time"]))
    assert "it needs more labelled fraud" in windows_error(compromised, parts, protocol, ["no fraud"])


def test_too_little_train_fraud_is_a_problem_and_no_best_baseline_without_average_precision():
    from fraud.app.evaluate import window_problems
    from fraud.model.evaluation import best_baseline

    data = _history({2: "a", 10: "b"}, days=12)
    parts = split(
        data,
        Protocol(train_start=date(2026, 3, 1), train_days=5, delay_days=1, test_days=5).windows(
            data.rows["event_time"]
        ),
    )
    assert [p.split(" in the train")[0] for p in window_problems(parts)] == ["not enough labelled fraud"]
    null = {"roc_auc": None, "average_precision": None}
    assert (
        best_baseline(
            {"neural_network": null, "logistic_regression": null, "random_forest": null, "random": null},
            "neural_network",
        )
        is None
    )
    assert (
        best_baseline(
            {
                "neural_network": {"average_precision": 0.9},
                "logistic_regression": null,
                "random_forest": {"average_precision": 0.3},
                "random": {"average_precision": 0.5},
            },
            "neural_network",
        )
        == "random_forest"
    )
