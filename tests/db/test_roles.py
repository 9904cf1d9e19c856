"""Database roles (fraud/db/roles.py): each component's role can do what its component does and nothing it must
not, on the embedded PostgreSQL, connecting as the role for real."""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fraud.db.engine import create_database_if_missing, database_url, get_engine
from fraud.db.roles import COMPONENT_ROLES, GRANTS, DbRole

REPO = Path(__file__).resolve().parents[2]
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture(scope="module")
def roles(settings, engine):
    """The four component roles' engines on the session's database (migrated to head by `engine`)."""
    return {role: get_engine(settings, role=role) for role in COMPONENT_ROLES}


def refused(engine, sql: str, on: str | None = None) -> None:
    """`sql` fails on a privilege (42501: insufficient_privilege, also "must be owner") on the object it targets
    (`on`, else the table it names), not on some other table a trigger happens to read."""
    target = on or re.search(r"\b(?:INTO|UPDATE|FROM|TABLE|TRUNCATE)\s+(\w+)", sql).group(1)
    with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
        connection.execute(text(sql))
    assert raised.value.orig.sqlstate == "42501", raised.value
    assert re.search(rf"\b{target}\b", str(raised.value.orig)), raised.value.orig


def tables(engine) -> set[str]:
    """The schema's tables; partitions are reached through their parent (whose grants apply)."""
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("""
                SELECT c.relname FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition""")
            ).scalars()
        )


def test_each_role_connects_as_itself(roles):
    for role, role_engine in roles.items():
        with role_engine.connect() as connection:
            assert connection.execute(text("SELECT session_user")).scalar() == role.value


def test_db_role_overrides_the_components_role(settings):
    overridden = settings.model_copy(update={"db_role": DbRole.REPORTING.value})
    with get_engine(overridden, role=DbRole.WRITER).connect() as connection:
        assert connection.execute(text("SELECT session_user")).scalar() == "fraud_reporting"


def test_every_table_has_its_grants_and_they_are_applied(engine):
    """A migration that adds a table without naming it in GRANTS fails here; so does a grant not applied."""
    assert tables(engine) == set(GRANTS)
    with engine.connect() as connection:
        for table, grants in GRANTS.items():
            for role in COMPONENT_ROLES:
                held = {
                    p
                    for p in PRIVILEGES
                    if connection.execute(
                        text("SELECT has_table_privilege(:role, :table, :privilege)"),
                        {"role": role.value, "table": table, "privilege": p},
                    ).scalar()
                }
                assert held == set(grants.get(role, ())), (role, table)


def test_the_roles_log_in_and_hold_no_power_even_after_a_nologin(engine):
    """Re-running the role creation over roles someone made NOLOGIN (the stack, an operator) lets them log in
    again; no role is a superuser or may create roles or databases, bypass row security or replicate."""
    from fraud.db.roles import create_roles

    with engine.begin() as connection:
        connection.execute(text("ALTER ROLE fraud_reporting NOLOGIN"))  # rolled back if anything below fails
        create_roles(connection)
        rows = connection.execute(
            text("""
            SELECT rolname, rolcanlogin, rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication
            FROM pg_roles WHERE rolname LIKE 'fraud\\_%' AND rolname NOT LIKE 'fraud\\_probe%'""")
        ).all()
    assert sorted(rows) == sorted((role.value, True, False) for role in COMPONENT_ROLES)


def test_nobody_but_the_owner_creates_anything(roles):
    for role_engine in roles.values():
        refused(role_engine, "CREATE TABLE public.intruder (id int)", on="schema public")
        refused(role_engine, "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", on="schema public")
        refused(role_engine, "CREATE SCHEMA intruder", on="database")
        refused(role_engine, "DROP TABLE fact_transaction")
        refused(role_engine, "ALTER TABLE fraud_score ADD COLUMN intruder int")
        refused(role_engine, "TRUNCATE fact_transaction")


def test_realtime_reads_and_records_decisions_and_nothing_else(roles):
    realtime = roles[DbRole.REALTIME]
    refused(realtime, "UPDATE fact_transaction SET amount = 0")
    refused(realtime, "DELETE FROM fact_transaction")
    refused(realtime, "UPDATE realtime_decision SET outcome = 'approve'")  # the log is append-only for it
    refused(realtime, "DELETE FROM realtime_decision")
    refused(realtime, "SELECT password_hash FROM app_user")
    refused(realtime, "INSERT INTO fraud_score (trans_num) VALUES ('x')")
    refused(realtime, "INSERT INTO transaction_label (trans_num, is_fraud, labelled_at) VALUES ('x', true, now())")


def test_reporting_writes_nothing(roles, engine):
    reporting = roles[DbRole.REPORTING]
    for table in sorted(tables(engine)):
        refused(reporting, f"INSERT INTO {table} DEFAULT VALUES")
        refused(reporting, f"UPDATE {table} SET {_a_column(engine, table)} = NULL WHERE false")
        refused(reporting, f"DELETE FROM {table} WHERE false")
    refused(reporting, "SELECT password_hash FROM app_user")


def _a_column(engine, table: str) -> str:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = :t LIMIT 1"), {"t": table}
        ).scalar()


