"""fact and feature tables partitioned by day; trans_num kept unique in a key table

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

`fact_transaction` is range-partitioned by UTC day of `event_time`, `transaction_features` by `event_day` (the
transaction's UTC day, carried on the row). One partition per day (`fact_transaction_p20260101`,
`transaction_features_p20260101`), made by `fraud_ensure_day_partitions(days date[])`, and a DEFAULT partition
each. The load asks for its batch's days before it writes, so the default partitions stay empty and creating a
partition scans nothing; a writer that names a day nobody asked for (an operator, a test, a replay) still lands in
the default instead of failing, and the function moves such rows into the day's partition when it makes it. The
function runs as the migration owner (SECURITY DEFINER): component roles own no tables and create nothing.

A partitioned table's primary key must hold the partition key, so neither table can keep trans_num unique by
itself, and other tables' foreign keys cannot point at it. Instead:
- `transaction_key` (trans_num primary key, event_time): one row per transaction, the one global index on
  trans_num. A statement trigger on fact_transaction enters every new row's key (the load's as any writer's),
  so a duplicate trans_num on any day is refused by that key (23505, as before).
- references are checked once per statement over the statement's rows (as 0004 does for fraud_score), refused
  with 23503 (foreign_key_violation) as a foreign key would: a fact's card, merchant and category; a feature
  row's transaction (and its day); an alert's transaction; a score's transaction (0004's check now probes
  `transaction_key`, one index instead of one per partition). Removing a transaction that still has features,
  scores or alert rows is refused (23503), as before. A TRUNCATE of fact_transaction must take fraud_score in the
  same command (0004) and takes the keys, features and alert links with it, as the foreign keys' CASCADE did.
- `transaction_label` stays one table: a label may come before its transaction or without one (a quarantined
  row's chargeback, a verdict on any trans_num), so its day is not known when it is written.

Indexes per partition, as before, each used by a plan of the platform's queries (EXPLAINed on 40,000 rows over 20
days): (trans_num, event_time), the primary key (lookups by trans_num: the real-time read's "not settled yet",
replay's outcomes); (card_token, event_time) and (merchant, event_time) (the real-time and online history);
event_time (the platform's clock, max(event_time); replay windows); batch_id (the accounting, scoring a batch).
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from fraud.db.models import utc_day
from fraud.db.roles import apply_grants

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# the plan of a reference check: one index probe per row of the statement (see 0004 for why it is pinned)
_PINNED = "SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off"


_ENSURE = """
CREATE FUNCTION fraud_ensure_day_partitions(days date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    day date;
    made integer := 0;
    spec record;
    bounds text;
    part text;
BEGIN
    FOR day IN SELECT DISTINCT d FROM unnest(days) AS d WHERE d IS NOT NULL ORDER BY 1 LOOP
        IF to_regclass(format('fact_transaction_p%s', to_char(day, 'YYYYMMDD'))) IS NOT NULL
           AND to_regclass(format('transaction_features_p%s', to_char(day, 'YYYYMMDD'))) IS NOT NULL THEN
            CONTINUE;
        END IF;
        -- one maker at a time per day: concurrent batches of the same day wait, then find it made
        PERFORM pg_advisory_xact_lock(hashtext('fraud_ensure_day_partitions'), day - date '2000-01-01');
        FOR spec IN SELECT * FROM (VALUES
            ('fact_transaction', 'event_time',
             format('%L::timestamptz', day::text || ' 00:00+00'),
             format('%L::timestamptz', (day + 1)::text || ' 00:00+00')),
            ('transaction_features', 'event_day', format('%L::date', day), format('%L::date', day + 1))
        ) AS v(parent, key, low, high) LOOP
            IF to_regclass(format('%s_p%s', spec.parent, to_char(day, 'YYYYMMDD'))) IS NOT NULL THEN
                CONTINUE;
            END IF;
            bounds := format('%s >= %s AND %s < %s', spec.key, spec.low, spec.key, spec.high);
            part := format('%s_p%s', spec.parent, to_char(day, 'YYYYMMDD'));
            -- made beside the table and attached (a lighter lock on the parent than CREATE ... PARTITION OF);
            -- rows of the day already in the default partition move into it first
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, spec.parent);
            EXECUTE format('WITH m AS (DELETE FROM %I WHERE %s RETURNING *) INSERT INTO %I SELECT * FROM m',
                           spec.parent || '_default', bounds, part);
            EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%s)', part, part || '_day', bounds);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                           spec.parent, part, spec.low, spec.high);
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_day');  -- the bound says it now
            made := made + 1;
        END LOOP;
    END LOOP;
    RETURN made;
