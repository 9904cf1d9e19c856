"""fraud_score's reference to fact_transaction checked once per statement

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

A foreign key checks each inserted row on its own: one lookup and one row lock (FOR KEY SHARE) on the
referenced row, which writes that row's heap page and a WAL record. The batch scorer writes its scores by the
hundred thousand, and the key was more than a quarter of writing them. The reference is now the same rule
checked per statement over its transition table: one probe of fact_transaction's primary key per row, no row
locks. Measured on the 2-core machine: 100,000 scores COPY'd in pages of 5,000, 2.5-2.9 s with the key against
1.2-1.5 s (1.0-1.1 s with no check at all); the whole batch scoring run, alternating the two schemas on one
database, 3.97-4.12 s against 3.07-3.73 s (before the checks' plan was pinned, below).

The ETL's references (a fact's card, merchant and category; the features' transaction) were given the same
checks and measured: the one-million-row ETL's load took 100.6 s against 96.9 s with the foreign keys, and
200,000 rows loaded on one connection 23.3-24.4 s (one run 62.5 s) against 24.6-32.8 s. No gain worth a
trigger in place of a foreign key, so they keep their foreign keys; REFERENCES lists what the checks cover.

What the foreign key guaranteed still holds, for each reference in REFERENCES:
- an INSERT or UPDATE naming a key that does not exist fails (SQLSTATE 23503, foreign_key_violation, as before;
  NULL references nothing, as with a foreign key);
- a DELETE or UPDATE of the referenced table that removes a key still referenced fails (23503), and so does a
  TRUNCATE that leaves referencing rows behind (truncate both in one command);
- concurrent writers: a statement that removes keys first takes a SHARE lock on each referencing table, so it
  waits for transactions writing there and they wait for it; under READ COMMITTED (the default) the check that
  runs after the wait sees what the other committed. Under REPEATABLE READ a check cannot see a concurrent
  commit; nothing in this system deletes these rows, so that gap is documented, not closed.
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# (referencing table, column, referenced table, column, the foreign key it replaces)
REFERENCES = (
    ("fraud_score", "trans_num", "fact_transaction", "trans_num", "fraud_score_trans_num_fkey"),
)

# Each check probes the other table's index once per row of the statement, as a foreign key's lookup does: the
# SET clauses (in force only while the function runs) leave the planner no other plan. Left to itself, it
# planned a nested loop over a sequential scan when the referenced table's statistics said it was empty (a
# truncated or freshly loaded table): the check of a 200,000-row feature load (tried, see above) had not
# finished after 30 minutes.
# TG_ARGV: referencing column, referenced table, referenced column
_REFERENCES_EXIST = """
CREATE FUNCTION references_exist() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    missing text;
BEGIN
    EXECUTE format('SELECT n.%1$I::text FROM new_rows n WHERE n.%1$I IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM %2$I p WHERE p.%3$I = n.%1$I) LIMIT 1',
                   TG_ARGV[0], TG_ARGV[1], TG_ARGV[2]) INTO missing;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" violates its reference to %', TG_TABLE_NAME, TG_ARGV[1]
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is not present in table "%s".', TG_ARGV[0], missing, TG_ARGV[1]);
    END IF;
    RETURN NULL;
END $$"""

# TG_ARGV: referenced column, referencing table, referencing column
_REFERENCES_KEPT = """
CREATE FUNCTION references_kept() RETURNS trigger LANGUAGE plpgsql
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    removed boolean;
    referenced text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- every key is gone: any referencing row is left behind
        EXECUTE format('SELECT c.%1$I::text FROM %2$I c WHERE c.%1$I IS NOT NULL LIMIT 1', TG_ARGV[2], TG_ARGV[1])
            INTO referenced;
    ELSE
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM %1$I p WHERE p.%2$I = o.%2$I))',
                       TG_TABLE_NAME, TG_ARGV[0]) INTO removed;
        IF removed THEN
            -- wait for writers of the referencing table in flight; hold off new ones until this commits
            EXECUTE format('LOCK TABLE %I IN SHARE MODE', TG_ARGV[1]);
            EXECUTE format('SELECT o.%1$I::text FROM old_rows o
                            WHERE EXISTS (SELECT 1 FROM %2$I c WHERE c.%3$I = o.%1$I)
                              AND NOT EXISTS (SELECT 1 FROM %4$I p WHERE p.%1$I = o.%1$I) LIMIT 1',
                           TG_ARGV[0], TG_ARGV[1], TG_ARGV[2], TG_TABLE_NAME) INTO referenced;
        END IF;
    END IF;
    IF referenced IS NOT NULL THEN
        RAISE EXCEPTION '% on table "%" violates the reference from %', lower(TG_OP), TG_TABLE_NAME, TG_ARGV[1]
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (%s)=(%s) is still referenced from table "%s".', TG_ARGV[0], referenced, TG_ARGV[1]);
    END IF;
    RETURN NULL;
END $$"""


def _triggers(child: str, column: str, parent: str, parent_column: str) -> list[tuple[str, str, str]]:
    """(trigger name, table, the rest of its CREATE TRIGGER) for one reference: the checks on both sides."""
    name = f"{child}_{column}_ref"
    new = f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION references_exist('{column}', '{parent}', '{parent_column}')"
    kept = f"FOR EACH STATEMENT EXECUTE FUNCTION references_kept('{parent_column}', '{child}', '{column}')"
    return [(f"{name}_inserted", child, f"AFTER INSERT ON {child} {new}"),
            (f"{name}_updated", child, f"AFTER UPDATE ON {child} {new}"),
            (f"{name}_deleted", parent, f"AFTER DELETE ON {parent} REFERENCING OLD TABLE AS old_rows {kept}"),
            (f"{name}_renamed", parent, f"AFTER UPDATE ON {parent} REFERENCING OLD TABLE AS old_rows {kept}"),
            (f"{name}_truncated", parent, f"AFTER TRUNCATE ON {parent} {kept}")]  # no transition table for TRUNCATE


def upgrade() -> None:
    op.execute(_REFERENCES_EXIST)
    op.execute(_REFERENCES_KEPT)
    for child, column, parent, parent_column, key in REFERENCES:
        op.drop_constraint(key, child, type_='foreignkey')
        for name, _, definition in _triggers(child, column, parent, parent_column):
            op.execute(f"CREATE TRIGGER {name} {definition}")


def downgrade() -> None:
    for child, column, parent, parent_column, key in REFERENCES:
        for name, table, _ in _triggers(child, column, parent, parent_column):
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.create_foreign_key(key, child, parent, [column], [parent_column])
    op.execute("DROP FUNCTION references_kept()")
    op.execute("DROP FUNCTION references_exist()")
