"""`fraud_model`'s metadata reads well and keeps its plot: numbers rounded, the gate and the models as tables, no
JSON blobs, and the precision-recall plot on every materialization, a re-used version's too (a retrain on unchanged
data used to lose it). A stand-in trainer and in-memory data keep TensorFlow's fit and the database out of it."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, JsonMetadataValue, materialize

from assets import modelling, resources
from assets.modelling import fraud_model, model_quality_gate
from assets.resources import FraudPlatform
from fraud.model import promotion
from tests.helpers.fake_training import fake_trainer, first_feature_weights, labelled_world


@pytest.fixture()
def no_database(monkeypatch, tmp_path):
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    monkeypatch.setattr(resources, "get_engine", lambda settings, role: None)
    monkeypatch.setattr(resources, "upgrade", lambda engine: None)
    monkeypatch.setattr(promotion, "labelled_data", lambda engine: labelled_world())
    monkeypatch.setattr(promotion, "train", fake_trainer(first_feature_weights()))
    monkeypatch.setattr(modelling, "people_verdicts", lambda engine: 0)


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def _materialize(instance):
    platform = FraudPlatform(test_days=2, min_average_precision=0.0)
    result = materialize([fraud_model, model_quality_gate], instance=instance, resources={"fraud": platform})
    assert result.success
    [check] = result.get_asset_check_evaluations()
    [event] = result.asset_materializations_for_node("fraud_model")
    return event.metadata, check


def test_every_materialization_has_its_plot_and_readable_metadata(no_database):
    instance = DagsterInstance.ephemeral()
    first, first_check = _materialize(instance)
    again, again_check = _materialize(instance)  # unchanged data: the same version, re-used

    assert first["reused"].value is False and again["reused"].value is True
    assert again["version"].value == first["version"].value and again["promoted"].value is True
    assert again["previous_latest"].value == first["version"].value and first["previous_latest"].value == "none"
    for metadata, check in ((first, first_check), (again, again_check)):
        assert metadata["precision_recall_curve"].value.startswith("![precision-recall on the test window](data:")
        assert "| neural_network |" in metadata["metrics_table"].value  # the network against each baseline
        assert "| candidate |" in metadata["gate"].value and "| floor |" in metadata["gate"].value
        assert "| train |" in metadata["windows"].value and "| test |" in metadata["windows"].value
        assert check.passed and "| candidate |" in check.metadata["gate"].value
        for entries in (metadata, check.metadata):
            assert not [name for name, value in entries.items() if isinstance(value, JsonMetadataValue)]
            floats = {name: value.value for name, value in entries.items() if isinstance(value.value, float)}
            assert floats and all(_decimals(v) <= 4 for v in floats.values()), floats
