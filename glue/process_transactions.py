"""Glue ETL job: raw Sparkov batches -> validated, deduplicated, tokenized, featurized transactions.

Runs unchanged in AWS Glue (arguments via getResolvedOptions, GlueContext) and on local PySpark (plain
SparkSession, the same arguments via argparse). Under Dagster Pipes it reports row accounting as metadata.

The entry point only: arguments, the Spark session, Pipes, reading and writing (the raw zone, the curated zone,
PostgreSQL). What the job does to the rows (validation, tokenization, deduplication, features) is
fraud/features/spark.py, written once beside the other engines' definitions (AWS Glue gets the `fraud/` package
as a zip through --extra-py-files).

    python glue/process_transactions.py --raw-uri R --processed-uri P --transactions-keys k1,k2 [--labels-keys l1]
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fraud.core.schema import LABEL_COLUMNS, batch_id_of
from fraud.core.settings import Settings
from fraud.core.storage import s3_client
from fraud.db.engine import get_engine
from fraud.db.load import PROCESSED_COLUMNS, BatchAccounting, load_processed
from fraud.db.queries import stored_labels
from fraud.db.roles import DbRole
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION, HISTORY_SECONDS
from fraud.features.spark import RAW_SCHEMA, content, features, timestamp_of, tokenize, validate, with_card_numbers
from fraud.ingest.validation import Reason

LOAD_CHUNK_ROWS = 100_000  # rows a batch is fetched from Spark and COPY'd in: bounds the driver's memory
LOAD_CONNECTIONS = 2  # batches loaded at once (see load_batches)
EMPTY_LABELS = pa.table({c: pa.array([], pa.string()) for c in LABEL_COLUMNS})
ARGUMENTS = ("raw_uri", "processed_uri", "transactions_keys", "labels_keys")
LOCAL_UMASK = "077"  # the permissions a local run's files and folders are created with (see _new_session)


def parse_arguments(argv: list[str]) -> dict[str, str]:
    try:  # inside AWS Glue: job arguments are --raw_uri, --processed_uri, ...
        from awsglue.utils import getResolvedOptions

        return getResolvedOptions(argv, list(ARGUMENTS))
    except ImportError:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        for name in ARGUMENTS:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default="")
        known, _ = parser.parse_known_args(argv[1:])  # Pipes may add its own --dagster-pipes-* arguments
        return vars(known)


def settings_from(argv: list[str]) -> Settings:
    """Settings from the environment, overridden by `--fraud_<setting> value` job arguments: AWS Glue has no
    per-job environment variables, so the deployed job carries its (non-secret) settings as default arguments
    (e.g. --fraud_mode aws --fraud_db_secret_arn ...); secrets themselves stay in Secrets Manager."""
    overrides = {
        argv[i][len("--fraud_") :]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--fraud_")
    }
    return Settings(**overrides)


def spark_session(driver_memory: str = Settings.model_fields["spark_driver_memory"].default) -> SparkSession:
    spark = _new_session(driver_memory)
    # partition values stay strings: a batch id such as "007" or a date must read back as written
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    return spark


def _new_session(driver_memory: str) -> SparkSession:
    try:
        from awsglue.context import GlueContext
        from pyspark.context import SparkContext

        return GlueContext(SparkContext.getOrCreate()).spark_session
    except ImportError:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers must import fraud/ too
        # the JVM (launched now, with this environment) and its Python workers: two malloc arenas instead of glibc's
        # 8 per core, whose fragments the JVM's many threads keep resident (1M rows: JVM 2.55 GiB against 2.63-2.71)
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        # Spark's local folder (shuffle, spill, blocks) in a folder of this process's own (0700, removed at exit)
        local_dir = tempfile.mkdtemp(prefix="fraud-spark-")
        atexit.register(shutil.rmtree, local_dir, ignore_errors=True)
        return (
            SparkSession.builder.master("local[2]")
            .appName("fraud-process-transactions")
            .config("spark.sql.session.timeZone", "UTC")
            # AQE coalesces small shuffles to one partition; a large run's cached validated rows come in blocks
            # of a sixteenth rather than a quarter of the run, read back from disk into the 2 GB heap
            .config("spark.sql.shuffle.partitions", "16")
            .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
            .config("spark.driver.memory", driver_memory)  # local mode: the driver is the executor too
            # the throughput collector: a batch job has no pauses to keep short, and on 2 cores G1's concurrent
            # work is the job's own time (1M rows: 274-312 CPU-s against 347-363 with G1, bench/README.md#etl)
            .config("spark.driver.extraJavaOptions", "-XX:+UseParallelGC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            # what Spark keeps on local disk (shuffle and spill files, cached blocks that do not fit in memory) is
            # encrypted with a key that lives only as long as the application
            .config("spark.io.encryption.enabled", "true")
            .config("spark.local.dir", local_dir)
            # the files it writes (the curated Parquet, the quarantine, their temporary folders) readable by the job's
            # user only: 0600 files, 0700 folders. Spark's own local folders (blockmgr-*, spark-*) are 0700 already
            .config("spark.hadoop.fs.permissions.umask-mode", LOCAL_UMASK)
            .getOrCreate()
        )


def _paths(root: str, keys: str) -> list[str]:
    return [f"{root.rstrip('/')}/{key}" for key in keys.split(",") if key]


def read_raw(spark: SparkSession, paths: list[str]) -> DataFrame:
    return (
        spark.read.schema(RAW_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt_record")
        .json(paths)
        .withColumn("source_key", F.input_file_name())
        .withColumn("batch_id", F.regexp_extract("source_key", r"([^/]+)\.jsonl\.gz$", 1))
    )


def read_curated(spark: SparkSession, processed_uri: str) -> DataFrame | None:
    path = f"{processed_uri.rstrip('/')}/transactions"
    hadoop_path = spark._jvm.org.apache.hadoop.fs.Path(path)
    if not hadoop_path.getFileSystem(spark._jsc.hadoopConfiguration()).exists(hadoop_path):
        return None  # first run: no processed history yet
    try:
        return spark.read.parquet(path)
    except AnalysisException as error:
        if "UNABLE_TO_INFER_SCHEMA" in str(error):  # only an unfinished first write (a crashed run's staging files)
            return None
        raise


def read_history(spark: SparkSession, processed_uri: str, since_unix: int) -> DataFrame | None:
    history = read_curated(spark, processed_uri)
    if history is None:
        return None
    return history.where(F.col("event_unix") >= since_unix).select(
        "trans_num", "card_token", "merchant", "category", "event_unix", "amt"
    )


def read_loaded(spark: SparkSession, processed_uri: str, raw: DataFrame) -> DataFrame | None:
    """trans_num -> the batch that loaded it and its content, for the raw rows' transactions already in the
    curated zone. Materialized now: this run overwrites some of the files it comes from."""
    curated = read_curated(spark, processed_uri)
    if curated is None:
        return None
    return (
        curated.join(raw.select("trans_num").distinct(), "trans_num", "left_semi")
        .select(
            "trans_num",
            F.col("batch_id").alias("loaded_batch"),
            content(F.col("card_token"), F.col("merchant"), F.col("event_unix"), F.col("amt")).alias("loaded_content"),
        )
        .dropDuplicates(["trans_num"])
        .localCheckpoint()
    )


def written_by_run(spark: SparkSession, processed_uri: str, valid: DataFrame) -> DataFrame:
    """The curated rows this run wrote: its (date, batch) partitions, each replaced whole by the dynamic overwrite.
    The load reads them back rather than keeping the run's features cached: columnar, and each chunk reads only
    its batch's files (a chunk of a cached frame scanned all of it, and a 1M-row cache overflowed a 2 GB heap)."""
    parts = [
        f"{r['dt']}/{r['batch_id']}"
        for r in valid.select(F.date_format("event_time", "yyyy-MM-dd").alias("dt"), "batch_id").distinct().collect()
    ]
    curated = read_curated(spark, processed_uri)
    if curated is None:  # every row quarantined on a first run: nothing written
        return spark.createDataFrame([], "batch_id string")
    return curated.where(F.concat_ws("/", "dt", "batch_id").isin(parts))


