"""The code location: six assets from raw batches to report and alerts (workspace.yaml points here)."""

from dagster import Definitions, PipesSubprocessClient

from assets.drift_checks import drift_checks
from assets.ingestion import raw_transactions
from assets.modelling import fraud_model, model_quality_gate
from assets.processing import processed_transactions, rows_accounted_for
from assets.reporting import customer_alerts, fraud_report
from assets.resources import FraudPlatform
from assets.scoring import fraud_flags
from assets.sensors import JOBS, SCHEDULES, SENSORS

ALL_ASSETS = [raw_transactions, processed_transactions, fraud_model, fraud_flags, fraud_report, customer_alerts]
ALL_CHECKS = [rows_accounted_for, model_quality_gate, drift_checks]

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=JOBS,
    sensors=SENSORS,
    schedules=SCHEDULES,
    # FRAUD_* variables set as the code location loads become EnvVars (the UI names them, never shows a secret);
    # the rest take the defaults of fraud.core.settings.Settings, so the local default needs nothing set
    resources={"fraud": FraudPlatform.from_environment(), "pipes_subprocess_client": PipesSubprocessClient()},
)
