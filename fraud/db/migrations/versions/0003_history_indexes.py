"""composite indexes for a card's and a merchant's history

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

The real-time scorer and the report read "this card's (or merchant's) transactions in [t - w, t)". With a
single-column index on card_token PostgreSQL fetches every row of the card and filters on time; a generic
(prepared) plan even ANDs in the event_time index over the whole table. (card_token, event_time) and
(merchant, event_time) answer the range from the index itself and still serve plain equality lookups, so they
replace the single-column ones instead of adding index maintenance to every load.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fact_transaction_card_token_event_time", "fact_transaction", ["card_token", "event_time"])
    op.create_index("ix_fact_transaction_merchant_event_time", "fact_transaction", ["merchant", "event_time"])
    op.drop_index("ix_fact_transaction_card_token", table_name="fact_transaction")
    op.drop_index("ix_fact_transaction_merchant", table_name="fact_transaction")


def downgrade() -> None:
    op.create_index("ix_fact_transaction_card_token", "fact_transaction", ["card_token"])
    op.create_index("ix_fact_transaction_merchant", "fact_transaction", ["merchant"])
    op.drop_index("ix_fact_transaction_merchant_event_time", table_name="fact_transaction")
    op.drop_index("ix_fact_transaction_card_token_event_time", table_name="fact_transaction")
