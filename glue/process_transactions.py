"""Glue ETL job: raw Sparkov batches -> validated, deduplicated, tokenized, featurized transactions.

Runs unchanged in AWS Glue (arguments via getResolvedOptions, GlueContext) and on local PySpark (plain
SparkSession, the same arguments via argparse). Under Dagster Pipes it reports row accounting as metadata.

    python glue/process_transactions.py --raw-uri R --processed-uri P --transactions-keys k1,k2 [--labels-keys l1]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fraud.core.privacy import card_token, normalize_card_number
from fraud.core.schema import CATEGORIES, DATE_FORMATS, LABEL_COLUMNS, RAW_COLUMNS, TIMESTAMP_FORMATS
from fraud.core.settings import Settings
from fraud.core.storage import s3_client
from fraud.db.engine import get_engine
from fraud.db.load import PROCESSED_COLUMNS, BatchAccounting, load_processed
from fraud.features.catalog import (
    AMOUNT_SPREAD_FLOOR,
    CATEGORY_FEATURES,
    FEATURE_NAMES,
    FEATURE_VERSION,
    HISTORY_SECONDS,
    LABEL_LOOKBACK_SECONDS,
    LONGEST_WINDOW_SECONDS,
    MERCHANT_FEATURES,
    NUMERIC_FEATURES,
    WINDOWS,
    merchant_risk,
)

LOAD_CHUNK_ROWS = 100_000  # rows a batch is fetched from Spark and COPY'd in: bounds the driver's memory
LOAD_CONNECTIONS = 2  # batches loaded at once (see load_batches)
EMPTY_LABELS = pa.table({c: pa.array([], pa.string()) for c in LABEL_COLUMNS})
ARGUMENTS = ("raw_uri", "processed_uri", "transactions_keys", "labels_keys")
RAW_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in RAW_COLUMNS] + [T.StructField("_corrupt_record", T.StringType())]
)


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
        return (
            SparkSession.builder.master("local[2]")
            .appName("fraud-process-transactions")
            .config("spark.sql.session.timeZone", "UTC")
            # AQE coalesces small shuffles to one partition; a large run's cached validated rows come in blocks
            # of a sixteenth rather than a quarter of the run, read back from disk into the 2 GB heap
            .config("spark.sql.shuffle.partitions", "16")
            .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
            .config("spark.driver.memory", driver_memory)  # local mode: the driver is the executor too
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
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


def _first_parse(column: str, formats: tuple[str, ...], parse) -> F.Column:
    return F.coalesce(*[parse(F.col(column), F.lit(fmt)) for fmt in formats])


def _tokenizer(key: bytes):
    @F.pandas_udf(T.StructType([T.StructField("token", T.StringType()), T.StructField("last4", T.StringType())]))
    def tokenize(numbers):
        import pandas as pd

        digits = numbers.map(normalize_card_number)
        return pd.DataFrame(
            {
                "token": digits.map(lambda d: card_token(d, key) if d else None),
                "last4": digits.map(lambda d: d[-4:] if d else None),
            }
        )

    return tokenize


def _content(card_token: F.Column, merchant: F.Column, event_unix: F.Column, amt: F.Column) -> F.Column:
    """What makes two rows with one trans_num the same transaction: card, merchant, time and amount."""
    return F.struct(
        card_token.alias("card_token"),
        merchant.alias("merchant"),
        event_unix.cast("bigint").alias("event_unix"),
        amt.cast("double").alias("amt"),
    )


def validate(raw: DataFrame, key: bytes, loaded: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Split raw rows into (valid, quarantined with a reason, per-batch duplicate counts). A trans_num that
    another batch already loaded (`loaded`, see read_loaded) or that an earlier batch of this run carries is a
    duplicate when it is the same transaction (`_content`), and quarantined as conflicting otherwise."""
    # rows are clustered by trans_num once: the dedupe and the trans_num window below share that shuffle (the
    # tokenizer runs before it, as a Python UDF's output loses the clustering), and an exact copy is found by a
    # digest of the row rather than by sorting on its 27 string columns
    deduped = (
        raw.withColumn("card", _tokenizer(key)(F.col("cc_num")))
        .repartition("trans_num")
        .withColumn("row_digest", F.sha2(F.to_json(F.struct(*RAW_COLUMNS, "_corrupt_record")), 256))
        .dropDuplicates(["trans_num", "batch_id", "row_digest"])
        .drop("row_digest")
    )
    if loaded is None:  # nothing loaded before: no join
        no_content = "struct<card_token:string,merchant:string,event_unix:bigint,amt:double>"
        deduped = deduped.withColumn("loaded_batch", F.lit(None).cast("string")).withColumn(
            "loaded_content", F.lit(None).cast(no_content)
        )
    else:
        deduped = deduped.join(loaded, "trans_num", "left")

    parsed_time = F.coalesce(
        _first_parse("trans_date_trans_time", TIMESTAMP_FORMATS, F.try_to_timestamp),
        F.timestamp_seconds(F.expr("try_cast(try_cast(unix_time AS double) AS bigint)")),
    )
    # the batch that loaded a trans_num before keeps it; otherwise the first batch of this run (by id) does. One
    # ordering column, so the three window functions below share one sort
    first = Window.partitionBy("trans_num").orderBy(F.col("loaded_here").desc(), "batch_id", "source_key")
    rows = (
        deduped.withColumn("loaded_here", F.coalesce(F.col("batch_id") == F.col("loaded_batch"), F.lit(False)))
        .withColumn("event_time", parsed_time)
        .withColumn("amount", F.expr("try_cast(amt AS double)"))
        .withColumn(
            "content",
            _content(F.col("card.token"), F.trim("merchant"), F.unix_timestamp("event_time"), F.round("amount", 2)),
        )
        .withColumn("first_seen", F.row_number().over(first))
        .withColumn("first_batch", F.first("batch_id").over(first))
        .withColumn("first_content", F.first("content").over(first))
    )
    loaded_elsewhere = F.col("loaded_batch").isNotNull() & (F.col("loaded_batch") != F.col("batch_id"))
    same_as_loaded = F.coalesce(F.col("content") == F.col("loaded_content"), F.lit(False))
    repeated_elsewhere = (
        (F.col("first_seen") > 1)
        & (F.col("batch_id") != F.col("first_batch"))
        & F.coalesce(F.col("content") == F.col("first_content"), F.lit(False))
    )
    reason = (
        F.when(F.col("_corrupt_record").isNotNull(), "malformed_json")
        .when(F.coalesce(F.trim("trans_num"), F.lit("")) == "", "missing_trans_num")
        .when(F.col("card.token").isNull(), "invalid_card_number")
        .when(F.coalesce(F.trim("merchant"), F.lit("")) == "", "missing_merchant")
        .when(F.col("amount").isNull() | F.isnan("amount") | (F.col("amount") < 0), "invalid_amount")
        .when(F.col("event_time").isNull(), "invalid_timestamp")
        .when(loaded_elsewhere & ~same_as_loaded, "conflicting_duplicate_trans_num")
        .when((F.col("first_seen") > 1) & ~loaded_elsewhere & ~repeated_elsewhere, "conflicting_duplicate_trans_num")
    )
    # a redelivered row (same transaction under another batch id) is dropped and counted as a duplicate
    duplicate = reason.isNull() & ((loaded_elsewhere & same_as_loaded) | repeated_elsewhere)
    rows = (
        rows.withColumn("quarantine_reason", reason).where(~duplicate).cache()
    )  # tokenized once, read by every output below
    duplicates = (
        raw.groupBy("batch_id")
        .count()
        .join(rows.groupBy("batch_id").count().withColumnRenamed("count", "kept"), "batch_id", "left")
        .select("batch_id", (F.col("count") - F.coalesce(F.col("kept"), F.lit(0))).alias("duplicates_dropped"))
    )
    quarantined = rows.where(F.col("quarantine_reason").isNotNull()).select(
        *RAW_COLUMNS, "_corrupt_record", "batch_id", "source_key", "quarantine_reason"
    )
    valid = rows.where(F.col("quarantine_reason").isNull())
    return valid, quarantined, duplicates


