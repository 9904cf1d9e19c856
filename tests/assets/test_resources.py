"""`FraudPlatform`: typed, documented fields mapped to the domain's Settings; EnvVars for the variables set when the
code location loads; settings built and the database migrated once per run, not on every call."""

from __future__ import annotations

import pytest
from dagster import EnvVar, asset, materialize

from assets import resources
from assets.resources import FraudPlatform
from fraud.core.settings import Settings


def test_every_field_is_typed_documented_and_maps_to_a_setting():
    for name, field in FraudPlatform.model_fields.items():
        assert name in Settings.model_fields, name
        assert field.default is None, name  # unset: the domain's value, so defaults live in one place
        assert field.description and f"`FRAUD_{name.upper()}`" in field.description, name
    assert "`fraud-raw`" in FraudPlatform.model_fields["raw_bucket"].description  # the domain's default, shown


def test_unset_fields_take_the_environment_and_the_defaults_and_set_ones_win(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    monkeypatch.setenv("FRAUD_MODEL_NAME", "from-env")
    monkeypatch.delenv("FRAUD_RAW_BUCKET", raising=False)
    settings = FraudPlatform().settings()
    assert settings.home == tmp_path and settings.model_name == "from-env" and settings.raw_bucket == "fraud-raw"
    assert FraudPlatform(model_name="set", rescore_days=3).settings().model_dump(
        include={"model_name", "rescore_days"}
    ) == {
        "model_name": "set",
        "rescore_days": 3,
    }


def test_from_environment_binds_env_vars_for_the_variables_set(tmp_path, monkeypatch):
    for key in [k for k in Settings.model_fields if k not in ("home",)]:
        monkeypatch.delenv(f"FRAUD_{key.upper()}", raising=False)
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    monkeypatch.setenv("FRAUD_RESCORE_DAYS", "5")
    monkeypatch.setenv("FRAUD_SIM_DAYS", "3")  # not a field of the resource: Settings reads it itself
    platform = FraudPlatform.from_environment()
    assert platform.home == EnvVar("FRAUD_HOME") and platform.rescore_days.env_var_name == "FRAUD_RESCORE_DAYS"
    assert platform.model_name is None and platform.database_url is None
    # a run resolves them as it starts; outside a run they are read on first use
    monkeypatch.setenv("FRAUD_RESCORE_DAYS", "6")
    seen = []

    @asset
    def looks(fraud: FraudPlatform) -> None:
        seen.append(fraud.settings())

    assert materialize([looks], resources={"fraud": platform}).success
    assert [(s.home, s.rescore_days, s.sim_days) for s in seen] == [(tmp_path, 6, 3)]
    assert platform.settings().rescore_days == 6


def test_nothing_set_is_the_local_default(monkeypatch):
    for key in Settings.model_fields:
        monkeypatch.delenv(f"FRAUD_{key.upper()}", raising=False)
    platform = FraudPlatform.from_environment()
    assert all(getattr(platform, name) is None for name in FraudPlatform.model_fields)
    assert platform.settings() == Settings()


@pytest.fixture()
def counted(monkeypatch, tmp_path):
    """Count Settings builds and migrations; no database (get_engine hands out a stand-in)."""
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    calls = {"settings": 0, "upgrade": 0}

    class CountedSettings(Settings):
        def __init__(self, **values):
            calls["settings"] += 1
            super().__init__(**values)

    def upgrade(engine) -> None:
        calls["upgrade"] += 1

    monkeypatch.setattr(resources, "Settings", CountedSettings)
    monkeypatch.setattr(resources, "get_engine", lambda settings, role: object())
    monkeypatch.setattr(resources, "upgrade", upgrade)
    return calls


@asset
def reads_often(fraud: FraudPlatform) -> None:
    for _ in range(3):
        fraud.settings(), fraud.engine()


@asset(deps=[reads_often])
def reads_again(fraud: FraudPlatform) -> None:
    assert fraud.engine() is fraud.engine()
    fraud.store(fraud.settings().raw_bucket)


def test_settings_built_and_database_migrated_once_per_run(counted):
    platform = FraudPlatform(model_name="once")
    assert materialize([reads_often, reads_again], resources={"fraud": platform}).success
    assert counted == {"settings": 1, "upgrade": 1}  # two assets, seven engine() calls: one migration
    assert materialize([reads_often, reads_again], resources={"fraud": platform}).success
    assert counted == {"settings": 2, "upgrade": 2}  # the next run checks again (a new release may migrate)


def test_a_bad_value_fails_the_run_before_any_step(counted):
    result = materialize([reads_often], resources={"fraud": FraudPlatform(mode="cloud")}, raise_on_error=False)
    assert not result.success and counted["upgrade"] == 0