def _object_bytes(uri: str, settings: Settings) -> bytes:
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        return s3_client(settings).get_object(Bucket=bucket, Key=key)["Body"].read()
    with open(uri.removeprefix("file:"), "rb") as handle:
        return handle.read()


def _put_object(uri: str, data: bytes, settings: Settings) -> None:
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        s3_client(settings).put_object(Bucket=bucket, Key=key, Body=data)
        return
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    with open(uri, "wb") as handle:
        handle.write(data)


def partial_objects(paths: list[str], settings: Settings) -> dict[str, str]:
    """The raw objects that are not whole gzip files (an upload cut off, a truncated copy): path -> the error.
    Checked before Spark reads them: its codec may hand back the readable start of a cut stream without an error,
    and the run would load part of a batch."""
    broken = {}
    for path in paths:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(_object_bytes(path, settings))) as stream:
                while stream.read(1 << 24):  # to the end: the CRC and length trailer are checked there
                    pass
        except (OSError, EOFError, zlib.error) as error:
            broken[path] = f"{type(error).__name__}: {error}"
    return broken


def quarantine_objects(raw_uri: str, broken: dict[str, str], settings: Settings) -> dict[str, str]:
    """Record each partial object under quarantine/objects/<batch_id>.json (the object itself stays where it is:
    once it is whole again, a rerun loads it). Returns key -> error."""
    root = raw_uri.rstrip("/")
    keys = {}
    for path, error in broken.items():
        key = path.removeprefix("file:").removeprefix(root).lstrip("/")
        batch_id = os.path.basename(key).removesuffix(".jsonl.gz")
        record = {
            "key": key,
            "batch_id": batch_id,
            "reason": Reason.CORRUPT_OBJECT.value,
            "error": error,
            "detected_at": datetime.now(UTC).isoformat(),
        }
        _put_object(f"{root}/quarantine/objects/{batch_id}.json", json.dumps(record).encode(), settings)
        print(
            f"skipped a partial raw object, nothing of it loaded: {key} ({error}); "
            f"recorded in quarantine/objects/{batch_id}.json",
            file=sys.stderr,
        )
        keys[key] = error
    return keys


