"""Drift (issue 18): the population stability index on hand-built samples, its binning of few-valued features, the
per-day tables, and the non-blocking `feature_drift` / `score_drift` checks on `fraud_flags` against a hand-built
scored world in real PostgreSQL (no model, no training window, no new day, no drift, then a shifted day)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetSelection, materialize
from scipy.stats import norm
from sqlalchemy import text

from assets.definitions import ALL_CHECKS, defs
from assets.drift_checks import FEATURE_DRIFT, SCORE_DRIFT, drift_checks
from assets.resources import FraudPlatform
from assets.scoring import fraud_flags
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.model import drift
from tests.helpers.homes import own_migrated_home


def _binned_normal_psi(shift: float) -> float:
    """PSI of N(shift, 1) against N(0, 1) on the deciles of N(0, 1), from the normal's distribution function."""
    edges = norm.ppf(np.arange(1, 10) / 10)
    expected = np.diff(np.r_[0.0, norm.cdf(edges), 1.0])
    actual = np.diff(np.r_[0.0, norm.cdf(edges - shift), 1.0])
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def test_identical_samples_give_zero_and_resampling_almost_zero():
    rng = np.random.default_rng(1)
    sample = rng.normal(size=20_000)
    assert drift.psi(sample, sample) == 0.0
    assert drift.psi(sample, rng.normal(size=20_000)) < 0.005
    assert drift.level(drift.psi(sample, rng.normal(size=20_000))) == drift.STABLE


def test_a_shifted_normal_gives_its_known_psi():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=200_000)
    expected = _binned_normal_psi(0.5)
    assert expected == pytest.approx(0.2377, abs=1e-4)  # ~ mu^2 = 0.25 with infinitely many bins
    assert drift.psi(reference, rng.normal(0.5, 1, 200_000)) == pytest.approx(expected, abs=0.01)
    assert drift.psi(reference, rng.normal(1.0, 1, 200_000)) == pytest.approx(_binned_normal_psi(1.0), abs=0.03)
    assert drift.level(drift.psi(reference, rng.normal(1.0, 1, 200_000))) == drift.SIGNIFICANT
    assert drift.level(drift.psi(reference, rng.normal(0.4, 1, 200_000))) == drift.MODERATE


def test_constant_feature_gives_zero_and_a_new_constant_is_significant():
    assert drift.psi(np.zeros(500), np.zeros(200)) == 0.0
    assert drift.level(drift.psi(np.zeros(500), np.ones(500)), 500) == drift.SIGNIFICANT


def test_empty_samples_are_no_data_not_a_crash():
    assert np.isnan(drift.psi(np.arange(100.0), []))
    assert np.isnan(drift.psi([], np.arange(100.0)))
    assert np.isnan(drift.psi(np.arange(100.0), [np.nan, np.inf]))  # nothing finite to compare
    assert drift.level(float("nan")) == drift.NO_DATA
    [row] = drift.drift_table(np.ones((10, 1)), np.zeros((0, 1)), ["x"])
    assert np.isnan(row.psi) and row.level == drift.NO_DATA and row.rows == 0
    assert drift.per_day(np.ones((10, 1)), np.zeros((0, 1)), [], ["x"]).empty


def test_few_valued_features_get_a_bin_per_value():
    one_hot = np.array([0.0] * 900 + [1.0] * 100)
    bins = drift.bins_of(one_hot)
    assert bins.categorical and list(bins.edges) == [0.0, 1.0]
    assert list(bins.shares(np.array([0.0, 1.0, 1.0, 7.0]))) == [0.25, 0.5, 0.25]  # 7: a value never seen
    # 10% -> 30% ones: computed by hand on the two bins
    psi = drift.psi(one_hot, np.array([0.0] * 70 + [1.0] * 30))
    assert psi == pytest.approx((0.7 - 0.9) * np.log(0.7 / 0.9) + (0.3 - 0.1) * np.log(0.3 / 0.1))
    counts = np.random.default_rng(3).poisson(2, 5000).astype(float)  # a small count: a handful of values
    assert drift.bins_of(counts).categorical
    assert drift.psi(counts, counts[::-1]) == 0.0