def _num(column: str) -> F.Column:
    return F.expr(f"try_cast({column} AS double)")


MERCHANT_SCHEMA = T.StructType(
    [T.StructField("trans_num", T.StringType())] + [T.StructField(name, T.DoubleType()) for name in MERCHANT_FEATURES]
)


def _merchant_group(frame):
    """applyInPandas body: one merchant's events -> merchant-risk features of its current transactions."""
    current = frame[frame["is_current"]]
    values = merchant_risk(
        frame["event_unix"].to_numpy(),
        frame["is_fraud"].astype("boolean").fillna(False).to_numpy(dtype=bool),
        frame["labelled_unix"].to_numpy(dtype=float),
        current["event_unix"].to_numpy(),
    )
    return pd.DataFrame({"trans_num": current["trans_num"].to_numpy(), **values})[list(MERCHANT_SCHEMA.fieldNames())]


def merchant_features(labelled: DataFrame) -> DataFrame:
    """Merchant volume and risk with labels as known at each transaction's time (fraud.features.catalog.merchant_risk)."""
    return (
        labelled.select("merchant", "trans_num", "event_unix", "is_current", "is_fraud", "labelled_unix")
        .groupBy("merchant")
        .applyInPandas(_merchant_group, MERCHANT_SCHEMA)
    )


