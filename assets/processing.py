import sys
from pathlib import Path

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

import glue
from assets import metadata as meta
from assets.resources import FraudPlatform
from assets.versions import CODE_VERSIONS
from fraud.core.schema import batch_id_of
from fraud.db.queries import (
    accounting_problems,
    batch_accounting,
    feature_summary,
    latest_features,
    loaded_batch_ids,
    table_counts,
)
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION
from fraud.ingest.raw_zone import label_keys, transaction_keys

GLUE_SCRIPT = Path(glue.__file__).resolve().parent / "process_transactions.py"
TABLES = ("fact_transaction", "transaction_features", "transaction_label", "dim_card", "dim_merchant", "batch_load")
# the Glue job's mappings (through Pipes), shown as tables with these columns
REPORTED_TABLES = {
    "quarantine_reasons": ("reason", "rows"),
    "rows_gained": ("table", "rows"),
    "seconds_per_phase": ("phase", "seconds"),
}
PREVIEW_COLUMNS = ("trans_num", "event_time", "merchant", "category", "amount")
ACCOUNTING_COLUMNS = (
    "batch_id",
    "rows_in",
    "rows_loaded",
    "rows_quarantined",
    "duplicates_dropped",
    "in_fact",
    "with_features",
)


def _features_metadata(engine) -> dict:
    """Summary statistics of each feature over the latest 10,000 transactions, and the newest ten of them."""
    latest = latest_features(engine, FEATURE_VERSION)
    summary = feature_summary(latest, FEATURE_NAMES)
    return {
        "feature_summary": meta.table(
            ["feature", "mean", "std", "min", "median", "max"],
            ([name, *row] for name, row in zip(summary.index, summary.itertuples(index=False), strict=True)),
            empty="no features yet",
            digits=3,
        ),
        "preview": meta.table(
            PREVIEW_COLUMNS,
            latest.head(10)[list(PREVIEW_COLUMNS)].assign(event_time=lambda d: d["event_time"].astype(str)).values,
            empty="no rows yet",
            digits=2,
        ),
    }


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
    "the processed bucket and the star schema in PostgreSQL. Runs the `glue/` PySpark job through "
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
        reported = meta.readable(results[0].metadata, REPORTED_TABLES) if results else {}
    else:
        context.log.info("every raw batch is already processed")
    return MaterializeResult(
        metadata={
            **reported,
            "new_batches": len(new_keys),
            "new_batch_keys": meta.bullets(new_keys),
            **table_counts(engine, TABLES),
            "feature_version": FEATURE_VERSION,
            **_features_metadata(engine),
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
            "unbalanced_batches": _accounting_table(unbalanced),
            "batches_missing_rows": _accounting_table(missing),
        },
    )


def _accounting_table(batches) -> MetadataValue:
    """Batches with a problem, with their accounting and what is in fact_transaction (at most 50 shown)."""
    return meta.table(ACCOUNTING_COLUMNS, batches[list(ACCOUNTING_COLUMNS)].head(50).itertuples(index=False))