def read_labels(spark: SparkSession, paths: list[str]) -> DataFrame | None:
    if not paths:
        return None
    labels = spark.read.schema("trans_num string, is_fraud string, labelled_at string").json(paths)
    return (
        labels.where(F.col("trans_num").isNotNull())
        .select(
            "trans_num",
            F.expr("try_cast(is_fraud AS int) = 1").alias("is_fraud"),
            timestamp_of(F.col("labelled_at")).alias("labelled_at"),
        )
        .where(F.col("labelled_at").isNotNull() & F.col("is_fraud").isNotNull())
        .dropDuplicates(["trans_num"])
    )


def with_stored_labels(spark: SparkSession, engine, labels: DataFrame | None, since_unix: int) -> DataFrame | None:
    """The run's labels and those earlier runs loaded (fraud.db.queries.stored_labels); the run's win for a
    trans_num, as the load lets them (ON CONFLICT DO UPDATE)."""
    stored = stored_labels(engine, pd.Timestamp(since_unix, unit="s", tz="UTC"))
    if stored.empty:
        return labels
    known = spark.createDataFrame(stored, schema="trans_num string, is_fraud boolean, labelled_at timestamp")
    return known if labels is None else known.join(labels, "trans_num", "left_anti").unionByName(labels)


def load_batches(
    engine,
    accounting: list[BatchAccounting],
    chunks: Callable[[BatchAccounting], Iterable[pa.Table]],
    connections: int = LOAD_CONNECTIONS,
) -> Counter:
    """Load each batch's rows in one database transaction (a crash leaves whole batches or nothing; its new
    dimension rows commit just before, see load_processed), `connections` batches at once: the load is
    PostgreSQL's work per row (index and foreign-key upkeep), and one backend uses one core. Concurrent batches
    cannot deadlock: each inserts its dimension rows in key order (DISTINCT ON ... ORDER BY key), so one that
    meets another's uncommitted key waits for it holding only smaller keys. Returns the rows each table gained."""

    def load(item: BatchAccounting) -> dict[str, int]:
        return load_processed(engine, chunks(item), EMPTY_LABELS, [item])

    gained: Counter = Counter()
    with ThreadPoolExecutor(connections) as pool:
        for counts in pool.map(load, accounting):
            gained.update(counts)
    return gained


