"""The evaluation protocol on hand-built histories: windows, who trains, who is tested, the budget threshold,
the metric table and the quality gate's rules."""
from datetime import date

import numpy as np
import pandas as pd
import pytest

from fraud.evaluation import (LabelledData, Protocol, Windows, budget_threshold, evaluate_scorer, gate_on_window,
                              metrics_table, quality_gate, random_scorer, split)
from fraud.features import FEATURE_NAMES

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
    assert windows == Windows(DAY0, DAY0 + pd.Timedelta(days=7), DAY0 + pd.Timedelta(days=14), DAY0 + pd.Timedelta(days=21))
    assert Windows.from_dict(windows.as_dict()) == windows


def test_anchored_windows_end_on_the_last_day_of_data():
    times = pd.Series(pd.to_datetime(["2026-03-01 10:00", "2026-03-10 00:00"], utc=True))
    windows = Protocol(delay_days=2, test_days=3).windows(times)
    # a transaction at midnight belongs to its own day: the test window runs to the end of 10 March
    assert windows.test_end == pd.Timestamp("2026-03-11", tz="UTC")
    assert windows.test_start == pd.Timestamp("2026-03-08", tz="UTC")
    assert windows.train_end == pd.Timestamp("2026-03-06", tz="UTC")
    assert windows.train_start == DAY0  # all history
    assert Protocol(delay_days=2, test_days=3, train_days=1).windows(times).train_start == pd.Timestamp("2026-03-05", tz="UTC")
    with pytest.raises(ValueError):
        Protocol(delay_days=1, test_days=0)
    with pytest.raises(ValueError):
        Protocol(delay_days=1, test_days=1, train_start=date(2026, 3, 1))


def test_split_trains_on_known_labels_and_drops_known_compromised_cards_from_the_test():
    # windows: train [day 0, 2), delay [2, 4), test [4, 6)
    data = _data([
        ("t1", 0.5, "a", True, 1.0, 0),   # fraud on card a, labelled on day 1.5: known before the test
        ("t2", 1.5, "b", False, 1.0, 0),
        ("t3", 1.9, "c", True, 3.0, 0),   # in the train window but its label arrives on day 4.9: not trainable
        ("t4", 2.5, "d", False, 1.0, 0),  # delay window
        ("t5", 4.2, "a", True, 1.0, 0),   # test: card a already known compromised -> excluded
        ("t6", 4.5, "c", True, 1.0, 0),   # test: card c's earlier fraud was not known yet -> kept
        ("t7", 5.5, "e", False, 1.0, 0),
        ("t8", 6.5, "f", False, 1.0, 0),  # after the test window
    ])
    windows = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2).windows(data.rows["event_time"])
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
    protocol = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2, alert_budget_per_day=1, precision_k=1)
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
    result = evaluate_scorer("random", random_scorer(), split(data, protocol.windows(data.rows["event_time"])), protocol)
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
    windows = Protocol(train_start=date(2026, 3, 1), train_days=2, delay_days=2, test_days=2).windows(data.rows["event_time"])
    perfect, inverted = (lambda x: x[:, 0]), (lambda x: -x[:, 0])
    decision = gate_on_window(data, windows, 0.2, "m-new", inverted, "m-old", perfect)
    assert not decision.passed and decision.latest_average_precision == 1.0
    assert decision.candidate_average_precision < 0.5
    assert gate_on_window(data, windows, 0.2, "m-new", perfect, "m-old", inverted).passed
    # the promoted model is the candidate itself (unchanged data): it is compared with itself and passes
    same = gate_on_window(data, windows, 0.2, "m-new", perfect, "m-new", None)
    assert same.passed and same.latest_average_precision == same.candidate_average_precision == 1.0
