"""the real-time decision log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Every answer of the real-time path (`POST /v1/score`, the scorer Lambda's real-time event) is recorded in the
same request, keyed by trans_num, before the answer leaves (fraud/serving/realtime.py): a retry finds it and
gets the same answer, and the next request's card and merchant features count it (fraud/features/online.py)
until the batch path loads the settled transaction into fact_transaction, from when on the fact row counts
instead. No foreign keys: a decision may be the first the platform sees of a card or a merchant.

Indexes: the primary key (the idempotency lookup), (card_token, event_time) and (merchant, event_time) for the
online history (the same shapes as fact_transaction's), and received_at for `fraud decisions` and the report's
per-day figures. Nothing else: each index is a write on the request's path.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "realtime_decision",
        sa.Column("trans_num", sa.String(64), primary_key=True),
        sa.Column("request_digest", sa.String(64), nullable=False, comment="SHA-256 of the validated transaction"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_token", sa.String(64), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("merchant", sa.Text, nullable=False),
        sa.Column("category", sa.String(50)),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("merch_lat", sa.Float),
        sa.Column("merch_long", sa.Float),
        sa.Column("new_card", sa.Boolean, nullable=False),
        sa.Column("new_merchant", sa.Boolean, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("reasons", postgresql.JSONB, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("feature_version", sa.String(16), nullable=False),
        sa.Column("features", postgresql.ARRAY(sa.Float), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False, comment="request received to decision made"),
        sa.Column("channel", sa.String(16), nullable=False, comment="api or lambda"),
    )
    op.create_index("ix_realtime_decision_card_token_event_time", "realtime_decision", ["card_token", "event_time"])
    op.create_index("ix_realtime_decision_merchant_event_time", "realtime_decision", ["merchant", "event_time"])
    op.create_index("ix_realtime_decision_received_at", "realtime_decision", ["received_at"])


def downgrade() -> None:
    op.drop_table("realtime_decision")
