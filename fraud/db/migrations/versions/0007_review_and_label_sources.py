"""analyst review and customer answers: label sources, verdict history, users

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Labels now come from three sources (fraud/db/labels.py): `file` (chargebacks and the label files the ETL loads),
`analyst` (a verdict in the review app) and `customer` (an answer to an alert email's "was this you?" link).
`transaction_label` keeps the one label that counts for a transaction, with its source and who gave it; every
verdict people give is kept in `label_event` (append-only: a trigger refuses UPDATE and DELETE), including the ones
that no longer count and the `unsure` ones that never become a label. `app_user` holds the review app's users
(passwords hashed with argon2), `customer_answer` the one answer an alert's link may give.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SOURCES = "('file', 'analyst', 'customer')"


def upgrade() -> None:
    op.add_column(
        "transaction_label",
        sa.Column("source", sa.String(16), nullable=False, server_default="file", comment="file, analyst or customer"),
    )
    op.add_column("transaction_label", sa.Column("actor", sa.Text, comment="the analyst, or the alert answered"))
    op.create_check_constraint("ck_transaction_label_source", "transaction_label", f"source IN {SOURCES}")

    op.create_table(
        "label_event",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("trans_num", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False, comment="fraud, genuine or unsure"),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, comment="when the platform learnt it"),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("verdict IN ('fraud', 'genuine', 'unsure')", name="ck_label_event_verdict"),
        sa.CheckConstraint(f"source IN {SOURCES}", name="ck_label_event_source"),
    )
    op.create_index("ix_label_event_trans_num", "label_event", ["trans_num"])
    op.execute("""
        CREATE FUNCTION label_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'label_event is append-only: % refused', TG_OP;
        END $$""")
    op.execute("""
        CREATE TRIGGER label_event_append_only BEFORE UPDATE OR DELETE ON label_event
        FOR EACH STATEMENT EXECUTE FUNCTION label_event_append_only()""")

    op.create_table(
        "app_user",
        sa.Column("username", sa.Text, primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False, comment="argon2id"),
        sa.Column("role", sa.String(8), nullable=False, comment="analyst or admin"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("role IN ('analyst', 'admin')", name="ck_app_user_role"),
    )
    op.create_table(
        "customer_answer",
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("customer_alert.id"), primary_key=True),
        sa.Column("answer", sa.String(8), nullable=False, comment="me or not_me"),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("answer IN ('me', 'not_me')", name="ck_customer_answer_answer"),
    )


def downgrade() -> None:
    op.drop_table("customer_answer")
    op.drop_table("app_user")
    op.execute("DROP TRIGGER label_event_append_only ON label_event")
    op.execute("DROP FUNCTION label_event_append_only()")
    op.drop_table("label_event")
    op.drop_constraint("ck_transaction_label_source", "transaction_label")
    op.drop_column("transaction_label", "actor")
    op.drop_column("transaction_label", "source")
