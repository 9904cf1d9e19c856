"""Code versions of the assets, in one place. Dagster marks an asset "unsynced" in the UI when its code version
differs from the one its last materialization recorded, so bump an entry when that asset's output would change
for the same input; the ETL's is the feature-set version, so a new feature set shows every processed batch as
stale."""

from fraud.features.catalog import FEATURE_VERSION

CODE_VERSIONS = {
    "raw_transactions": "simulator-2",  # label timing per fraud type; batch ids name every content parameter
    "processed_transactions": f"features-{FEATURE_VERSION}",
    "fraud_model": "mlp-3",  # label-aware features, the random forest baseline
    "fraud_flags": "decisions-1",  # top-3 reasons by occlusion; the lists' and rules' decision beside each score
    "fraud_report": "report-4",  # model comparison with every baseline, drift since training, the rules' backtest
    "customer_alerts": "card-day-groups-2",  # review and block decisions, not the model's flags
}
