"""star schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25

The star schema (docs/architecture.md#the-database): card tokens (never raw card numbers), the holder's address on
dim_card.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

CATEGORY_DESCRIPTIONS = {
    "entertainment": "Cinemas, concerts, events",
    "food_dining": "Restaurants and takeaways",
    "gas_transport": "Fuel and public transport",
    "grocery_net": "Online groceries",
    "grocery_pos": "Groceries in store",
    "health_fitness": "Pharmacies, gyms, clinics",
    "home": "Home and garden",
    "kids_pets": "Children and pets",
    "misc_net": "Other online purchases",
    "misc_pos": "Other in-store purchases",
    "personal_care": "Hair, beauty, personal care",
    "shopping_net": "Online retail",
    "shopping_pos": "In-store retail",
    "travel": "Flights, hotels, car hire",
}


def upgrade() -> None:
    op.create_table(
        "batch_load",
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.Column("source_key", sa.Text(), nullable=False),
        sa.Column("rows_in", sa.Integer(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("duplicates_dropped", sa.Integer(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_table(
        "dim_card",
        sa.Column("card_token", sa.String(length=64), nullable=False, comment="HMAC-SHA256 of the card number"),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("gender", sa.String(length=1), nullable=True),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("street", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("zip", sa.String(length=10), nullable=True),
        sa.Column("home_lat", sa.Float(), nullable=True),
        sa.Column("home_long", sa.Float(), nullable=True),
        sa.Column("city_pop", sa.Integer(), nullable=True),
        sa.Column("job", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("alerts_opt_out", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("card_token"),
    )
    op.create_table(
        "dim_category",
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("category"),
    )
    op.create_table(
        "dim_merchant",
        sa.Column("merchant", sa.Text(), nullable=False),
        sa.Column("merch_lat", sa.Float(), nullable=True),
        sa.Column("merch_long", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("merchant"),
    )
    op.create_table(
        "transaction_label",
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("is_fraud", sa.Boolean(), nullable=False),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("trans_num"),
    )
    op.create_table(
        "fact_transaction",
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_token", sa.String(length=64), nullable=False),
        sa.Column("merchant", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("merch_lat", sa.Float(), nullable=True),
        sa.Column("merch_long", sa.Float(), nullable=True),
        sa.Column("batch_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["card_token"],
            ["dim_card.card_token"],
        ),
        sa.ForeignKeyConstraint(
            ["category"],
            ["dim_category.category"],
        ),
        sa.ForeignKeyConstraint(
            ["merchant"],
            ["dim_merchant.merchant"],
        ),
        sa.PrimaryKeyConstraint("trans_num"),
    )
    op.create_index(op.f("ix_fact_transaction_batch_id"), "fact_transaction", ["batch_id"], unique=False)
    op.create_index(op.f("ix_fact_transaction_card_token"), "fact_transaction", ["card_token"], unique=False)
    op.create_index(op.f("ix_fact_transaction_event_time"), "fact_transaction", ["event_time"], unique=False)
    op.create_index(op.f("ix_fact_transaction_merchant"), "fact_transaction", ["merchant"], unique=False)
    op.create_table(
        "customer_alert",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("card_token", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_token"],
            ["dim_card.card_token"],
        ),
        sa.ForeignKeyConstraint(
            ["trans_num"],
            ["fact_transaction.trans_num"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trans_num", "channel", name="uq_customer_alert_trans_channel"),
    )
    op.create_table(
        "fraud_score",
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("top_reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["trans_num"],
            ["fact_transaction.trans_num"],
        ),
        sa.PrimaryKeyConstraint("trans_num", "model_version"),
    )
    op.create_index(op.f("ix_fraud_score_flagged"), "fraud_score", ["flagged"], unique=False)
    op.create_table(
        "transaction_features",
        sa.Column("trans_num", sa.String(length=64), nullable=False),
        sa.Column("feature_version", sa.String(length=16), nullable=False),
        sa.Column(
            "values",
            sa.ARRAY(sa.Float()),
            nullable=False,
            comment="in the order of fraud.features.catalog for the version",
        ),
        sa.ForeignKeyConstraint(
            ["trans_num"],
            ["fact_transaction.trans_num"],
        ),
        sa.PrimaryKeyConstraint("trans_num", "feature_version"),
    )

    categories = sa.table("dim_category", sa.column("category", sa.String), sa.column("description", sa.Text))
    op.bulk_insert(
        categories, [{"category": name, "description": text} for name, text in CATEGORY_DESCRIPTIONS.items()]
    )


def downgrade() -> None:
    op.drop_table("transaction_features")
    op.drop_index(op.f("ix_fraud_score_flagged"), table_name="fraud_score")
    op.drop_table("fraud_score")
    op.drop_table("customer_alert")
    op.drop_index(op.f("ix_fact_transaction_merchant"), table_name="fact_transaction")
    op.drop_index(op.f("ix_fact_transaction_event_time"), table_name="fact_transaction")
    op.drop_index(op.f("ix_fact_transaction_card_token"), table_name="fact_transaction")
    op.drop_index(op.f("ix_fact_transaction_batch_id"), table_name="fact_transaction")
    op.drop_table("fact_transaction")
    op.drop_table("transaction_label")
    op.drop_table("dim_merchant")
    op.drop_table("dim_category")
    op.drop_table("dim_card")
    op.drop_table("batch_load")