def test_continuous_bins_are_deciles_and_ties_collapse():
    values = np.arange(1000.0)
    bins = drift.bins_of(values)
    assert not bins.categorical and bins.size == 10
    assert np.allclose(bins.shares(values), 0.1, atol=0.002)
    # 70% zeros then a continuous tail: the tied deciles are one edge, zeros keep their own bin
    mixed = np.r_[np.zeros(700), np.linspace(1, 100, 300)]
    mixed_bins = drift.bins_of(mixed)
    assert mixed_bins.edges[0] == 0.0 and len(set(mixed_bins.edges)) == len(mixed_bins.edges)
    assert mixed_bins.shares(mixed)[0] == pytest.approx(0.7)


def test_empty_bins_stay_finite():
    reference = np.random.default_rng(4).normal(size=5000)
    assert np.isfinite(drift.psi(reference, np.full(500, 100.0)))  # all in the top bin
    assert drift.psi(reference, np.full(500, 100.0)) > drift.SIGNIFICANT_ABOVE


def test_levels_follow_the_thresholds():
    assert drift.level(0.0) == drift.level(0.0999) == drift.STABLE
    assert drift.level(0.10) == drift.level(0.25) == drift.MODERATE
    assert drift.level(0.2501) == drift.SIGNIFICANT
    assert drift.level(0.9, rows=drift.MIN_ROWS - 1) == drift.TOO_FEW
    assert drift.level(0.9, rows=drift.MIN_ROWS) == drift.SIGNIFICANT
    # a small reference is as noisy as a small day: not judged either
    [row] = drift.drift_table(np.zeros((drift.MIN_ROWS - 1, 1)), np.ones((5000, 1)), ["x"])
    assert row.level == drift.TOO_FEW and row.psi > 1 and row.rows == 5000


def test_chance_alone_stays_stable_at_the_minimum_of_rows():
    """The reason for MIN_ROWS: days drawn from the training distribution itself, 50 features x 7 days of it."""
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(drift.REFERENCE_SAMPLE, 50))
    days = [date(2026, 1, 1 + d) for d in range(7) for _ in range(drift.MIN_ROWS)]
    frame = drift.per_day(reference, rng.normal(size=(len(days), 50)), days, [f"f{i}" for i in range(50)])
    assert drift.significant(frame).empty and (frame["level"] == drift.MODERATE).mean() < 0.01


def test_drift_table_and_per_day_on_a_hand_built_sample():
    rng = np.random.default_rng(5)
    names = ["steady", "shifting", "flag"]
    reference = np.column_stack([rng.normal(size=4000), rng.normal(size=4000), rng.random(4000) < 0.1])
    day1 = np.column_stack([rng.normal(size=1000), rng.normal(size=1000), rng.random(1000) < 0.1])
    day2 = np.column_stack([rng.normal(size=1000), rng.normal(1.0, 1, 1000), rng.random(1000) < 0.5])
    table = {row.feature: row for row in drift.drift_table(reference, day2, names)}
    assert table["steady"].level == drift.STABLE and table["shifting"].level == drift.SIGNIFICANT
    assert table["flag"].level == drift.SIGNIFICANT and table["flag"].rows == 1000
    with pytest.raises(ValueError):
        drift.drift_table(reference, day2, names[:2])

    days = [date(2026, 11, 5)] * 1000 + [date(2026, 11, 6)] * 1000
    frame = drift.per_day(reference, np.vstack([day1, day2]), days, names)
    assert list(frame.columns) == drift.COLUMNS and len(frame) == 6
    assert set(drift.significant(frame)["day"]) == {date(2026, 11, 6)}
    assert drift.max_psi(frame) == pytest.approx(frame["psi"].max())
    ranked = drift.by_feature(frame)
    assert list(ranked["feature"])[-1] == "steady" and ranked.iloc[0]["worst_day"] == date(2026, 11, 6)
    assert [w["feature"] for w in drift.worst(frame, 2)] == list(ranked["feature"][:2])
    md = drift.markdown(frame)
    assert md.splitlines()[0] == "| feature | 2026-11-05 | 2026-11-06 | level |"
    assert "| steady | " in md and md.count("\n") == 4


def test_markdown_escapes_table_characters_in_names():
    frame = drift.per_day(np.arange(400.0), np.arange(400.0), [date(2026, 1, 1)] * 400, ["a|b_c"])
    assert "| a\\|b\\_c | 0.000 | stable |" in drift.markdown(frame)