def test_writer_cannot_drop_or_read_users(roles):
    writer = roles[DbRole.WRITER]
    refused(writer, "DROP TABLE transaction_label")
    refused(writer, "SELECT username FROM app_user")
    refused(writer, "DELETE FROM fact_transaction")
    refused(writer, "UPDATE fact_transaction SET amount = 0")
    refused(writer, "INSERT INTO realtime_decision (trans_num) VALUES ('x')")


def test_review_cannot_write_transactions(roles):
    review = roles[DbRole.REVIEW]
    refused(review, "INSERT INTO fact_transaction (trans_num) VALUES ('x')")
    refused(review, "UPDATE fact_transaction SET amount = 0")
    refused(review, "DELETE FROM fact_transaction")
    refused(review, "UPDATE fraud_score SET flagged = false")
    refused(review, "DELETE FROM transaction_label")


def test_each_role_does_its_components_work(settings, roles):
    """The writer loads and scores (as the ETL and the scoring asset do), the review app lists the cases, signs a
    user in and records a verdict, reporting reads the decision log."""
    import numpy as np

    from bench.scoring import load_world
    from fraud.app.review.actions import record_case_verdict
    from fraud.db.cases import cases
    from fraud.db.decisions import recent_decisions
    from fraud.db.labels import Verdict
    from fraud.db.scores import write_scores
    from fraud.db.users import add_user, authenticate

    writer, review = roles[DbRole.WRITER], roles[DbRole.REVIEW]
    tag = uuid.uuid4().hex[:6]
    frame = load_world(writer, settings, 200, f"roles-{tag}", seed=3)
    trans_nums = list(frame["trans_num"][:5])
    write_scores(writer, f"roles-{tag}", 0.5, trans_nums, np.full(5, 0.9), np.ones(5, dtype=bool), [None] * 5)

    add_user(review, f"analyst{tag}", "a long enough password", "analyst")
    assert authenticate(review, f"analyst{tag}", "a long enough password") is not None
    [case, *_] = cases(review, f"roles-{tag}")
    recorded = record_case_verdict(review, f"roles-{tag}", case.case_id, Verdict.FRAUD, f"analyst{tag}", None)
    assert recorded.transactions >= 1
    recent_decisions(roles[DbRole.REPORTING])


def test_the_realtime_pool_connects_as_fraud_realtime(settings, engine):
    from fraud.serving.realtime import RealtimeScorer

    scorer = RealtimeScorer(settings)
    scorer._resources()
    with psycopg.connect(scorer._conninfo) as connection:
        assert connection.execute("SELECT session_user").fetchone() == ("fraud_realtime",)


@pytest.mark.parametrize("before", [None, "0007"])
def test_a_component_migrates_its_database_through_the_owner(settings, engine, before):
    """A component starting on an empty database, or on one from before the roles (where it may not even read
    alembic_version), gets the schema at head, owned by the owner, not by the component."""
    from fraud.db.migrate import current_revision, head_revision, upgrade

    url = create_database_if_missing(database_url(settings), f"roles_{uuid.uuid4().hex[:8]}")
    fresh = settings.model_copy(update={"database_url": SecretStr(url.render_as_string(hide_password=False))})
    if before is not None:
        upgrade(get_engine(fresh), before)
    review = get_engine(fresh, role=DbRole.REVIEW)
    upgrade(review)
    assert current_revision(review) == head_revision()
    with review.connect() as connection:
        owners = set(connection.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert owners == {get_engine(fresh).url.username}
        upgrade(review)  # at head: the review role checks and changes nothing


def test_every_component_names_its_role():
    """Production code never falls back to the owner silently: each get_engine call names a role."""
    unnamed = []
    for folder in ("fraud", "assets", "glue", "lambdas"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "get_engine":
                    if not any(keyword.arg == "role" for keyword in node.keywords):
                        unnamed.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert unnamed == []


def test_a_rejected_password_is_told_apart_from_a_server_that_is_down(settings, engine):
    """What makes the owner's engine re-read a rotated secret (fraud.db.engine.authentication_failed), checked
    against the server's real answers: a role whose password the embedded server checks (scram) for a while."""
    from sqlalchemy.engine import make_url

    from fraud.db.engine import authentication_failed

    probe = f"fraud_probe_{uuid.uuid4().hex[:6]}"
    hba = settings.pg_dir / "pg_hba.conf"
    trusted = hba.read_text()
    with engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {probe} LOGIN PASSWORD 'right one'"))
    hba.write_text(f"local all {probe} scram-sha-256\n{trusted}")
    _reload(engine)
    try:
        url = make_url(database_url(settings)).set(drivername="postgresql", username=probe).render_as_string()
        with pytest.raises(psycopg.OperationalError) as rejected:
            psycopg.connect(url, password="rotated away")
        assert authentication_failed(rejected.value)
        psycopg.connect(url, password="right one").close()
        with pytest.raises(psycopg.OperationalError) as down:
            psycopg.connect(url, host=str(settings.home / "nowhere"))
        assert not authentication_failed(down.value)
    finally:
        hba.write_text(trusted)
        _reload(engine)
        with engine.begin() as connection:
            connection.execute(text(f"DROP ROLE {probe}"))


def _reload(engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_reload_conf()")).scalar()
