"""The platform's PostgreSQL roles and what each may do: the one grant table, applied by the migrations.

Each component connects as its own role (`fraud.db.engine.get_engine(settings, role=...)`); the owner of the schema
is whoever runs the migrations (the embedded server's superuser locally, the RDS master user in AWS) and no component
role may create, alter or drop anything. Privileges are table-level and least: a role gets what its component's
statements need (a `SELECT … FOR UPDATE` needs UPDATE too), and the sequences behind the tables it inserts into.

A migration that adds a table names it in `GRANTS` and calls `apply_grants(op.get_bind())` at its end (0008 does
for every table before it); `tests/db/test_roles.py` fails while a table of the schema is missing from `GRANTS`.
Partitions need no entry: queries reach them through their parent, whose grants apply.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Connection, text


class DbRole(StrEnum):
    OWNER = "owner"  # not a role name: whoever runs the migrations (the URL's or the master secret's user)
    WRITER = "fraud_writer"  # the ETL's load and the Dagster assets: batch scores, alerts, label loads, lists CLI
    REALTIME = "fraud_realtime"  # the real-time path: reads what a decision needs, records the decision
    REPORTING = "fraud_reporting"  # read-only: the report, `fraud decisions`, backtests
    REVIEW = "fraud_review"  # the review app and `fraud users`: cases, verdicts, labels, users, answers


COMPONENT_ROLES = (DbRole.WRITER, DbRole.REALTIME, DbRole.REPORTING, DbRole.REVIEW)

S, INS, U = "SELECT", "INSERT", "UPDATE"
W, RT, REP, REV = COMPONENT_ROLES

# table → role → privileges. No role may DELETE or TRUNCATE anything (nothing in the platform deletes rows).
GRANTS: dict[str, dict[DbRole, tuple[str, ...]]] = {
    "alembic_version": {W: (S,), RT: (S,), REP: (S,), REV: (S,)},  # components check the schema is at head
    "dim_card": {W: (S, INS), RT: (S,), REP: (S,), REV: (S,)},
    "dim_merchant": {W: (S, INS), RT: (S,), REP: (S,), REV: (S,)},
    "dim_category": {W: (S, INS), REP: (S,), REV: (S,)},
    "fact_transaction": {W: (S, INS), RT: (S,), REP: (S,), REV: (S,)},
    # 0009: written by fact_transaction's trigger, as the writer; real time reads whether a trans_num was loaded
    "transaction_key": {W: (S, INS), RT: (S,), REP: (S,)},
    # 0011: written by fact_transaction's triggers, as the writer (trimmed by a function of the owner's)
    "recent_transaction": {W: (S, INS), RT: (S,)},
    "recent_horizon": {W: (S,), RT: (S,)},
    "transaction_features": {W: (S, INS, U), RT: (S,), REP: (S,), REV: (S,)},
    "transaction_label": {W: (S, INS, U), RT: (S,), REP: (S,), REV: (S, INS, U)},
    "fraud_score": {W: (S, INS), REP: (S,), REV: (S,)},
    "realtime_decision": {W: (S,), RT: (S, INS), REP: (S,), REV: (S,)},
    "customer_alert": {W: (S, INS, U), REP: (S,), REV: (S,)},  # U: claiming an alert locks it FOR UPDATE
    "customer_alert_transaction": {W: (S, INS), REP: (S,), REV: (S,)},
    "batch_load": {W: (S, INS, U), REP: (S,), REV: (S,)},
    "list_entry": {W: (S, INS, U), RT: (S,), REP: (S,), REV: (S,)},  # W: `fraud lists`
    "list_audit": {W: (S, INS), REP: (S,)},
    "label_event": {W: (S,), REP: (S,), REV: (S, INS)},
    "app_user": {REV: (S, INS, U)},  # password hashes: the review app's alone
    "customer_answer": {W: (S,), REP: (S,), REV: (S, INS)},
}


def create_roles(connection: Connection) -> None:
    """Create the component roles where missing (roles are cluster-wide: another database of the server, or the
    stack, may have made them) and make sure they may log in; in RDS they log in with IAM tokens (rds_iam)."""
    rds_iam = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam'")).scalar() is not None
    for role in COMPONENT_ROLES:
        # a DO block: CREATE ROLE has no IF NOT EXISTS, and two databases migrating at once may race for the name
        connection.execute(
            text(f"""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} LOGIN;
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$""")
        )
        # LOGIN only: RDS's master user is no superuser and may not name SUPERUSER or BYPASSRLS at all; a new
        # role has none of them, and the test checks these roles can create nothing
        connection.execute(text(f"ALTER ROLE {role} LOGIN"))
        if rds_iam:
            connection.execute(text(f"GRANT rds_iam TO {role}"))


def _sequences(connection: Connection, table: str) -> list[str]:
    """The sequences a table's columns draw from (serial and identity columns)."""
    return list(
        connection.execute(
            text("""
            SELECT s.relname FROM pg_class s
            JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                AND d.refclassid = 'pg_class'::regclass
            JOIN pg_class t ON t.oid = d.refobjid
            WHERE s.relkind = 'S' AND t.relname = :table AND t.relnamespace = 'public'::regnamespace"""),
            {"table": table},
        ).scalars()
    )


def apply_grants(connection: Connection) -> None:
    """Make the roles' privileges on the tables that exist what `GRANTS` says (revoke, then grant: re-runnable, and
    a privilege taken out of the table is taken away). Only the owner creates in the schema."""
    connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    names = ", ".join(COMPONENT_ROLES)
    connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {names}"))
    existing = set(
        connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
    )
    for table, grants in GRANTS.items():
        if table not in existing:  # a later migration's table: that migration applies its grants
            continue
        sequences = _sequences(connection, table)
        connection.execute(text(f"REVOKE ALL ON TABLE {table} FROM {names}"))
        for sequence in sequences:
            connection.execute(text(f"REVOKE ALL ON SEQUENCE {sequence} FROM {names}"))
        for role, privileges in grants.items():
            connection.execute(text(f"GRANT {', '.join(privileges)} ON TABLE {table} TO {role}"))
            if INS in privileges:
                for sequence in sequences:
                    connection.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {role}"))


def revoke_grants(connection: Connection) -> None:
    """Take every privilege of the component roles in this database away (the roles themselves stay: they are
    cluster-wide and other databases of the server may use them)."""
    names = ", ".join(COMPONENT_ROLES)
    connection.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {names}"))
    connection.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {names}"))
    connection.execute(text(f"REVOKE ALL ON SCHEMA public FROM {names}"))