def test_from_samples_names_columns_from_the_metadata_whatever_they_are():
    rng = np.random.default_rng(6)
    names = [f"made_up_{i}" for i in range(3)]
    reference = pd.DataFrame({"values": list(rng.normal(size=(300, 3))), "score": rng.random(300)})
    recent = pd.DataFrame(
        {"day": [date(2026, 1, 2)] * 150, "values": list(rng.normal(size=(150, 3))), "score": [np.nan] * 150}
    )
    metadata = {
        "feature_names": names,
        "training_window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00"},
    }
    result = drift.from_samples(reference, recent, metadata)
    assert result.note is None and set(result.features["feature"]) == set(names) and result.reference_rows == 300
    assert result.score["level"].tolist() == [drift.NO_DATA]  # not scored yet: no data, not a crash
    unnamed = drift.from_samples(reference, recent, {"feature_names": ["only_one"]}, fallback_names=("x", "y", "z"))
    assert set(unnamed.features["feature"]) == {"x", "y", "z"}  # the metadata's list does not fit: the code's
    assert drift.from_samples(reference, recent.iloc[:0], metadata).note.startswith("no transaction since")
    assert drift.from_samples(reference.iloc[:0], recent, metadata).note


def test_a_feature_with_one_value_a_day_is_shown_not_judged():
    rng = np.random.default_rng(9)
    days = [date(2026, 11, d) for d in range(2, 9) for _ in range(500)]  # Monday to Sunday
    weekend = np.array([float(d.weekday() >= 5) for d in days])
    reference = np.column_stack([weekend, rng.normal(size=len(days)), np.zeros(len(days))])
    names = ["weekendish", "normal", "constant"]
    assert drift.one_value_a_day(reference, days, names) == ["weekendish"]  # not the constant one
    assert drift.one_value_a_day(reference[:500], days[:500], names) == []  # one day: nothing to tell

    saturday = np.column_stack([np.ones(500), rng.normal(size=500), np.zeros(500)])
    frame = drift.per_day(reference, saturday, [date(2026, 11, 14)] * 500, names, one_a_day=["weekendish"])
    row = frame.set_index("feature").loc["weekendish"]
    assert row["psi"] > 1 and row["level"] == drift.ONE_A_DAY
    assert drift.significant(frame).empty and drift.judged(frame)["feature"].tolist() == ["normal", "constant"]

    result = drift.from_samples(
        pd.DataFrame({"day": days, "values": list(reference), "score": rng.random(len(days))}),
        pd.DataFrame({"day": [date(2026, 11, 14)] * 500, "values": list(saturday), "score": rng.random(500)}),
        {"feature_names": names},
    )
    assert result.features.set_index("feature").loc["weekendish", "level"] == drift.ONE_A_DAY


def test_training_window_from_metadata():
    assert drift.training_window({}) is None and drift.training_window({"training_window": {"rows": 3}}) is None
    start, end = drift.training_window(
        {"training_window": {"start": "2026-11-01T00:00:00", "end": "2026-11-05T00:00:00+00:00"}}
    )
    assert str(start.tz) == "UTC" and end == pd.Timestamp("2026-11-05", tz="UTC")


def test_the_drift_checks_are_registered_non_blocking_on_fraud_flags():
    graph = defs.resolve_asset_graph()
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    for name in (FEATURE_DRIFT, SCORE_DRIFT):
        assert specs[name].asset_key == fraud_flags.key and not specs[name].blocking
        assert len(specs[name].description) > 40
    assert drift_checks in ALL_CHECKS
    assert specs["rows_accounted_for"].blocking and specs["model_quality_gate"].blocking


# --- the checks against a scored world in PostgreSQL ---

WINDOW = {"start": "2026-11-02T00:00:00+00:00", "end": "2026-11-04T00:00:00+00:00", "rows": 0, "frauds": 0}


@pytest.fixture(scope="module")
def drift_home():
    with own_migrated_home("fraud-drift-") as home:
        yield home


def _checks() -> dict:
    result = materialize(
        [fraud_flags, drift_checks], selection=AssetSelection.checks(drift_checks), resources={"fraud": FraudPlatform()}
    )
    assert result.success and result.asset_materializations_for_node("fraud_flags") == []  # the checks alone
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _set_metadata(settings, version: str, **values) -> None:
    from fraud.core.storage import object_store

    store = object_store(settings, settings.models_bucket)
    key = f"{settings.model_name}/{version}/metadata.json"
    store.put_bytes(key, json.dumps({**json.loads(store.get_bytes(key)), **values}).encode())