def with_labels(events: DataFrame, labels: DataFrame | None) -> DataFrame:
    """events + is_fraud and labelled_unix (null: no label)."""
    if labels is None:
        return events.withColumn("is_fraud", F.lit(None).cast("boolean")).withColumn(
            "labelled_unix", F.lit(None).cast("double")
        )
    return events.join(
        labels.select("trans_num", "is_fraud", F.unix_timestamp("labelled_at").cast("double").alias("labelled_unix")),
        "trans_num",
        "left",
    )


def card_known_frauds(labelled: DataFrame) -> DataFrame:
    """trans_num -> the card's transactions of the last LABEL_LOOKBACK days known to be fraud at the transaction's
    time (fraud.features.catalog.known_frauds). Frauds are rare, so a join of each current row with its card's labelled
    frauds is cheap."""
    current = labelled.where("is_current").select("trans_num", "card_token", "event_unix")
    frauds = labelled.where(F.col("is_fraud") & F.col("labelled_unix").isNotNull()).select(
        "card_token", F.col("event_unix").alias("fraud_unix"), "labelled_unix"
    )
    matched = (
        current.join(frauds, "card_token")
        .where(
            (F.col("fraud_unix") >= F.col("event_unix") - LABEL_LOOKBACK_SECONDS)
            & (F.col("fraud_unix") < F.col("event_unix"))
            & (F.col("labelled_unix") < F.col("event_unix"))
        )
        .groupBy("trans_num")
        .agg(F.count("*").cast("double").alias("card_known_frauds_60d"))
    )
    return current.select("trans_num").join(matched, "trans_num", "left").fillna(0.0, ["card_known_frauds_60d"])


