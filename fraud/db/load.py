"""Bulk load of processed batches: COPY into a staging table, then set-based statements into the star schema (the
fact and feature tables are partitioned by day, migration 0009): the new dimension rows and the batch's day
partitions in one short transaction, then, in one more, the batch is checked once and written: its accounting
against its rows, the rows whose trans_num is another transaction's (another time) dropped as duplicates, its facts,
features, labels and accounting. The references (a fact's card, merchant and category; a feature row's
transaction) are checked once per statement by 0009's triggers, and each new trans_num enters transaction_key,
whose key refuses a duplicate (and recent_transaction, the real-time read's table: fraud/db/recent.py, which the
load trims after each batch). Re-loading a batch changes nothing; a crash loads no part of a batch (at most
dimension rows and empty partitions, which the rerun finds in place)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Engine

from fraud.core.schema import LABEL_COLUMNS
from fraud.db.labels import REPLACES
from fraud.db.models import utc_day
from fraud.db.recent import trim_recent
from fraud.features.catalog import FEATURE_NAMES, FEATURE_VERSION

# Columns of the processed frame handed over by the Glue job (one row per valid transaction).
PROCESSED_COLUMNS: tuple[str, ...] = (
    "trans_num",
    "event_time",
    "card_token",
    "last4",
    "merchant",
    "category",
    "amt",
    "merch_lat",
    "merch_long",
    "first",
    "last",
    "gender",
    "dob",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "batch_id",
    "features",
)


@dataclass(frozen=True)
class BatchAccounting:
    batch_id: str
    source_key: str
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    duplicates_dropped: int

    def __post_init__(self) -> None:
        if self.rows_in != self.rows_loaded + self.rows_quarantined + self.duplicates_dropped:
            raise ValueError(f"row accounting does not add up for batch {self.batch_id}: {asdict(self)}")


# the feature vector travels as one float column per feature (COPY-able CSV written in C by Arrow) and is
# assembled into the float8[] column by the INSERT
_FEATURE_COLUMNS = tuple(f"f_{i}" for i in range(len(FEATURE_NAMES)))
_STAGING_DDL = """
CREATE TEMP TABLE stg_transaction (
    trans_num text, event_time timestamptz, card_token text, last4 text, merchant text, category text,
    amt numeric(12,2), merch_lat float8, merch_long float8, first text, last text, gender text, dob date,
    street text, city text, state text, zip text, lat float8, long float8, city_pop int, job text,
    batch_id text, {feature_columns}
);
CREATE TEMP TABLE stg_label (trans_num text, is_fraud boolean, labelled_at timestamptz);
CREATE TEMP TABLE stg_batch (batch_id text, source_key text, rows_in int, rows_loaded int,
    rows_quarantined int, duplicates_dropped int);
