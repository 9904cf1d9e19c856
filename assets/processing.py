import sys
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, PipesSubprocessClient, asset

import glue
from assets.resources import FraudPlatform
from fraud.db.queries import table_counts
from fraud.raw_zone import label_keys, transaction_keys
from fraud.schema import batch_id_of

GLUE_SCRIPT = Path(glue.__file__).resolve().parent / "process_transactions.py"
TABLES = ("fact_transaction", "transaction_features", "transaction_label", "dim_card", "dim_merchant", "batch_load")


@asset(group_name="processing", deps=["raw_transactions"], kinds={"spark", "postgres", "parquet"}, owners=["team:fraud-data"],
       description="Validated, deduplicated, tokenized transactions with point-in-time features: curated Parquet in "
                   "the processed bucket and the star schema in PostgreSQL. Runs the glue/ PySpark job through "
                   "Dagster Pipes (local Spark here, AWS Glue in aws mode).")
def processed_transactions(context: AssetExecutionContext, fraud: FraudPlatform,
                           pipes_subprocess_client: PipesSubprocessClient) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()
    raw = fraud.store(settings.raw_bucket)
    with engine.connect() as connection:
        loaded = {row[0] for row in connection.exec_driver_sql("SELECT batch_id FROM batch_load")}
    new_keys = [k for k in transaction_keys(raw) if batch_id_of(k) not in loaded]
    if not new_keys:
        context.log.info("every raw batch is already processed")
        return MaterializeResult(metadata={"new_batches": 0, **table_counts(engine, TABLES)})
    command = [sys.executable, str(GLUE_SCRIPT), "--raw-uri", raw.uri(),
               "--processed-uri", fraud.store(settings.processed_bucket).uri(),
               "--transactions-keys", ",".join(new_keys), "--labels-keys", ",".join(label_keys(raw))]
    results = pipes_subprocess_client.run(command=command, context=context).get_results()
    reported = results[0].metadata if results else {}
    return MaterializeResult(metadata={**reported, "new_batches": len(new_keys), **table_counts(engine, TABLES)})