def features(valid: DataFrame, history: DataFrame | None, labels: DataFrame | None = None) -> DataFrame:
    """Point-in-time features: every window looks strictly before the transaction (rangeBetween(-w, -1))."""
    current = (
        valid.select(
            "trans_num",
            "event_time",
            F.col("card.token").alias("card_token"),
            F.col("card.last4").alias("last4"),
            F.trim("merchant").alias("merchant"),
            F.lower(F.trim("category")).alias("category"),
            F.round("amount", 2).alias("amt"),
            _num("merch_lat").alias("merch_lat"),
            _num("merch_long").alias("merch_long"),
            "first",
            "last",
            "gender",
            _first_parse("dob", DATE_FORMATS, lambda c, f: F.to_date(F.try_to_timestamp(c, f))).alias("dob"),
            "street",
            "city",
            "state",
            "zip",
            _num("lat").alias("lat"),
            _num("long").alias("long"),
            F.expr("try_cast(try_cast(city_pop AS double) AS int)").alias("city_pop"),
            "job",
            "batch_id",
        )
        .withColumn("event_unix", F.unix_timestamp("event_time"))
        .withColumn("is_current", F.lit(True))
    )

    # the current rows carry all their columns through the card windows (history rows get nulls), so the
    # windowed rows need no join back to them: one shuffle of the run's rows fewer
    events = current
    if history is not None:
        past = history.join(current.select("trans_num"), "trans_num", "left_anti").select(
            "trans_num", "card_token", "merchant", "category", "event_unix", "amt", F.lit(False).alias("is_current")
        )
        events = events.unionByName(past, allowMissingColumns=True)
    # an empty category is a category of its own for "first time in this category"
    events = events.withColumn("category_key", F.coalesce(F.col("category"), F.lit("")))

    by_card = Window.partitionBy("card_token").orderBy("event_unix")
    month = LONGEST_WINDOW_SECONDS
    windowed = events
    for name, seconds in WINDOWS.items():
        frame = by_card.rangeBetween(-seconds, -1)  # [t - w, t): strictly before, same second excluded
        windowed = windowed.withColumn(f"card_count_{name}", F.count("amt").over(frame).cast("double")).withColumn(
            f"card_mean_amt_{name}", F.coalesce(F.avg("amt").over(frame), F.lit(0.0))
        )
    windowed = (
        windowed.withColumn("card_std_amt_30d", F.stddev_pop("amt").over(by_card.rangeBetween(-month, -1)))
        .withColumn("prev_unix", F.max("event_unix").over(by_card.rangeBetween(-month, -1)))
        .withColumn(
            "card_distinct_merchants_1h",
            F.size(F.collect_set("merchant").over(by_card.rangeBetween(-WINDOWS["1h"], -1))).cast("double"),
        )
        .withColumn(
            "card_distinct_merchants_1d",
            F.size(F.collect_set("merchant").over(by_card.rangeBetween(-WINDOWS["1d"], -1))).cast("double"),
        )
        .withColumn(
            "card_new_merchant_30d",
            (
                F.count("amt").over(
                    Window.partitionBy("card_token", "merchant").orderBy("event_unix").rangeBetween(-month, -1)
                )
                == 0
            ).cast("double"),
        )
        .withColumn(
            "card_new_category_30d",
            (
                F.count("amt").over(
                    Window.partitionBy("card_token", "category_key").orderBy("event_unix").rangeBetween(-month, -1)
                )
                == 0
            ).cast("double"),
        )
    )
    windowed = windowed.where("is_current").drop("is_current", "category_key")
    labelled = with_labels(events.select("trans_num", "card_token", "merchant", "event_unix", "is_current"), labels)
    merchant = merchant_features(labelled)
    card_frauds = card_known_frauds(labelled)

    hour = F.hour("event_time")
    haversine = (
        F.sin(F.radians(F.col("merch_lat") - F.col("lat")) / 2) ** 2
        + F.cos(F.radians("lat"))
        * F.cos(F.radians("merch_lat"))
        * F.sin(F.radians(F.col("merch_long") - F.col("long")) / 2) ** 2
    )
    # least() skips nulls, so an unknown location must stay null explicitly; the cap keeps rounding out of asin
    km = F.when(haversine.isNotNull(), 6371.0 * 2 * F.asin(F.sqrt(F.least(F.lit(1.0), haversine))))
    population_known = F.col("city_pop").isNotNull() & (F.col("city_pop") >= 0)
    out = (
        windowed.join(merchant, "trans_num", "left")
        .join(card_frauds, "trans_num", "left")
        .withColumn("amt_log", F.log1p("amt"))
        .withColumn("hour", hour.cast("double"))
        .withColumn("is_night", ((hour >= 22) | (hour < 6)).cast("double"))
        .withColumn("is_weekend", F.dayofweek("event_time").isin(1, 7).cast("double"))
        .withColumn("age_years", F.coalesce(F.months_between("event_time", "dob") / 12, F.lit(0.0)))
        .withColumn("age_known", F.col("dob").isNotNull().cast("double"))
        .withColumn("city_pop_log", F.when(population_known, F.log1p("city_pop")).otherwise(0.0))
        .withColumn("city_pop_known", population_known.cast("double"))
        .withColumn("distance_km", F.coalesce(km, F.lit(0.0)))
        .withColumn("distance_known", km.isNotNull().cast("double"))
        .withColumn(
            "amt_over_card_mean_30d",
            F.when(F.col("card_mean_amt_30d") > 0, F.col("amt") / F.col("card_mean_amt_30d")).otherwise(1.0),
        )
        .withColumn(
            "amt_z_card_30d",
            F.when(
                F.col("card_count_30d") > 0,
                (F.col("amt") - F.col("card_mean_amt_30d"))
                / (F.coalesce(F.col("card_std_amt_30d"), F.lit(0.0)) + AMOUNT_SPREAD_FLOOR),
            ).otherwise(0.0),
        )
        .withColumn(
            "secs_since_prev_log",
            F.log1p(F.coalesce(F.col("event_unix") - F.col("prev_unix"), F.lit(LONGEST_WINDOW_SECONDS)).cast("double")),
        )
    )
    for name, feature in zip(CATEGORIES, CATEGORY_FEATURES, strict=False):
        out = out.withColumn(feature, (F.col("category") == name).cast("double"))
    assert tuple(NUMERIC_FEATURES) + tuple(CATEGORY_FEATURES) == FEATURE_NAMES
    return (
        out.withColumn("features", F.array(*[F.coalesce(F.col(n).cast("double"), F.lit(0.0)) for n in FEATURE_NAMES]))
        .withColumn("feature_version", F.lit(FEATURE_VERSION))
        .withColumn("dt", F.date_format("event_time", "yyyy-MM-dd"))
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
            _content(F.col("card_token"), F.col("merchant"), F.col("event_unix"), F.col("amt")).alias("loaded_content"),
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
            "reason": "corrupt_object",
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
            _first_parse("labelled_at", TIMESTAMP_FORMATS, F.try_to_timestamp).alias("labelled_at"),
        )
        .where(F.col("labelled_at").isNotNull() & F.col("is_fraud").isNotNull())
        .dropDuplicates(["trans_num"])
    )


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
    raw = read_raw(spark, transaction_paths).cache()
    valid, quarantined, duplicates = validate(raw, settings.token_key(), read_loaded(spark, args["processed_uri"], raw))
    bounds = valid.agg(F.min(F.unix_timestamp("event_time"))).first()[0]
    lap("read_validate_tokenize")
    history = read_history(spark, args["processed_uri"], (bounds or 0) - HISTORY_SECONDS) if bounds else None
    labels = read_labels(spark, label_paths)
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
    quarantined.write.mode("overwrite").partitionBy("batch_id").json(
        f"{args['raw_uri'].rstrip('/')}/quarantine/etl"
    )  # fraud ingest writes beside it, in quarantine/ingest/
    lap("quarantine")

    counts = (
        raw.groupBy("batch_id", "source_key")
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
    engine = get_engine(settings)

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
