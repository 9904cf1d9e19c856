"""Train, gate, promote (fraud/model/promotion.py) on a folder registry with in-memory labelled data and a stand-in
trainer (a small real LiteRT model): a good model is promoted and keeps its precision-recall plot beside it; the
same data re-uses the version and the plot; a worse model is refused and LATEST stays; the audit notices a LATEST
that disagrees with the gate."""

from __future__ import annotations

import base64

import pytest

from fraud.core.settings import Settings
from fraud.model import promotion, registry
from tests.helpers.fake_training import fake_trainer, first_feature_weights, labelled_world

PNG = b"\x89PNG"


@pytest.fixture()
def settings(tmp_path) -> Settings:
    # floor 0: only the comparison with the promoted model can refuse
    return Settings(home=tmp_path, test_days=2, label_delay_days=1, min_average_precision=0.0)


def _world(monkeypatch, data, trainer) -> None:
    monkeypatch.setattr(promotion, "labelled_data", lambda engine: data)
    monkeypatch.setattr(promotion, "train", trainer)


def test_protocol_follows_the_settings(settings):
    protocol = promotion.protocol_for(settings.model_copy(update={"label_delay_days": 2.5}))
    assert (protocol.delay_days, protocol.test_days, protocol.alert_budget_per_day) == (3, 2, 40)


def test_a_good_model_is_promoted_with_its_plot_and_unchanged_data_reuses_both(settings, monkeypatch):
    calls: list[int] = []
    _world(monkeypatch, labelled_world(), fake_trainer(first_feature_weights(), calls=calls))
    models = promotion.Models.of(settings)

    first = promotion.retrain(settings, engine=None)
    assert calls == [len(labelled_world())] and not first.reused
    assert first.promoted and first.previous_latest is None and first.latest == first.version == models.latest()
    assert first.decision.candidate_average_precision > 0.5
    stored = models.store.get_bytes(f"{settings.model_name}/{first.version}/{promotion.PLOT_FILE}")
    assert stored.startswith(PNG) and base64.b64decode(first.precision_recall_png) == stored

    again = promotion.retrain(settings, engine=None)
    assert len(calls) == 1  # not trained again
    assert again.reused and again.version == first.version and again.promoted
    assert again.previous_latest == again.latest == first.version
    assert again.precision_recall_png == first.precision_recall_png  # the plot is shown again, not lost


def test_a_version_without_a_kept_plot_gets_the_network_curve(settings, monkeypatch):
    _world(monkeypatch, labelled_world(), fake_trainer(first_feature_weights()))
    first = promotion.retrain(settings, engine=None)
    models = promotion.Models.of(settings)
    models.store.delete(f"{settings.model_name}/{first.version}/{promotion.PLOT_FILE}")  # trained before plots

    again = promotion.retrain(settings, engine=None)
    assert again.reused and base64.b64decode(again.precision_recall_png).startswith(PNG)


def test_a_worse_model_is_refused_and_latest_stays(settings, monkeypatch):
    _world(monkeypatch, labelled_world(seed=1), fake_trainer(first_feature_weights()))
    good = promotion.retrain(settings, engine=None)

    # new data (another version), a model that knows nothing: below the promoted model on the same window
    _world(monkeypatch, labelled_world(seed=2), fake_trainer())
    worse = promotion.retrain(settings, engine=None)
    assert worse.version != good.version and not worse.promoted
    assert worse.previous_latest == worse.latest == good.version
    assert any("below the promoted" in reason for reason in worse.decision.reasons)
    assert promotion.Models.of(settings).has(worse.version)  # kept in the registry, not promoted

    audit = promotion.audit(settings, None, worse.version, good.version)
    assert audit.passed is False and audit.expected == audit.latest == good.version
    assert audit.reasons == list(worse.decision.reasons)  # refused, and LATEST agrees with the refusal


def test_the_audit_notices_a_latest_that_disagrees_with_the_gate(settings, monkeypatch):
    _world(monkeypatch, labelled_world(seed=1), fake_trainer(first_feature_weights()))
    good = promotion.retrain(settings, engine=None)
    _world(monkeypatch, labelled_world(seed=2), fake_trainer())
    worse = promotion.retrain(settings, engine=None)
    models = promotion.Models.of(settings)
    registry.promote(models.store, models.name, worse.version)  # promoted by hand despite the gate

    audit = promotion.audit(settings, None, worse.version, good.version)
    assert not audit.passed and audit.latest == worse.version
    assert audit.reasons[-1] == f"LATEST is {worse.version}, expected {good.version}"

    passing = promotion.audit(settings, None, good.version, None)  # the good model against no earlier one
    assert passing.decision.passed and not passing.passed  # LATEST should be the good model, and is not
