"""The ETL's logic as Spark column expressions: reading raw values, validation, tokenization, deduplication and the
point-in-time features. glue/process_transactions.py is the entry point around it (arguments, the Spark session,
Dagster Pipes, reading and writing); this module reads and writes nothing.

Spark cannot call the Python definitions per row without a UDF, so it writes the same definitions again as column
expressions, built from the one place each lives and checked against it:
- raw values: `text`, `number`, `timestamp_of`, `event_time`, `date_of` are fraud/ingest/raw_values.py's readers
  (same pattern, whitespace and range constants);
- validation: `validate` applies fraud/ingest/validation.py's ROW_CHECKS in order, with its codes and thresholds
  (`breaks`); a check without a Spark expression here fails the first call (tests/ingest/test_validation.py runs
  one corpus through all three engines);
- per-row features: `row_feature_columns` are fraud/features/rows.py's under the same names, with Spark's own
  months_between for the age (tests/glue/test_row_features.py checks the values are equal);
- window features: the card and merchant windows below, with the label-based risk from fraud/features/catalog.py
  (run per merchant through applyInPandas); the online path writes the same windows in SQL
  (tests/glue/test_online_parity.py) and the pandas reference with groupby (tests/glue/test_pandas_parity.py);
  tests/glue/test_label_windows.py checks the label-based features against the catalog on late, early and
  same-second labels.

Built-in expressions only, besides two steps that stay in Python:
- the card tokenizer, a pandas UDF: fraud.core.privacy's HMAC key must not appear in a query plan (Spark 3.5, which
  Glue 5 runs, has no built-in HMAC; Spark 4's `hmac` would put the key in the plan as a literal). `tokenize` runs
  it before anything is cached or shuffled and drops `cc_num` there;
- the per-merchant label risk (applyInPandas over narrow rows). Written as window functions (each label an
  interval of query times, summed over the merchant's and the card's time lines) it gave the same values but made
  the features phase about 1.5x slower at 312,596 rows on 2 cores (60 s against 41 s): the merchant's time line
  doubles the rows the windows sort, and the wide rows are shuffled once more.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from fraud.core.privacy import card_token, normalize_card_number
from fraud.core.schema import CATEGORIES, DATE_FORMATS, RAW_COLUMNS, TIMESTAMP_FORMATS
from fraud.features.catalog import (
    AMOUNT_SPREAD_FLOOR,
    CATEGORY_FEATURES,
    FEATURE_NAMES,
    FEATURE_VERSION,
    LABEL_LOOKBACK_SECONDS,
    LONGEST_WINDOW_SECONDS,
    MERCHANT_FEATURES,
    WINDOWS,
    merchant_risk,
)
from fraud.features.rows import EARTH_RADIUS_KM, NIGHT_FROM_HOUR, NIGHT_UNTIL_HOUR, ROW_FEATURES, WEEKEND_FROM
from fraud.ingest.raw_values import FIRST_UNIX_SECOND, INT32_MAX, LAST_UNIX_SECOND, NUMBER, WHITESPACE
from fraud.ingest.validation import (
    ABSURD_AMOUNT,
    COORDINATE_LIMITS,
    ETL_REASONS,
    FIRST_DOB,
    FIRST_EVENT_TIME,
    LAST_EVENT_TIME,
    ROW_CHECKS,
    Check,
    RawRow,
    Reason,
)

RAW_SCHEMA = T.StructType(
    [T.StructField(c, T.StringType()) for c in RAW_COLUMNS] + [T.StructField("_corrupt_record", T.StringType())]
)


# --- raw values, read as fraud.ingest.raw_values reads them ------------------------------------------------------


def text(column: Column) -> Column:
    """The value without surrounding whitespace (str.strip's characters, not only spaces); null stays null."""
    return F.btrim(column, F.lit(WHITESPACE))


def number(column: Column) -> Column:
    """parse_number: a finite plain decimal, else null (Spark's cast alone takes "1d", "0x1p3", "inf" and "NaN")."""
    trimmed = text(column)
    value = F.when(trimmed.rlike(NUMBER.pattern), trimmed.cast("double"))
    return F.when(F.abs(value) < float("inf"), value)


def _in_years_1_to_9999(moment: Column) -> Column:
    return F.when(F.unix_timestamp(moment).between(FIRST_UNIX_SECOND, LAST_UNIX_SECOND), moment)


def timestamp_of(column: Column) -> Column:
    """parse_timestamp: the first of the schema's formats that reads the value (Spark also reads year 0: not here)."""
    trimmed = text(column)
    return _in_years_1_to_9999(F.coalesce(*[F.try_to_timestamp(trimmed, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS]))


def event_time(trans_date_trans_time: Column, unix_time: Column) -> Column:
    """parse_event_time: the text time, else the whole seconds of unix_time (truncated toward zero) in years 1 to
    9999; the bounds come first, as a larger value overflows Spark's timestamp and fails the job."""
    seconds = number(unix_time)
    whole = F.when((seconds > FIRST_UNIX_SECOND - 1) & (seconds < LAST_UNIX_SECOND + 1), seconds.cast("bigint"))
    return F.coalesce(timestamp_of(trans_date_trans_time), F.timestamp_seconds(whole))


def date_of(column: Column) -> Column:
    """parse_date."""
    trimmed = text(column)
    return F.coalesce(
        *[F.to_date(_in_years_1_to_9999(F.try_to_timestamp(trimmed, F.lit(fmt)))) for fmt in DATE_FORMATS]
    )


def int32(column: Column) -> Column:
    """parse_int32."""
    value = number(column)
    return F.when(F.abs(value) <= INT32_MAX, value.cast("int"))


# --- validation: fraud.ingest.validation's rules as column expressions -------------------------------------------


def raw_row(card_token: Column) -> dict[str, Column]:
    """RawRow's values of a raw row. `card_token` is null exactly when normalize_card_number finds no card number
    (the tokenizer calls it); the row carries `amount` and `event_time` read already."""
    row = {
        "trans_num": F.coalesce(text(F.col("trans_num")), F.lit("")),
        "card_digits": card_token,
        "merchant": F.coalesce(text(F.col("merchant")), F.lit("")),
        "amount": F.col("amount"),
        "event_time": F.col("event_time"),
        "dob": date_of(F.col("dob")),
        **{name: number(F.col(name)) for name in COORDINATE_LIMITS},
    }
    assert set(row) == {field.name for field in fields(RawRow)}
    return row


def _unix(moment: datetime) -> int:
    """A naive UTC datetime's unix seconds."""
    return int((moment - datetime(1970, 1, 1)).total_seconds())


def breaks(check: Check, row: dict[str, Column]) -> Column:
    """Whether the row breaks `check` (null counts as no). Each case is the Spark form of the check's function."""
    match check.reason:
        case Reason.MISSING_TRANS_NUM:
            return row["trans_num"] == ""
        case Reason.INVALID_CARD_NUMBER:
            return row["card_digits"].isNull()
        case Reason.MISSING_MERCHANT:
            return row["merchant"] == ""
        case Reason.INVALID_AMOUNT:
            return row["amount"].isNull()
        case Reason.NEGATIVE_AMOUNT:
            return row["amount"] < 0
        case Reason.ABSURD_AMOUNT:
            return row["amount"] > ABSURD_AMOUNT
        case Reason.INVALID_TIMESTAMP:
            return row["event_time"].isNull()
        case Reason.EVENT_TIME_OUT_OF_RANGE:  # on unix seconds: no session time zone between the two engines
            seconds = F.unix_timestamp(row["event_time"])
            return (seconds < _unix(FIRST_EVENT_TIME)) | (seconds > _unix(LAST_EVENT_TIME))
        case Reason.INVALID_DOB:
            event_day = F.date_from_unix_date(F.floor(F.unix_timestamp(row["event_time"]) / 86_400).cast("int"))
            return (row["dob"] < F.lit(FIRST_DOB)) | (row["dob"] > event_day)
        case Reason.INVALID_COORDINATE:
            return F.abs(row[check.field]) > COORDINATE_LIMITS[check.field]
    raise NotImplementedError(f"no Spark expression for the check {check.reason} of {check.field}")


def first_reason(conditions: list[tuple[Column, Reason]]) -> Column:
    """The reason of the first condition that holds, else null."""
    (condition, reason), *rest = conditions
    chain = F.when(condition, reason.value)
    for condition, reason in rest:
        chain = chain.when(condition, reason.value)
    return chain


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


def content(card_token: Column, merchant: Column, event_unix: Column, amt: Column) -> Column:
    """What makes two rows with one trans_num the same transaction: card, merchant, time and amount."""
    return F.struct(
        card_token.alias("card_token"),
        merchant.alias("merchant"),
        event_unix.cast("bigint").alias("event_unix"),
        amt.cast("double").alias("amt"),
    )


def row_digest() -> Column:
    """A digest of the raw row as read, card number included: two rows of a batch with one digest are exact
    copies; the quarantine finds its rows' raw values again by it (with_card_numbers)."""
    return F.sha2(F.to_json(F.struct(*RAW_COLUMNS, "_corrupt_record")), 256)


def tokenize(raw: DataFrame, key: bytes) -> DataFrame:
    """Raw rows with the card number replaced: `card` (token, last4) and `row_digest` in place of `cc_num`.
    Everything after this step (the shuffle, the cache, the curated zone) holds no card number."""
    return (
        raw.withColumn("card", _tokenizer(key)(F.col("cc_num"))).withColumn("row_digest", row_digest()).drop("cc_num")
    )


def with_card_numbers(raw: DataFrame, quarantined: DataFrame) -> DataFrame:
    """The quarantined rows (validate) with their raw `cc_num` again, found in `raw` (the raw zone's rows, read
    again) by batch and row digest, in the raw column order: what the raw zone's quarantine stores. The quarantined
    rows are broadcast, so the raw rows are not shuffled; only the quarantined ones are, once, to drop exact copies."""
    numbers = raw.select("batch_id", row_digest().alias("row_digest"), "cc_num").join(
        F.broadcast(quarantined), ["batch_id", "row_digest"]
    )
    return numbers.dropDuplicates(["batch_id", "row_digest"]).select(
        *RAW_COLUMNS, "_corrupt_record", "batch_id", "source_key", "quarantine_reason"
    )


def validate(raw: DataFrame, key: bytes, loaded: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Split raw rows (or rows `tokenize` has tokenized already) into (valid, quarantined with a reason, per-batch
    duplicate counts); no output holds `cc_num` (the quarantine gets it back with `with_card_numbers`). A trans_num
    that another batch already loaded (`loaded`, see glue/process_transactions.py read_loaded) or that an earlier
    batch of this run carries is a duplicate when it is the same transaction (`content`), and quarantined as
    conflicting otherwise."""
    tokenized = tokenize(raw, key) if "cc_num" in raw.columns else raw
    # rows are clustered by trans_num once: the dedupe and the trans_num window below share that shuffle (the
    # tokenizer and the digest run before it, so the shuffle carries neither the card number nor a Python UDF's
    # output, which would lose the clustering), and an exact copy is found by the digest rather than by sorting
    # on its 27 string columns
    deduped = tokenized.repartition("trans_num").dropDuplicates(["trans_num", "batch_id", "row_digest"])
    if loaded is None:  # nothing loaded before: no join
        no_content = "struct<card_token:string,merchant:string,event_unix:bigint,amt:double>"
        deduped = deduped.withColumn("loaded_batch", F.lit(None).cast("string")).withColumn(
            "loaded_content", F.lit(None).cast(no_content)
        )
    else:
        deduped = deduped.join(loaded, "trans_num", "left")

    # the batch that loaded a trans_num before keeps it; otherwise the first batch of this run (by id) does. One
    # ordering column, so the three window functions below share one sort
    first = Window.partitionBy("trans_num").orderBy(F.col("loaded_here").desc(), "batch_id", "source_key")
    rows = (
        deduped.withColumn("loaded_here", F.coalesce(F.col("batch_id") == F.col("loaded_batch"), F.lit(False)))
        .withColumn("event_time", event_time(F.col("trans_date_trans_time"), F.col("unix_time")))
        .withColumn("amount", number(F.col("amt")))
        .withColumn(
            "content",
            content(F.col("card.token"), text(F.col("merchant")), F.unix_timestamp("event_time"), F.round("amount", 2)),
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
    row = raw_row(F.col("card.token"))
    conditions = [
        (F.col("_corrupt_record").isNotNull(), Reason.MALFORMED_JSON),
        *((breaks(check, row), check.reason) for check in ROW_CHECKS),
        (loaded_elsewhere & ~same_as_loaded, Reason.CONFLICTING_DUPLICATE_TRANS_NUM),
        ((F.col("first_seen") > 1) & ~loaded_elsewhere & ~repeated_elsewhere, Reason.CONFLICTING_DUPLICATE_TRANS_NUM),
    ]
    # the order of fraud.ingest.validation (a corrupt object is set aside before Spark reads it)
    assert (Reason.CORRUPT_OBJECT, *dict.fromkeys(reason for _, reason in conditions)) == ETL_REASONS
    reason = first_reason(conditions)
    # a redelivered row (same transaction under another batch id) is dropped and counted as a duplicate
    duplicate = reason.isNull() & ((loaded_elsewhere & same_as_loaded) | repeated_elsewhere)
    rows = (
        rows.withColumn("quarantine_reason", reason).where(~duplicate).cache()
    )  # tokenized once, read by every output below
    duplicates = (
        tokenized.groupBy("batch_id")
        .count()
        .join(rows.groupBy("batch_id").count().withColumnRenamed("count", "kept"), "batch_id", "left")
        .select("batch_id", (F.col("count") - F.coalesce(F.col("kept"), F.lit(0))).alias("duplicates_dropped"))
    )
    quarantined = rows.where(F.col("quarantine_reason").isNotNull()).select(
        *(c for c in RAW_COLUMNS if c != "cc_num"),
        "_corrupt_record",
        "batch_id",
        "source_key",
        "quarantine_reason",
        "row_digest",
    )
    valid = rows.where(F.col("quarantine_reason").isNull())
    return valid, quarantined, duplicates


# --- label-based features ----------------------------------------------------------------------------------------

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
    """Merchant volume and risk with labels as known at each transaction's time
    (fraud.features.catalog.merchant_risk)."""
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


# --- per-row features: fraud.features.rows as column expressions -------------------------------------------------


def row_feature_columns() -> dict[str, Column]:
    """ROW_FEATURES over a featurized row's columns (amt, event_time, event_unix, dob, city_pop, lat, long,
    merch_lat, merch_long, category, card_mean_amt_30d, card_std_amt_30d, card_count_30d, prev_unix)."""
    hour = F.hour("event_time")
    haversine = (
        F.sin(F.radians(F.col("merch_lat") - F.col("lat")) / 2) ** 2
        + F.cos(F.radians("lat"))
        * F.cos(F.radians("merch_lat"))
        * F.sin(F.radians(F.col("merch_long") - F.col("long")) / 2) ** 2
    )
    # least() skips nulls, so an unknown location must stay null explicitly; the cap keeps rounding out of asin
    km = F.when(haversine.isNotNull(), EARTH_RADIUS_KM * 2 * F.asin(F.sqrt(F.least(F.lit(1.0), haversine))))
    population_known = F.col("city_pop").isNotNull() & (F.col("city_pop") >= 0)
    columns = {
        "amt_log": F.log1p("amt"),
        "hour": hour.cast("double"),
        "is_night": ((hour >= NIGHT_FROM_HOUR) | (hour < NIGHT_UNTIL_HOUR)).cast("double"),
        "is_weekend": (F.weekday("event_time") >= WEEKEND_FROM).cast("double"),
        "age_years": F.coalesce(F.months_between("event_time", "dob") / 12, F.lit(0.0)),
        "age_known": F.col("dob").isNotNull().cast("double"),
        "city_pop_log": F.when(population_known, F.log1p("city_pop")).otherwise(0.0),
        "city_pop_known": population_known.cast("double"),
        "distance_km": F.coalesce(km, F.lit(0.0)),
        "distance_known": km.isNotNull().cast("double"),
        "amt_over_card_mean_30d": F.when(
            F.col("card_mean_amt_30d") > 0, F.col("amt") / F.col("card_mean_amt_30d")
        ).otherwise(1.0),
        "amt_z_card_30d": F.when(
            F.col("card_count_30d") > 0,
            (F.col("amt") - F.col("card_mean_amt_30d"))
            / (F.coalesce(F.col("card_std_amt_30d"), F.lit(0.0)) + AMOUNT_SPREAD_FLOOR),
        ).otherwise(0.0),
        "secs_since_prev_log": F.log1p(
            F.coalesce(F.col("event_unix") - F.col("prev_unix"), F.lit(LONGEST_WINDOW_SECONDS)).cast("double")
        ),
        **{
            feature: F.col("category").eqNullSafe(name).cast("double")
            for name, feature in zip(CATEGORIES, CATEGORY_FEATURES, strict=True)
        },
    }
    assert tuple(columns) == ROW_FEATURES
    return columns


# --- the feature vector ------------------------------------------------------------------------------------------


def features(valid: DataFrame, history: DataFrame | None, labels: DataFrame | None = None) -> DataFrame:
    """Point-in-time features: every window looks strictly before the transaction (rangeBetween(-w, -1))."""
    current = (
        valid.select(
            "trans_num",
            "event_time",
            F.col("card.token").alias("card_token"),
            F.col("card.last4").alias("last4"),
            text(F.col("merchant")).alias("merchant"),
            F.lower(text(F.col("category"))).alias("category"),
            F.round("amount", 2).alias("amt"),
            number(F.col("merch_lat")).alias("merch_lat"),
            number(F.col("merch_long")).alias("merch_long"),
            "first",
            "last",
            "gender",
            date_of(F.col("dob")).alias("dob"),
            "street",
            "city",
            "state",
            "zip",
            number(F.col("lat")).alias("lat"),
            number(F.col("long")).alias("long"),
            int32(F.col("city_pop")).alias("city_pop"),
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
    )
    for feature, key in (("card_new_merchant_30d", "merchant"), ("card_new_category_30d", "category_key")):
        by_card_and_key = Window.partitionBy("card_token", key).orderBy("event_unix").rangeBetween(-month, -1)
        windowed = windowed.withColumn(feature, (F.count("amt").over(by_card_and_key) == 0).cast("double"))
    windowed = windowed.where("is_current").drop("is_current", "category_key")
    labelled = with_labels(events.select("trans_num", "card_token", "merchant", "event_unix", "is_current"), labels)
    merchant = merchant_features(labelled)
    card_frauds = card_known_frauds(labelled)

    out = (
        windowed.join(merchant, "trans_num", "left")
        .join(card_frauds, "trans_num", "left")
        .withColumns(row_feature_columns())
    )
    return (
        out.withColumn("features", F.array(*[F.coalesce(F.col(n).cast("double"), F.lit(0.0)) for n in FEATURE_NAMES]))
        .withColumn("feature_version", F.lit(FEATURE_VERSION))
        .withColumn("dt", F.date_format("event_time", "yyyy-MM-dd"))
    )