END $$"""

# A fact row's card, merchant and category exist; its trans_num enters transaction_key (a duplicate fails there)
_FACT_INSERTED = """
CREATE FUNCTION fact_transaction_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
    dimension text;
BEGIN
    SELECT 'card_token', n.card_token INTO dimension, missing FROM (SELECT DISTINCT card_token FROM new_rows) n
    WHERE NOT EXISTS (SELECT 1 FROM dim_card d WHERE d.card_token = n.card_token) LIMIT 1;
    IF missing IS NULL THEN
        SELECT 'merchant', n.merchant INTO dimension, missing FROM (SELECT DISTINCT merchant FROM new_rows) n
        WHERE NOT EXISTS (SELECT 1 FROM dim_merchant d WHERE d.merchant = n.merchant) LIMIT 1;
    END IF;
    IF missing IS NULL THEN
        SELECT 'category', n.category INTO dimension, missing FROM (SELECT DISTINCT category FROM new_rows) n
        WHERE n.category IS NOT NULL AND NOT EXISTS (SELECT 1 FROM dim_category d WHERE d.category = n.category)
        LIMIT 1;
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% on table "fact_transaction" violates its reference to dim_%', lower(TG_OP),
            CASE dimension WHEN 'card_token' THEN 'card' ELSE dimension END
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is not present.', dimension, missing);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM transaction_key k USING old_rows o WHERE k.trans_num = o.trans_num AND k.event_time = o.event_time;
    END IF;
    INSERT INTO transaction_key (trans_num, event_time) SELECT trans_num, event_time FROM new_rows;
    RETURN NULL;
