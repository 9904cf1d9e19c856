"""The blocking quality gate in Dagster: a good model is promoted; a model trained on shuffled labels is refused
by `model_quality_gate`, LATEST stays where it was and the downstream scoring does not run."""

import numpy as np
import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, materialize
from sqlalchemy import text

from assets.definitions import ALL_ASSETS, ALL_CHECKS, defs
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.engine import get_engine
from fraud.model import registry
from tests.helpers.homes import own_fraud_home


@pytest.fixture(scope="module")
def gate_settings(fraud_env):
    """Its own FRAUD_HOME (and database) with ten simulated days processed by the Glue job."""
    from glue.process_transactions import run
    from lambdas.generator.handler import handler as generate

    # floor 0: only the comparison with the promoted model can refuse the shuffled-label model
    with own_fraud_home(
        "fraud-gate-",
        FRAUD_TEST_DAYS="3",
        FRAUD_ALERT_BUDGET_PER_DAY="20",
        FRAUD_MIN_AVERAGE_PRECISION="0",
        FRAUD_TRAIN_EPOCHS="12",
    ):
        settings = Settings()
        world = settings.model_copy(update={"sim_customers": 600, "sim_fraud_rate": 0.02})
        generated = generate({"start_day": "2026-06-01", "days": 10}, settings=world)
        raw = object_store(settings, settings.raw_bucket)
        from fraud.db.migrate import upgrade

        upgrade(get_engine(settings))
        run(
            {
                "raw_uri": raw.uri(),
                "processed_uri": object_store(settings, settings.processed_bucket).uri(),
                "transactions_keys": ",".join(b["transactions_key"] for b in generated["batches"]),
                "labels_keys": ",".join(k for b in generated["batches"] for k in b["labels_keys"]),
            },
            settings,
            report=lambda s: None,
        )
        yield settings


def _run(instance, *names):
    # AssetSelection.assets also selects the checks of those assets (a list of AssetKeys does not)
    return materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        selection=AssetSelection.assets(*names),
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )


def _shuffle_labels_before(engine, start: pd.Timestamp) -> int:
    """A broken label feed: the labels of every transaction before `start` permuted at random."""
    with engine.begin() as connection:
        rows = connection.execute(
            text("""
            SELECT l.trans_num, l.is_fraud FROM transaction_label l JOIN fact_transaction t USING (trans_num)
            WHERE t.event_time < :start ORDER BY l.trans_num"""),
            {"start": start.to_pydatetime()},
        ).all()
        shuffled = np.random.default_rng(0).permutation([r.is_fraud for r in rows])
        connection.execute(
            text("UPDATE transaction_label SET is_fraud = :f WHERE trans_num = :t"),
            [{"t": r.trans_num, "f": bool(f)} for r, f in zip(rows, shuffled, strict=False)],
        )
    return len(rows)


@pytest.mark.e2e
def test_shuffled_labels_model_is_blocked_and_latest_stays(gate_settings):
    settings = gate_settings
    store = object_store(settings, settings.models_bucket)
    instance = DagsterInstance.ephemeral()

    first = _run(instance, "fraud_model")
    assert first.success
    [check] = first.get_asset_check_evaluations()
    assert check.check_name == "model_quality_gate" and check.passed
    good = registry.latest_version(store, settings.model_name)
    metadata = first.asset_materializations_for_node("fraud_model")[0].metadata
    assert metadata["version"].value == good and metadata["promoted"].value is True
    assert (
        "| neural_network |" in metadata["metrics_table"].value
        and "| gradient_boosting |" in metadata["metrics_table"].value
    )
    assert "data:image/png;base64," in metadata["precision_recall_curve"].value
    test_start = pd.Timestamp(registry.load_metadata(store, settings.model_name, good)["protocol"]["test_start"])

    assert _shuffle_labels_before(get_engine(settings), test_start) > 5_000
    second = _run(instance, "fraud_model", "fraud_flags")
    assert not second.success
    [check] = second.get_asset_check_evaluations()
    assert check.check_name == "model_quality_gate" and not check.passed
    gate = check.metadata
    assert gate["latest_version"].value == good
    assert gate["candidate_average_precision"].value < gate["latest_average_precision"].value
    candidate = second.asset_materializations_for_node("fraud_model")[0].metadata
    assert candidate["promoted"].value is False and candidate["version"].value != good
    # the refused version is in the registry, but LATEST did not move and nothing downstream ran
    assert store.exists(f"{settings.model_name}/{candidate['version'].value}/metadata.json")
    assert registry.latest_version(store, settings.model_name) == good
    assert second.asset_materializations_for_node("fraud_flags") == []
