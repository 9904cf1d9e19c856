"""recent_transaction: the last days of loaded transactions, unpartitioned, for the real-time read

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

The real-time read (fraud/features/online.py) looks up one card's and one merchant's transactions of the label
lookback (60 days) on every request. On the day partitions of 0009 its prepared (generic) plan holds every
partition of fact_transaction: PostgreSQL locks all of them before runtime pruning drops those out of the window,
so the read's cost grew with the days kept (measured on one connection: 74 locks and p50 0.67 ms at 20 days,
190 locks and 1.7-2.3 ms at 58 days, against 18 locks and 0.5-1.0 ms on one unpartitioned table of the same rows).
The read needs few columns and a bounded window, so it gets a table of its own:

- `recent_transaction` holds every transaction of fact_transaction with `event_time >= recent_horizon.since`:
  fact_transaction's statement triggers below write it in the same statement as the fact rows (inserts, updates,
  deletes and truncation alike), so it is never behind the facts, whoever writes them;
- `fraud_trim_recent(keep)` (SECURITY DEFINER: no component role deletes rows) moves the horizon up to the newest
  transaction's day (not counting any dated after now) minus `keep` and deletes what fell below; the load calls it
  after each batch (fraud/db/recent.py says how much is kept). It trims at most once a day: the horizon moves in
  whole days;
- the reader checks the horizon in the same read (`complete`) and, for a window that reaches below it (a request
  far older than the newest loaded day), reads fact_transaction instead: slower, never wrong.

Keys: (card_token, event_time, trans_num) is the primary key (the card side of the read, and the trigger's
deletes) and (merchant, event_time) the merchant side. fact_transaction keeps its own indexes: the review app and
the replay read it by card and by time.
"""

from alembic import op

from fraud.db.roles import apply_grants

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLUMNS = "trans_num, event_time, card_token, merchant, category, amount"

# the fact rows a statement wrote go in (those at or above the horizon), those it removed go out
_SYNC = f"""
CREATE FUNCTION recent_transaction_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM recent_transaction) THEN  -- unless the same command truncated it
            TRUNCATE recent_transaction;
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM recent_transaction r USING old_rows o
        WHERE r.card_token = o.card_token AND r.event_time = o.event_time AND r.trans_num = o.trans_num;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO recent_transaction ({_COLUMNS})
        SELECT {_COLUMNS} FROM new_rows WHERE event_time >= (SELECT since FROM recent_horizon);
    END IF;
    RETURN NULL;
END $$"""

_TRIM = """
CREATE FUNCTION fraud_trim_recent(keep interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    newest timestamptz;
    cut timestamptz;
    removed bigint;
BEGIN
    -- the newest transaction up to now: one row dated years ahead (validation admits up to 2100) must not empty
    -- the table
    SELECT max(event_time) INTO newest FROM fact_transaction WHERE event_time <= now();
    IF newest IS NULL THEN
        RETURN 0;
    END IF;
    cut := date_trunc('day', newest - keep, 'UTC');
    -- the horizon first: a concurrent trim waits on its row, then finds nothing to do
    UPDATE recent_horizon SET since = cut WHERE since < cut;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    DELETE FROM recent_transaction WHERE event_time < cut;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END $$"""

_TRIGGERS = (
    ("fact_transaction_recent_inserted", "AFTER INSERT", "REFERENCING NEW TABLE AS new_rows"),
    ("fact_transaction_recent_updated", "AFTER UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("fact_transaction_recent_deleted", "AFTER DELETE", "REFERENCING OLD TABLE AS old_rows"),
    ("fact_transaction_recent_truncated", "AFTER TRUNCATE", ""),
)


def upgrade() -> None:
    op.execute("""
        CREATE TABLE recent_transaction (
            trans_num varchar(64) NOT NULL, event_time timestamptz NOT NULL, card_token varchar(64) NOT NULL,
            merchant text NOT NULL, category varchar(50), amount numeric(12,2) NOT NULL,
            CONSTRAINT recent_transaction_pkey PRIMARY KEY (card_token, event_time, trans_num)
        )""")
    op.execute(
        "CREATE TABLE recent_horizon (one boolean PRIMARY KEY DEFAULT true CHECK (one), since timestamptz NOT NULL)"
    )
    op.execute("COMMENT ON COLUMN recent_horizon.since IS 'recent_transaction holds every transaction from here on'")
    op.execute("INSERT INTO recent_horizon (since) VALUES ('-infinity')")
    # every existing transaction: the first load's trim cuts what is older than the read needs
    op.execute(f"INSERT INTO recent_transaction ({_COLUMNS}) SELECT {_COLUMNS} FROM fact_transaction")
    op.execute("CREATE INDEX ix_recent_transaction_merchant_event_time ON recent_transaction (merchant, event_time)")
    op.execute(_SYNC)
    for name, event, referencing in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} {event} ON fact_transaction {referencing} "
            "FOR EACH STATEMENT EXECUTE FUNCTION recent_transaction_sync()"
        )
    op.execute(_TRIM)
    op.execute("REVOKE ALL ON FUNCTION fraud_trim_recent(interval) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION fraud_trim_recent(interval) TO fraud_writer")
    op.execute("ANALYZE recent_transaction")
    apply_grants(op.get_bind())


def downgrade() -> None:
    op.execute("DROP FUNCTION fraud_trim_recent(interval)")
    for name, _, _ in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON fact_transaction")
    op.execute("DROP FUNCTION recent_transaction_sync()")
    op.execute("DROP TABLE recent_transaction, recent_horizon")