END $$"""

# Removing transactions: nothing may still refer to them (0004's rule, now for features and alerts too), and their
# keys leave transaction_key
_FACT_REMOVED = f"""
CREATE FUNCTION fact_transaction_removed() RETURNS trigger LANGUAGE plpgsql {_PINNED} AS $$
DECLARE
    referring text;
    referenced text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- every transaction is gone: scores must go in the same command (0004's rule); the rows a foreign key's
        -- CASCADE took along before 0009 (features, alert links) and the keys go with them
        SELECT 'fraud_score', s.trans_num INTO referring, referenced FROM fraud_score s LIMIT 1;
        IF referenced IS NULL THEN
            -- each unless the same command truncated it (a table in use by this command cannot be truncated again)
            IF EXISTS (SELECT 1 FROM transaction_key) THEN
                TRUNCATE transaction_key;
            END IF;
            IF EXISTS (SELECT 1 FROM transaction_features) THEN
                TRUNCATE transaction_features;
            END IF;
            IF EXISTS (SELECT 1 FROM customer_alert_transaction) THEN
                TRUNCATE customer_alert_transaction;
            END IF;
        END IF;
    ELSE
        IF TG_OP = 'DELETE' THEN
            DELETE FROM transaction_key k USING old_rows o
            WHERE k.trans_num = o.trans_num AND k.event_time = o.event_time;
        END IF;
        IF EXISTS (SELECT 1 FROM old_rows o
                   WHERE NOT EXISTS (SELECT 1 FROM transaction_key k WHERE k.trans_num = o.trans_num)) THEN
            -- wait for writers of references in flight; hold off new ones until this commits
            LOCK TABLE fraud_score, transaction_features, customer_alert_transaction IN SHARE MODE;
            SELECT 'fraud_score', o.trans_num INTO referring, referenced FROM old_rows o
            WHERE EXISTS (SELECT 1 FROM fraud_score s WHERE s.trans_num = o.trans_num)
              AND NOT EXISTS (SELECT 1 FROM transaction_key k WHERE k.trans_num = o.trans_num) LIMIT 1;
            IF referenced IS NULL THEN
                SELECT 'transaction_features', o.trans_num INTO referring, referenced FROM old_rows o
                WHERE EXISTS (SELECT 1 FROM transaction_features f WHERE f.trans_num = o.trans_num
                                AND f.event_day = (o.event_time AT TIME ZONE 'UTC')::date)
                  AND NOT EXISTS (SELECT 1 FROM transaction_key k WHERE k.trans_num = o.trans_num
                                    AND k.event_time = o.event_time) LIMIT 1;
            END IF;
            IF referenced IS NULL THEN
                SELECT 'customer_alert_transaction', o.trans_num INTO referring, referenced FROM old_rows o
                WHERE EXISTS (SELECT 1 FROM customer_alert_transaction a WHERE a.trans_num = o.trans_num)
                  AND NOT EXISTS (SELECT 1 FROM transaction_key k WHERE k.trans_num = o.trans_num) LIMIT 1;
            END IF;
        END IF;
    END IF;
    IF referenced IS NOT NULL THEN
        RAISE EXCEPTION '% on table "fact_transaction" violates the reference from %', lower(TG_OP), referring
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (trans_num)=(%s) is still referenced from table "%s".', referenced, referring);
    END IF;
    RETURN NULL;
END $$"""


# Removing a card, merchant or category that transactions still name is refused, as the foreign keys did
# (TG_ARGV[0]: the key column, the same name in the dimension and in fact_transaction)
_DIMENSION_KEPT = """
CREATE FUNCTION dimension_rows_kept() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    key text := TG_ARGV[0];
    referenced text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- every row is gone: fact_transaction must be empty (truncated in the same command)
        EXECUTE format('SELECT t.%I::text FROM fact_transaction t LIMIT 1', key) INTO referenced;
    ELSE
        EXECUTE format('SELECT o.%1$I::text FROM old_rows o
                        WHERE NOT EXISTS (SELECT 1 FROM %2$I d WHERE d.%1$I = o.%1$I) LIMIT 1',
                       key, TG_TABLE_NAME) INTO referenced;
        IF referenced IS NOT NULL THEN  -- keys went: wait for loads in flight, then look for their transactions
            LOCK TABLE fact_transaction IN SHARE MODE;
            EXECUTE format('SELECT o.%1$I::text FROM old_rows o
                            WHERE NOT EXISTS (SELECT 1 FROM %2$I d WHERE d.%1$I = o.%1$I)
                              AND EXISTS (SELECT 1 FROM fact_transaction t WHERE t.%1$I = o.%1$I) LIMIT 1',
                           key, TG_TABLE_NAME) INTO referenced;
        END IF;
    END IF;
    IF referenced IS NOT NULL THEN
        RAISE EXCEPTION '% on table "%" violates the reference from fact_transaction', lower(TG_OP), TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is still referenced from table "fact_transaction".', key, referenced);
    END IF;
    RETURN NULL;
END $$"""
_DIMENSIONS = {"dim_card": "card_token", "dim_merchant": "merchant", "dim_category": "category"}


def _exists_check(name: str, table: str, condition: str) -> str:
    """A statement trigger function refusing rows of `table` whose transaction is not in transaction_key."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {_PINNED} AS $$
DECLARE
    missing text;
BEGIN
    SELECT n.trans_num INTO missing FROM new_rows n
    WHERE n.trans_num IS NOT NULL AND NOT EXISTS (SELECT 1 FROM transaction_key k WHERE {condition})
    LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "{table}" violates its reference to fact_transaction'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (trans_num)=(%s) is not present in table "fact_transaction".', missing);
    END IF;
    RETURN NULL;
