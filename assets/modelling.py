import json

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.resources import FraudPlatform
from fraud import registry
from fraud.db.queries import labelled_features
from fraud.features import FEATURE_VERSION
from fraud.model import TrainingConfig, model_version, train


@asset(group_name="modelling", deps=["processed_transactions"], kinds={"tensorflow", "s3"}, owners=["team:fraud-ml"],
       description="Keras MLP trained on labelled history with a temporal split, exported to .keras + .tflite + "
                   "metadata.json in the models bucket and promoted to LATEST. Unchanged data re-uses the version.")
def fraud_model(context: AssetExecutionContext, fraud: FraudPlatform) -> MaterializeResult:
    settings = fraud.settings()
    store = fraud.store(settings.models_bucket)
    frame = labelled_features(fraud.engine(), FEATURE_VERSION)
    config = TrainingConfig(test_days=settings.test_days, alert_budget_per_day=settings.alert_budget_per_day,
                            epochs=settings.train_epochs)
    version = model_version(frame, config)
    if store.exists(f"{settings.model_name}/{version}/metadata.json"):
        context.log.info(f"model {version} already trained on exactly this data; re-using it")
        metadata = registry.load_metadata(store, settings.model_name, version)
    else:
        trained = train(frame, config, on_epoch=lambda epoch, logs: context.log.debug(f"epoch {epoch}: {logs}"))
        registry.publish(store, settings.model_name, version, trained.files)
        metadata = trained.metadata
    registry.promote(store, settings.model_name, version)
    return MaterializeResult(metadata={
        "version": version,
        "threshold": metadata["threshold"],
        "training_rows": metadata["training_window"]["rows"],
        "training_frauds": metadata["training_window"]["frauds"],
        **{k: v for k, v in metadata["metrics"].items() if v is not None},
        "metrics": MetadataValue.json(metadata["metrics"]),
        "artifacts": MetadataValue.path(store.uri(f"{settings.model_name}/{version}/")),
        "metadata_json": MetadataValue.md(f"```json\n{json.dumps(metadata['training_window'], indent=1)}\n```"),
    })
