import sys
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
    asset_check,
)
from sqlalchemy import text

import glue
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.core.schema import batch_id_of
from fraud.db.queries import accounting_problems, batch_accounting, loaded_batch_ids, table_counts
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.ingest.raw_zone import label_keys, transaction_keys

GLUE_SCRIPT = Path(glue.__file__).resolve().parent / "process_transactions.py"
TABLES = ("fact_transaction", "transaction_features", "transaction_label", "dim_card", "dim_merchant", "batch_load")


def _feature_summary(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary statistics of each feature over the latest 10,000 transactions, and a preview of them."""
    with engine.connect() as connection:
        latest = pd.read_sql(
            text("""
            SELECT t.trans_num, t.event_time, t.merchant, t.category, t.amount, f.values
            FROM fact_transaction t JOIN transaction_features f USING (trans_num)
            WHERE f.feature_version = :version ORDER BY t.event_time DESC LIMIT 10000"""),
            connection,
            params={"version": FEATURE_VERSION},
        )
    values = (
        pd.DataFrame(latest["values"].tolist(), columns=list(FEATURE_NAMES))
        if len(latest)
        else pd.DataFrame(columns=list(FEATURE_NAMES))
    )
    summary = values.describe().T[["mean", "std", "min", "50%", "max"]].round(3) if len(values) else pd.DataFrame()
    preview = latest.drop(columns="values").head(10).assign(event_time=lambda d: d["event_time"].astype(str))
    return summary, preview


class RawBatchSelection(Config):
    """Which pending raw batches a run processes: the raw-batch sensor names one; a backfill names a range of
    days (inclusive, by the batch's `dt=` folder); nothing set means every pending batch."""

    batch_ids: list[str] = []
    first_day: str | None = None  # YYYY-MM-DD
    last_day: str | None = None

    def wants(self, key: str) -> bool:
        day = key.split("dt=", 1)[1][:10] if "dt=" in key else ""
        return (
            (not self.batch_ids or batch_id_of(key) in self.batch_ids)
            and (self.first_day is None or day >= self.first_day)
            and (self.last_day is None or day <= self.last_day)
        )


@asset(
    group_name="processing",
    deps=["raw_transactions"],
    kinds={"spark", "postgres", "parquet"},
    owners=["team:fraud-data"],
    code_version=CODE_VERSIONS["processed_transactions"],
    pool="spark",  # one Spark job at a time on a laptop (instance: assets/instance.py)
    description="Validated, deduplicated, tokenized transactions with point-in-time features: curated Parquet in "
    "the processed bucket and the star schema in PostgreSQL. Runs the glue/ PySpark job through "
    "Dagster Pipes (local Spark here, AWS Glue in aws mode).",
)
def processed_transactions(
    context: AssetExecutionContext,
    config: RawBatchSelection,
    fraud: FraudPlatform,
    pipes_subprocess_client: PipesSubprocessClient,
) -> MaterializeResult:
    settings = fraud.settings()
    engine = fraud.engine()
    raw = fraud.store(settings.raw_bucket)
    loaded = loaded_batch_ids(engine)
    new_keys = [k for k in transaction_keys(raw) if batch_id_of(k) not in loaded and config.wants(k)]
    reported = {}
    if new_keys:
        arguments = {
            "raw_uri": raw.uri(),
            "processed_uri": fraud.store(settings.processed_bucket).uri(),
            "transactions_keys": ",".join(new_keys),
            "labels_keys": ",".join(label_keys(raw)),
        }
        if settings.mode == "aws":  # the deployed Glue job (infra/), watched through Dagster Pipes
            invocation = fraud.glue_pipes_client().run(
                context=context,
                start_job_run_params={
                    "JobName": settings.glue_job_name,
                    "Arguments": {f"--{k}": v for k, v in arguments.items()},
                },
            )
        else:  # the same script on local PySpark
            command = [
                sys.executable,
                str(GLUE_SCRIPT),
                *(part for k, v in arguments.items() for part in (f"--{k.replace('_', '-')}", v)),
            ]
            invocation = pipes_subprocess_client.run(command=command, context=context)
        results = invocation.get_results()
        reported = dict(results[0].metadata) if results else {}
    else:
        context.log.info("every raw batch is already processed")
    summary, preview = _feature_summary(engine)
    return MaterializeResult(
        metadata={
            **reported,
            "new_batches": len(new_keys),
            **table_counts(engine, TABLES),
            "feature_version": FEATURE_VERSION,
            "feature_summary": MetadataValue.md(summary.to_markdown() if len(summary) else "no features yet"),
            "preview": MetadataValue.md(preview.to_markdown(index=False) if len(preview) else "no rows yet"),
        }
    )


@asset_check(
    asset=processed_transactions,
    blocking=True,
    description="Every raw row is accounted for: rows in = loaded + quarantined + duplicates, per batch, "
    "and every loaded row is in fact_transaction with its features.",
)
def rows_accounted_for(context: AssetCheckExecutionContext, fraud: FraudPlatform) -> AssetCheckResult:
    batches = batch_accounting(fraud.engine(), FEATURE_VERSION)
    unbalanced, missing = accounting_problems(batches)
    return AssetCheckResult(
        passed=unbalanced.empty and missing.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "batches": len(batches),
            "rows_in": int(batches["rows_in"].sum()),
            "rows_loaded": int(batches["rows_loaded"].sum()),
            "rows_quarantined": int(batches["rows_quarantined"].sum()),
            "duplicates_dropped": int(batches["duplicates_dropped"].sum()),
            "unbalanced_batches": MetadataValue.json(unbalanced["batch_id"].tolist()),
            "batches_missing_rows": MetadataValue.json(missing["batch_id"].tolist()),
        },
    )