END $$"""


_CHECKS = {
    # 0004's function, replaced: one probe of transaction_key instead of one per partition
    "fraud_score_transactions_exist": ("fraud_score", "k.trans_num = n.trans_num"),
    "transaction_features_transactions_exist": (
        "transaction_features",
        f"k.trans_num = n.trans_num AND {utc_day('k.event_time')} = n.event_day",
    ),
    "customer_alert_transaction_transactions_exist": ("customer_alert_transaction", "k.trans_num = n.trans_num"),
}

_NEW = "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION"
_OLD = "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION"
# (trigger, table, definition); 0004's triggers on fraud_score stay and call the replaced function
_TRIGGERS = (
    (
        "fact_transaction_inserted",
        "fact_transaction",
        f"AFTER INSERT ON fact_transaction {_NEW} fact_transaction_inserted()",
    ),
    (
        "fact_transaction_updated",
        "fact_transaction",
        "AFTER UPDATE ON fact_transaction REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION fact_transaction_inserted()",
    ),
    (
        "fact_transaction_deleted",
        "fact_transaction",
        f"AFTER DELETE ON fact_transaction {_OLD} fact_transaction_removed()",
    ),
    (
        "fact_transaction_updated_references",
        "fact_transaction",
        f"AFTER UPDATE ON fact_transaction {_OLD} fact_transaction_removed()",
    ),
    (
        "fact_transaction_truncated",
        "fact_transaction",
        "AFTER TRUNCATE ON fact_transaction FOR EACH STATEMENT EXECUTE FUNCTION fact_transaction_removed()",
    ),
    *(
        (
            f"{table}_{verb}_kept",
            table,
            f"AFTER {operation} ON {table} "
            + ("" if operation == "TRUNCATE" else "REFERENCING OLD TABLE AS old_rows ")
            + f"FOR EACH STATEMENT EXECUTE FUNCTION dimension_rows_kept('{key}')",
        )
        for table, key in _DIMENSIONS.items()
        for verb, operation in (("deleted", "DELETE"), ("updated", "UPDATE"), ("truncated", "TRUNCATE"))
    ),
    *(
        (f"{table}_{verb}_reference", table, f"AFTER {operation} ON {table} {_NEW} {function}()")
        for function, (table, _) in _CHECKS.items()
        if table != "fraud_score"  # 0004's triggers stay and call the replaced function
        for verb, operation in (("inserted", "INSERT"), ("updated", "UPDATE"))
    ),
)
# 0004's triggers on fact_transaction, replaced by the ones above
_0004_FACT_TRIGGERS = (
    "fact_transaction_deleted_scores",
    "fact_transaction_updated_scores",
    "fact_transaction_truncated_scores",
)

_FACT_COLUMNS = "trans_num, event_time, card_token, merchant, category, amount, merch_lat, merch_long, batch_id"
_FACT_INDEXES = (
    ("ix_fact_transaction_batch_id", "batch_id"),
    ("ix_fact_transaction_event_time", "event_time"),
    ("ix_fact_transaction_card_token_event_time", "card_token, event_time"),
    ("ix_fact_transaction_merchant_event_time", "merchant, event_time"),
)


def upgrade() -> None:
    op.drop_constraint("customer_alert_transaction_trans_num_fkey", "customer_alert_transaction", type_="foreignkey")
    for name in _0004_FACT_TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON fact_transaction")
    op.execute("DROP FUNCTION fact_transaction_scores_kept()")
    op.execute("ALTER TABLE transaction_features RENAME TO transaction_features_0008")
    op.execute("ALTER TABLE fact_transaction RENAME TO fact_transaction_0008")

    op.create_table(
        "transaction_key",
        sa.Column("trans_num", sa.String(64), primary_key=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("""
        CREATE TABLE fact_transaction (
            trans_num varchar(64) NOT NULL, event_time timestamptz NOT NULL, card_token varchar(64) NOT NULL,
            merchant text NOT NULL, category varchar(50), amount numeric(12,2) NOT NULL, merch_lat float8,
            merch_long float8, batch_id text NOT NULL
        ) PARTITION BY RANGE (event_time)""")
    op.execute("""
        CREATE TABLE transaction_features (
            trans_num varchar(64) NOT NULL, feature_version varchar(16) NOT NULL, "values" float8[] NOT NULL,
            event_day date NOT NULL
        ) PARTITION BY RANGE (event_day)""")
    op.execute(
        "COMMENT ON COLUMN transaction_features.values IS 'in the order of fraud.features.catalog for the version'"
    )
    op.execute("COMMENT ON COLUMN transaction_features.event_day IS 'the transaction''s UTC day: the partition key'")
    for table in ("fact_transaction", "transaction_features"):
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    op.execute(_ENSURE)
    op.execute("REVOKE ALL ON FUNCTION fraud_ensure_day_partitions(date[]) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION fraud_ensure_day_partitions(date[]) TO fraud_writer")

    # the existing rows, each in its day's partition; indexes are built once the rows are in
    days = utc_day("event_time")
    op.execute(f"SELECT fraud_ensure_day_partitions(ARRAY(SELECT DISTINCT {days} FROM fact_transaction_0008))")
    op.execute(f"INSERT INTO fact_transaction ({_FACT_COLUMNS}) SELECT {_FACT_COLUMNS} FROM fact_transaction_0008")
    op.execute(
        "INSERT INTO transaction_key (trans_num, event_time) SELECT trans_num, event_time FROM fact_transaction_0008"
    )
    op.execute(f"""
        INSERT INTO transaction_features (trans_num, feature_version, "values", event_day)
        SELECT f.trans_num, f.feature_version, f."values", {utc_day("t.event_time")}
        FROM transaction_features_0008 f JOIN fact_transaction_0008 t USING (trans_num)""")
    op.execute("DROP TABLE transaction_features_0008")
    op.execute("DROP TABLE fact_transaction_0008")
    op.execute("ALTER TABLE fact_transaction ADD CONSTRAINT fact_transaction_pkey PRIMARY KEY (trans_num, event_time)")
    for name, columns in _FACT_INDEXES:
        op.execute(f"CREATE INDEX {name} ON fact_transaction ({columns})")
    op.execute(
        "ALTER TABLE transaction_features ADD CONSTRAINT transaction_features_pkey "
        "PRIMARY KEY (trans_num, feature_version, event_day)"
    )

    op.execute(_FACT_INSERTED)
    op.execute(_FACT_REMOVED)
    op.execute(_DIMENSION_KEPT)
    for name, (table, condition) in _CHECKS.items():
        op.execute(_exists_check(name, table, condition))
    for name, _, definition in _TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {definition}")
    apply_grants(op.get_bind())


def _revision_0004():
    """0004's module (its file name is not an importable name): its reference checks come back on downgrade."""
    path = Path(__file__).with_name("0004_reference_checks.py")
    spec = importlib.util.spec_from_file_location("revision_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    for name, table, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for name in ("fact_transaction_inserted", "fact_transaction_removed", "dimension_rows_kept", *list(_CHECKS)[1:]):
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP FUNCTION fraud_ensure_day_partitions(date[])")
    for table in ("fact_transaction", "transaction_features"):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_0009")
    for name, _ in _FACT_INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.create_table(
        "fact_transaction",
        sa.Column("trans_num", sa.String(64), primary_key=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_token", sa.String(64), sa.ForeignKey("dim_card.card_token"), nullable=False),
        sa.Column("merchant", sa.Text, sa.ForeignKey("dim_merchant.merchant"), nullable=False),
        sa.Column("category", sa.String(50), sa.ForeignKey("dim_category.category")),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("merch_lat", sa.Float),
        sa.Column("merch_long", sa.Float),
        sa.Column("batch_id", sa.Text, nullable=False),
    )
    op.execute(f"INSERT INTO fact_transaction SELECT {_FACT_COLUMNS} FROM fact_transaction_0009")
    for name, columns in _FACT_INDEXES:
        op.execute(f"CREATE INDEX {name} ON fact_transaction ({columns})")
    op.create_table(
        "transaction_features",
        sa.Column("trans_num", sa.String(64), sa.ForeignKey("fact_transaction.trans_num"), primary_key=True),
        sa.Column("feature_version", sa.String(16), primary_key=True),
        sa.Column(
            "values",
            sa.ARRAY(sa.Float),
            nullable=False,
            comment="in the order of fraud.features.catalog for the version",
        ),
    )
    op.execute(
        'INSERT INTO transaction_features SELECT trans_num, feature_version, "values" FROM transaction_features_0009'
    )
    op.execute("DROP TABLE transaction_features_0009, fact_transaction_0009, transaction_key")
    op.create_foreign_key(
        "customer_alert_transaction_trans_num_fkey",
        "customer_alert_transaction",
        "fact_transaction",
        ["trans_num"],
        ["trans_num"],
    )
    revision_0004 = _revision_0004()
    op.execute(revision_0004._TRANSACTIONS_EXIST.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(revision_0004._SCORES_KEPT)
    for name, table, definition in revision_0004._TRIGGERS:
        if table == "fact_transaction":
            op.execute(f"CREATE TRIGGER {name} {definition}")
    apply_grants(op.get_bind())
