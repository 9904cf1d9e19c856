"""customer alerts per card and day

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

One customer_alert per group of flagged transactions (a card's flagged transactions of one day) and channel,
keyed by a unique group key; the group's transactions in customer_alert_transaction (a transaction belongs
to at most one alert per channel); delivery attempts and the last error on the alert. Alerts of revision
0001 (one per transaction) become one-transaction groups with the key `txn:<trans_num>`, so nothing already
sent is sent again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "customer_alert",
        sa.Column(
            "group_key",
            sa.Text(),
            nullable=True,
            comment="card token and day of the grouped transactions (+ #n for follow-ups)",
        ),
    )
    op.add_column("customer_alert", sa.Column("alert_day", sa.Date(), nullable=True))
    op.add_column("customer_alert", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("customer_alert", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column(
        "customer_alert",
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "customer_alert_transaction",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["customer_alert.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["trans_num"],
            ["fact_transaction.trans_num"],
        ),
        sa.PrimaryKeyConstraint("alert_id", "trans_num"),
        sa.UniqueConstraint("trans_num", "channel", name="uq_customer_alert_transaction_trans_channel"),
    )
    # revision 0001 rows: one transaction each
    op.execute("""
        UPDATE customer_alert a SET group_key = 'txn:' || a.trans_num,
               attempts = CASE WHEN a.status = 'sent' THEN 1 ELSE 0 END,
               alert_day = (SELECT (t.event_time AT TIME ZONE 'UTC')::date
                            FROM fact_transaction t WHERE t.trans_num = a.trans_num)""")
    op.execute(
        "INSERT INTO customer_alert_transaction (alert_id, trans_num, channel) "
        "SELECT id, trans_num, channel FROM customer_alert"
    )
    op.alter_column("customer_alert", "group_key", nullable=False)
    op.alter_column("customer_alert", "alert_day", nullable=False)
    op.drop_constraint("uq_customer_alert_trans_channel", "customer_alert", type_="unique")
    op.drop_column("customer_alert", "trans_num")  # drops its foreign key too
    op.create_unique_constraint("uq_customer_alert_group_channel", "customer_alert", ["group_key", "channel"])
    op.create_index(op.f("ix_customer_alert_status"), "customer_alert", ["status"], unique=False)


def downgrade() -> None:
    # back to one row per transaction: the group's first transaction keeps the alert, the others get copies
    op.add_column("customer_alert", sa.Column("trans_num", sa.String(length=64), nullable=True))
    op.execute("""
        UPDATE customer_alert a SET trans_num = (SELECT min(l.trans_num) FROM customer_alert_transaction l
                                                  WHERE l.alert_id = a.id)""")
    op.execute("""
        INSERT INTO customer_alert (trans_num, channel, card_token, model_version, status, message_id, sent_at,
                                    group_key, alert_day, attempts)
        SELECT l.trans_num, a.channel, a.card_token, a.model_version, a.status, a.message_id, a.sent_at,
               'txn:' || l.trans_num, a.alert_day, a.attempts
        FROM customer_alert a JOIN customer_alert_transaction l ON l.alert_id = a.id
        WHERE l.trans_num <> a.trans_num""")
    op.execute("DELETE FROM customer_alert WHERE trans_num IS NULL")
    op.alter_column("customer_alert", "trans_num", nullable=False)
    op.drop_index(op.f("ix_customer_alert_status"), table_name="customer_alert")
    op.drop_constraint("uq_customer_alert_group_channel", "customer_alert", type_="unique")
    op.drop_table("customer_alert_transaction")
    op.create_foreign_key(
        "customer_alert_trans_num_fkey", "customer_alert", "fact_transaction", ["trans_num"], ["trans_num"]
    )
    op.create_unique_constraint("uq_customer_alert_trans_channel", "customer_alert", ["trans_num", "channel"])
    for column in ("created_at", "last_error", "attempts", "alert_day", "group_key"):
        op.drop_column("customer_alert", column)