""".format(feature_columns=", ".join(f"{c} float8" for c in _FEATURE_COLUMNS))

_DROP_STAGING = "DROP TABLE stg_transaction, stg_label, stg_batch"

# (target table, statement), run in this order, one statement per call (psycopg sends parameters with the
# extended protocol, which takes one statement at a time). Dimension rows are inserted in key order: batches
# loaded at once then wait for each other's uncommitted keys instead of deadlocking
_MERGE: tuple[tuple[str, str], ...] = (
    (
        "dim_category",
        """
    INSERT INTO dim_category (category)
        SELECT DISTINCT category FROM stg_transaction WHERE category IS NOT NULL ORDER BY category
        ON CONFLICT DO NOTHING""",
    ),
    (
        "dim_card",
        """
    INSERT INTO dim_card (card_token, last4, first_name, last_name, gender, dob, street, city, state, zip,
                          home_lat, home_long, city_pop, job, email)
        SELECT DISTINCT ON (card_token) card_token, last4, first, last, left(gender, 1), dob, street, city,
               left(state, 2), left(zip, 10), lat, long, city_pop, job,
               -- simulator data has no contact table yet: a deterministic address on a reserved domain
               CASE WHEN first IS NOT NULL AND last IS NOT NULL
                    THEN lower(regexp_replace(first || '.' || last, '[^A-Za-z.]', '', 'g'))
                         || '.' || last4 || '@example.com'
               END
        FROM stg_transaction ORDER BY card_token, event_time DESC
        ON CONFLICT DO NOTHING""",
    ),
    (
        "dim_merchant",
        """
    INSERT INTO dim_merchant (merchant, merch_lat, merch_long)
        SELECT DISTINCT ON (merchant) merchant, merch_lat, merch_long FROM stg_transaction ORDER BY merchant, event_time
        ON CONFLICT DO NOTHING""",
    ),
    (
        "fact_transaction",
        """
    INSERT INTO fact_transaction
        (trans_num, event_time, card_token, merchant, category, amount, merch_lat, merch_long, batch_id)
        SELECT trans_num, event_time, card_token, merchant, category, amt, merch_lat, merch_long, batch_id
        FROM stg_transaction
        ON CONFLICT (trans_num, event_time) DO NOTHING""",
    ),
    (
        "transaction_features",
        """
    INSERT INTO transaction_features (trans_num, feature_version, values, event_day)
        SELECT trans_num, %(feature_version)s, ARRAY[{features}], {day} FROM stg_transaction
        ON CONFLICT (trans_num, feature_version, event_day) DO UPDATE SET values = EXCLUDED.values""".format(
            features=", ".join(_FEATURE_COLUMNS), day=utc_day("event_time")
        ),
    ),
    (
        "transaction_label",
        f"""
    INSERT INTO transaction_label (trans_num, is_fraud, labelled_at, source)
        SELECT DISTINCT ON (trans_num) trans_num, is_fraud, labelled_at, 'file'
        FROM stg_label ORDER BY trans_num, labelled_at DESC
        ON CONFLICT (trans_num) DO UPDATE SET is_fraud = EXCLUDED.is_fraud, labelled_at = EXCLUDED.labelled_at,
            source = EXCLUDED.source, actor = NULL
        WHERE {REPLACES}""",
    ),
    (
        "batch_load",
        """
    INSERT INTO batch_load (batch_id, source_key, rows_in, rows_loaded, rows_quarantined, duplicates_dropped)
        SELECT * FROM stg_batch
        ON CONFLICT (batch_id) DO UPDATE SET source_key = EXCLUDED.source_key, rows_in = EXCLUDED.rows_in,
            rows_loaded = EXCLUDED.rows_loaded, rows_quarantined = EXCLUDED.rows_quarantined,
            duplicates_dropped = EXCLUDED.duplicates_dropped, loaded_at = now()""",
    ),
)


# Run once per load, before the batch's rows are written, in the same transaction as them.
# A batch whose staged rows are not the rows its accounting says it loaded is refused.
_UNACCOUNTED = """
SELECT b.batch_id, b.rows_loaded, count(s.batch_id) AS staged
FROM stg_batch b LEFT JOIN stg_transaction s USING (batch_id)
GROUP BY b.batch_id, b.rows_loaded HAVING b.rows_loaded <> count(s.batch_id)"""
# A trans_num held by another transaction (another time, so maybe another day's partition) is a duplicate: the row
# is not loaded, as the key it would break says (the earlier one stays). The same trans_num and time is the same
# transaction: a rerun, skipped by the INSERTs' ON CONFLICT.
_DUPLICATES = """
DELETE FROM stg_transaction s USING transaction_key k
WHERE k.trans_num = s.trans_num AND k.event_time <> s.event_time"""
_DAYS = f"SELECT fraud_ensure_day_partitions(ARRAY(SELECT DISTINCT {utc_day('event_time')} FROM stg_transaction))"


Frame = pd.DataFrame | pa.Table


def _arrow(frame: Frame) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False)


def _staging_transactions(transactions: Frame) -> pa.Table:
    """The processed rows with the feature vector spread over one column per feature, timestamps in UTC."""
    if isinstance(transactions, pd.DataFrame):
        transactions = transactions.assign(event_time=pd.to_datetime(transactions["event_time"], utc=True))
    table = _arrow(transactions)
    width = len(_FEATURE_COLUMNS)
    matrix = pc.list_flatten(table["features"]).to_numpy(zero_copy_only=False).reshape(-1, width)
    if len(matrix) != table.num_rows:
        raise ValueError(f"every transaction needs exactly {width} feature values")
    columns = {name: table[name] for name in PROCESSED_COLUMNS if name != "features"}
    columns["event_time"] = pc.cast(table["event_time"], pa.timestamp("us", tz="UTC"))
    columns.update({name: matrix[:, i] for i, name in enumerate(_FEATURE_COLUMNS)})
    return pa.table(columns)


def _copy(cursor, table: str, data: pa.Table) -> None:
    if data.num_rows == 0:
        return
    buffer = io.BytesIO()
    # "needed" quoting: NULL is an unquoted empty field, an empty string is "" (PostgreSQL's CSV convention)
    pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    with cursor.copy(f"COPY {table} ({', '.join(data.column_names)}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())


COUNTED = ("fact_transaction", "dim_card", "dim_merchant")  # inserted with DO NOTHING: rowcount = new rows
DIMENSIONS = ("dim_category", "dim_card", "dim_merchant")  # committed before the batch's own rows


def load_processed(
    engine: Engine, transactions: Frame | Iterable[Frame], labels: Frame, accounting: list[BatchAccounting]
) -> dict[str, int]:
    """Load batches atomically. `transactions` has PROCESSED_COLUMNS (pandas, or Arrow straight from Spark):
    one frame, or an iterable of chunks that are COPY'd one after the other into the same staging table (a
    batch bigger than the loader's memory still loads whole or not at all). The dimension rows the batches bring
    commit first; their facts, features, labels and accounting then commit in one transaction.
    Returns how many new rows the fact and dimension tables gained (counted from the INSERTs themselves:
    counting whole tables before and after would grow with the table)."""
    chunks = [transactions] if isinstance(transactions, (pd.DataFrame, pa.Table)) else transactions
    batches = pd.DataFrame(
        [asdict(item) for item in accounting],
        columns=["batch_id", "source_key", "rows_in", "rows_loaded", "rows_quarantined", "duplicates_dropped"],
    )
    gained = dict.fromkeys(COUNTED, 0)

    def merge(cursor, dimensions: bool) -> None:
        for table, statement in _MERGE:
            if (table in DIMENSIONS) == dimensions:
                cursor.execute(statement, {"feature_version": FEATURE_VERSION} if "%(" in statement else None)
                if table in gained:
                    gained[table] += cursor.rowcount  # rows inserted: ON CONFLICT DO NOTHING skips the rest

    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        try:
            with raw.cursor() as cursor:
                cursor.execute(_STAGING_DDL)  # session temp tables: they outlive the first commit
                for chunk in chunks:
                    if len(chunk):
                        _copy(cursor, "stg_transaction", _staging_transactions(chunk))
                if len(labels):
                    _copy(cursor, "stg_label", _arrow(labels).select(list(LABEL_COLUMNS)))
                _copy(cursor, "stg_batch", _arrow(batches))
                # new dimension rows (cards, merchants, categories) commit first, on their own: a batch loading at
                # the same time that meets one of them waits for this short transaction, not for the whole batch
                merge(cursor, dimensions=True)
                cursor.execute(_DAYS)  # the partitions of the batch's days, before the batch needs them
                raw.commit()
                cursor.execute(_UNACCOUNTED)
                if unaccounted := cursor.fetchall():
                    raise ValueError(
                        f"batches whose rows are not what they account for (id, rows loaded, rows given): {unaccounted}"
                    )
                cursor.execute(_DUPLICATES)
                merge(cursor, dimensions=False)
                cursor.execute(_DROP_STAGING)
                raw.commit()  # the batch's facts, features, labels and accounting: all of them or none
                # the real-time read's table forgets what it no longer needs (a day at a time, in its own
                # transaction: a crash here leaves the batch loaded and the next load trims)
                trim_recent(cursor)
                raw.commit()
        except BaseException:
            connection.invalidate()  # closed, not pooled: its transaction and temp tables go with it
            raise
    return gained