def run(args: dict[str, str], settings: Settings, report=print) -> dict:
    spark = spark_session(settings.spark_driver_memory)
    spark.sparkContext.setLogLevel("ERROR")
    transaction_paths = _paths(args["raw_uri"], args["transactions_keys"])
    label_paths = _paths(args["raw_uri"], args["labels_keys"])
    if not transaction_paths:
        raise SystemExit("no raw batches given: pass --transactions-keys")

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        timings[phase] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    broken = partial_objects(transaction_paths + label_paths, settings)
    corrupt_objects = quarantine_objects(args["raw_uri"], broken, settings)  # the rest of the run goes on without them
    transaction_paths = [p for p in transaction_paths if p not in broken]
    label_paths = [p for p in label_paths if p not in broken]
    if not transaction_paths:
        raise SystemExit(f"no whole raw batch to process: {sorted(corrupt_objects)} are partial objects")
    # the raw rows are read once and tokenized before anything is cached or shuffled: from here on only the raw
    # zone's quarantine holds a card number (with_card_numbers reads the quarantined rows' batches again for it)
    tokenized = tokenize(read_raw(spark, transaction_paths), settings.token_key()).cache()
    loaded = read_loaded(spark, args["processed_uri"], tokenized)
    valid, quarantined, duplicates = validate(tokenized, settings.token_key(), loaded)
    bounds = valid.agg(F.min(F.unix_timestamp("event_time"))).first()[0]
    lap("read_validate_tokenize")
    history = read_history(spark, args["processed_uri"], (bounds or 0) - HISTORY_SECONDS) if bounds else None
    engine = get_engine(settings, role=DbRole.WRITER)
    labels = with_stored_labels(spark, engine, read_labels(spark, label_paths), (bounds or 0) - HISTORY_SECONDS)
    labels = labels.cache() if labels is not None else None
    processed = features(valid, history, labels)

    # curated zone: the loaded columns plus each feature by name, partitioned by date and batch. Clustered by
    # partition first: one file per (date, batch) instead of one per task and partition (16 x 30 small files
    # took 3x as long to write as the shuffle that avoids them)
    curated = processed.select(*PROCESSED_COLUMNS, "event_unix", "feature_version", *FEATURE_NAMES, "dt").repartition(
        "dt", "batch_id"
    )
    curated.write.mode("overwrite").partitionBy("dt", "batch_id").parquet(
        f"{args['processed_uri'].rstrip('/')}/transactions"
    )
    written = written_by_run(spark, args["processed_uri"], valid)
    lap("features_and_parquet")
    batches = {r["batch_id"] for r in quarantined.select("batch_id").distinct().collect()}
    if batches:  # fraud ingest writes beside it, in quarantine/ingest/
        again = read_raw(spark, [p for p in transaction_paths if batch_id_of(p) in batches])
        with_card_numbers(again, quarantined).write.mode("overwrite").partitionBy("batch_id").json(
            f"{args['raw_uri'].rstrip('/')}/quarantine/etl"
        )
    lap("quarantine")

    counts = (
        tokenized.groupBy("batch_id", "source_key")
        .count()
        .withColumnRenamed("count", "rows_in")
        .join(duplicates, "batch_id", "left")
        .join(
            quarantined.groupBy("batch_id").count().withColumnRenamed("count", "rows_quarantined"), "batch_id", "left"
        )
        .join(written.groupBy("batch_id").count().withColumnRenamed("count", "rows_loaded"), "batch_id", "left")
        .fillna(0)
        .collect()
    )
    accounting = [
        BatchAccounting(
            batch_id=r["batch_id"],
            source_key=r["source_key"],
            rows_in=r["rows_in"],
            rows_loaded=r["rows_loaded"],
            rows_quarantined=r["rows_quarantined"],
            duplicates_dropped=r["duplicates_dropped"],
        )
        for r in counts
    ]
    labels_table = labels.toArrow() if labels is not None else EMPTY_LABELS

    def batch_chunks(item: BatchAccounting) -> Iterator[pa.Table]:
        """A batch's rows as the driver receives them: a chunk at a time, so neither the driver nor Spark's
        collect ever holds a whole batch."""
        count = math.ceil(item.rows_loaded / LOAD_CHUNK_ROWS)  # 0 when all quarantined: the accounting still loads
        for index in range(count):
            yield (
                written.where((F.col("batch_id") == item.batch_id) & (F.pmod(F.xxhash64("trans_num"), count) == index))
                .select(*PROCESSED_COLUMNS)
                .toArrow()
            )

    gained = load_batches(engine, accounting, batch_chunks)
    gained.update(load_processed(engine, [], labels_table, []))
    gained = dict(gained)
    lap("database_load")
    reasons = {r["quarantine_reason"]: r["count"] for r in quarantined.groupBy("quarantine_reason").count().collect()}
    summary = {
        "batches": len(accounting),
        "rows_in": sum(a.rows_in for a in accounting),
        "rows_loaded": sum(a.rows_loaded for a in accounting),
        "rows_quarantined": sum(a.rows_quarantined for a in accounting),
        "duplicates_dropped": sum(a.duplicates_dropped for a in accounting),
        "labels_read": labels_table.num_rows,
        "quarantine_reasons": reasons,
        "rows_gained": gained,
        "corrupt_objects": corrupt_objects,
        "feature_version": FEATURE_VERSION,
        "seconds": timings,
    }
    report(summary)
    return summary


