"""The training benchmark's building blocks on a tiny world, so `make bench` cannot rot."""

from datetime import date

from bench.training import compare_on_protocol, simulated_data, time_training
from fraud.features.catalog import FEATURE_NAMES
from fraud.model.evaluation import Protocol


def test_simulated_data_from_several_worlds_has_features_and_labels():
    data = simulated_data(customers=80, days=6, fraud_rate=0.05, worlds=2)
    assert data.x.shape == (len(data), len(FEATURE_NAMES)) and data.frauds > 0
    assert data.rows["trans_num"].is_unique and data.rows["event_time"].is_monotonic_increasing
    assert data.rows["card_token"].nunique() > 80  # cards of both worlds

    protocol = Protocol(train_start=date(2026, 1, 2), train_days=2, delay_days=1, test_days=2)
    comparison = compare_on_protocol(data, protocol)
    assert set(comparison["metrics"]) == {"neural_network", "logistic_regression", "gradient_boosting", "random_forest"}
    assert comparison["train_rows"] > 0 and all(s > 0 for s in comparison["seconds"].values())
    timing = time_training(data)
    assert timing["rows"] == len(data) and timing["network"] > 0 and timing["gradient_boosting"] > 0