def test_checks_on_a_world_without_model_then_without_window_then_without_new_day(drift_home):
    from tests.helpers.scored_world import build_world

    settings, engine = drift_home
    checks = _checks()
    assert set(checks) == {FEATURE_DRIFT, SCORE_DRIFT}
    assert all(c.passed and c.metadata["note"].value == "no promoted model yet" for c in checks.values())

    world = build_world(engine, settings, "drift", cards=80, days=4, seed=7)  # 320 transactions a day
    checks = _checks()
    assert all(c.passed and "no training window" in c.metadata["note"].value for c in checks.values())

    _set_metadata(
        settings,
        world.model_version,
        training_window={**WINDOW, "end": "2026-11-09T00:00:00+00:00"},
        feature_version=FEATURE_VERSION,
    )
    checks = _checks()
    assert all(
        c.passed and c.metadata["note"].value.startswith("no transaction since the training window")
        for c in checks.values()
    )


def test_checks_pass_without_drift_and_warn_on_a_shifted_day(drift_home):
    settings, engine = drift_home
    version = "drift-model"
    _set_metadata(
        settings, version, training_window=WINDOW, feature_version=FEATURE_VERSION, feature_names=list(FEATURE_NAMES)
    )
    checks = _checks()
    features, score = checks[FEATURE_DRIFT], checks[SCORE_DRIFT]
    assert features.passed and features.metadata["max_psi"].value == 0.0  # the world's features are all zeros
    assert features.metadata["reference_rows"].value == 80 * 4 * 2 and features.metadata["threshold"].value == 0.25
    assert features.metadata["days"].value == "2026-11-04, 2026-11-05"

    # the score's PSI per day, as computed here from the scores the world wrote
    frame = pd.read_sql(
        text("""SELECT s.score, (t.event_time AT TIME ZONE 'UTC')::date AS day FROM fraud_score s
                                JOIN fact_transaction t USING (trans_num) WHERE s.model_version = :v"""),
        engine.connect(),
        params={"v": version},
    )
    reference = frame[frame["day"] < date(2026, 11, 4)]["score"]
    expected = [
        round(drift.psi(reference, frame[frame["day"] == day]["score"]), 4)
        for day in (date(2026, 11, 4), date(2026, 11, 5))
    ]
    assert [r.data["psi"] for r in score.metadata["psi_per_day"].value.records] == pytest.approx(expected, abs=1e-4)
    assert score.passed == (max(expected) <= drift.SIGNIFICANT_ABOVE)

    # the last day: the first feature (whatever it is called) moves, and the scores rise
    first = FEATURE_NAMES[0]
    with engine.begin() as connection:
        last_day = "SELECT trans_num FROM fact_transaction WHERE event_time >= '2026-11-05T00:00:00+00:00'"
        connection.execute(text(f"UPDATE transaction_features SET values[1] = 5.0 WHERE trans_num IN ({last_day})"))
        connection.execute(text(f"UPDATE fraud_score SET score = 0.5 + score / 2 WHERE trans_num IN ({last_day})"))
    checks = _checks()
    features, score = checks[FEATURE_DRIFT], checks[SCORE_DRIFT]
    assert not features.passed and features.severity == AssetCheckSeverity.WARN
    assert [r.data for r in features.metadata["above_threshold"].value.records] == [
        {"feature": first, "day": "2026-11-05", "psi": pytest.approx(features.metadata["max_psi"].value, abs=1e-4)}
    ]
    assert features.metadata["worst_features"].value.records[0].data["feature"] == first
    assert features.metadata["max_psi"].value > 1
    table = features.metadata["drift_table"].value
    assert table.splitlines()[2].startswith(f"| {first.replace('_', chr(92) + '_')} | 0.000 | ")
    assert table.count("\n") == 1 + len(FEATURE_NAMES)
    assert first in features.description
    assert not score.passed and score.severity == AssetCheckSeverity.WARN
    assert score.metadata["psi_per_day"].value.records[1].data["level"] == drift.SIGNIFICANT

    # a day below the minimum of rows is shown, not judged (here: every day, with a minimum of 10,000)
    from fraud.outreach.report import load_drift

    small = load_drift(
        engine, {"version": version, "training_window": WINDOW, "feature_version": FEATURE_VERSION}, min_rows=10_000
    )
    assert set(small.features["level"]) == {drift.TOO_FEW} and np.isnan(drift.max_psi(small.features))
