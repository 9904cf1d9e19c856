"""decisions beside scores; block and allow lists

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Every score, batch (`fraud_score`) or real time (`realtime_decision`), now carries the decision made with it
(fraud/rules/): the outcome (approve, review, block), what decided it (a rule id, or a list entry such as
`block-list#12`), every rule that fired, and the rule set's version. Scores written before this revision get the
outcome the model's threshold gave them then (`review` when flagged) and the rule set version `none`.

`list_entry` holds the block and allow lists (fraud/db/lists.py): one row per entry, never deleted: removing an
entry stamps `removed_at`/`removed_by`, and an entry past `expires_at` no longer applies. `list_audit` is the
trail of every add and remove, append-only (a trigger refuses UPDATE and DELETE).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DECIDED = ("fraud_score", "realtime_decision")


def upgrade() -> None:
    for table in _DECIDED:
        op.add_column(table, sa.Column("outcome", sa.String(8), comment="approve, review or block"))
        op.add_column(table, sa.Column("decided_by", sa.Text, comment="the deciding rule id or list entry"))
        op.add_column(
            table,
            sa.Column("rules_fired", postgresql.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
        )
        op.add_column(table, sa.Column("ruleset_version", sa.Text))
        op.execute(
            f"UPDATE {table} SET outcome = CASE WHEN flagged THEN 'review' ELSE 'approve' END, ruleset_version = 'none'"
        )
        op.alter_column(table, "outcome", nullable=False)
        op.alter_column(table, "ruleset_version", nullable=False)
        op.create_check_constraint(f"ck_{table}_outcome", table, "outcome IN ('approve', 'review', 'block')")
    # the customer alerts and the review queue read the decisions that are not approvals: a small part
    op.create_index(
        "ix_fraud_score_actionable", "fraud_score", ["trans_num"], postgresql_where=sa.text("outcome <> 'approve'")
    )

    op.create_table(
        "list_entry",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False, comment="block or allow"),
        sa.Column("entity", sa.String(16), nullable=False, comment="card, merchant or category"),
        sa.Column("value", sa.Text, nullable=False, comment="card token (never a card number), merchant, category"),
        sa.Column("last4", sa.String(4), comment="last four digits of the card, for people reading"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("removed_at", sa.DateTime(timezone=True)),
        sa.Column("removed_by", sa.Text),
        sa.CheckConstraint("kind IN ('block', 'allow')", name="ck_list_entry_kind"),
        sa.CheckConstraint("entity IN ('card', 'merchant', 'category')", name="ck_list_entry_entity"),
        sa.CheckConstraint("expires_at IS NULL OR expires_at > added_at", name="ck_list_entry_expiry"),
        sa.CheckConstraint("(removed_at IS NULL) = (removed_by IS NULL)", name="ck_list_entry_removal"),
    )
    # the lookup of every decision: the entries in force for a card, a merchant or a category
    op.create_index(
        "ix_list_entry_in_force", "list_entry", ["entity", "value"], postgresql_where=sa.text("removed_at IS NULL")
    )
    op.create_table(
        "list_audit",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("list_entry.id"), nullable=False),
        sa.Column("action", sa.String(8), nullable=False, comment="add or remove"),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("detail", postgresql.JSONB, nullable=False),
        sa.CheckConstraint("action IN ('add', 'remove')", name="ck_list_audit_action"),
    )
    op.create_index("ix_list_audit_entry_id", "list_audit", ["entry_id"])
    op.execute("""
        CREATE FUNCTION list_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'list_audit is append-only: % refused', TG_OP;
        END $$""")
    op.execute("""
        CREATE TRIGGER list_audit_append_only BEFORE UPDATE OR DELETE ON list_audit
        FOR EACH STATEMENT EXECUTE FUNCTION list_audit_append_only()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER list_audit_append_only ON list_audit")
    op.execute("DROP FUNCTION list_audit_append_only()")
    op.drop_table("list_audit")
    op.drop_table("list_entry")
    op.drop_index("ix_fraud_score_actionable", table_name="fraud_score")
    for table in _DECIDED:
        op.drop_constraint(f"ck_{table}_outcome", table)
        for column in ("ruleset_version", "rules_fired", "decided_by", "outcome"):
            op.drop_column(table, column)