def _pipes_params_loader():
    """Dagster Pipes parameters: CLI arguments in AWS Glue (PipesGlueClient), environment variables locally
    (PipesSubprocessClient). None when not launched by Dagster."""
    try:
        import dagster_pipes
    except ImportError:  # a Glue job without the dagster-pipes wheel
        return None
    for loader in (dagster_pipes.PipesCliArgsParamsLoader(), dagster_pipes.PipesEnvVarParamsLoader()):
        if loader.is_dagster_pipes_process():
            return loader
    return None


def main(argv: list[str]) -> None:
    args = parse_arguments(argv)
    settings = settings_from(argv)
    loader = _pipes_params_loader()
    if loader is None:
        run(args, settings)
        return
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesDefaultContextLoader,
        PipesS3ContextLoader,
        open_dagster_pipes,
    )

    # PipesGlueClient passes the context as an S3 object named in CLI arguments; the subprocess client inlines it
    context_loader = (
        PipesS3ContextLoader(client=s3_client(settings))
        if isinstance(loader, PipesCliArgsParamsLoader)
        else PipesDefaultContextLoader()
    )
    with open_dagster_pipes(params_loader=loader, context_loader=context_loader) as pipes:
        pipes.log.info(f"processing {len(args['transactions_keys'].split(','))} raw batches")

        def report(summary: dict) -> None:
            pipes.report_asset_materialization(
                metadata={
                    "batches": summary["batches"],
                    "rows_in": summary["rows_in"],
                    "rows_loaded": summary["rows_loaded"],
                    "rows_quarantined": summary["rows_quarantined"],
                    "duplicates_dropped": summary["duplicates_dropped"],
                    "labels_read": summary["labels_read"],
                    "feature_version": summary["feature_version"],
                    "quarantine_reasons": {"raw_value": summary["quarantine_reasons"], "type": "json"},
                    "rows_gained": {"raw_value": summary["rows_gained"], "type": "json"},
                    "corrupt_objects": {"raw_value": summary["corrupt_objects"], "type": "json"},
                    "seconds_per_phase": {"raw_value": summary["seconds"], "type": "json"},
                }
            )

        run(args, settings, report)


if __name__ == "__main__":
    main(sys.argv)
