"""fraud_score's flag index: only the flagged rows, by model

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

0001 indexed `flagged` over every score: a btree on a boolean that every batch scorer row updates, and that no
query uses (half the table or more matches either value). What reads flags reads one model's flagged rows
(fraud/db/queries.py, the report: `WHERE s.model_version = :model AND s.flagged`), about 1% of the scores: a partial
index on the model version of the flagged rows serves it, and the other 99% of score writes leave it alone.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_fraud_score_flagged", table_name="fraud_score")
    op.create_index("ix_fraud_score_flagged_by_model", "fraud_score", ["model_version"], postgresql_where="flagged")


def downgrade() -> None:
    op.drop_index("ix_fraud_score_flagged_by_model", table_name="fraud_score")
    op.create_index("ix_fraud_score_flagged", "fraud_score", ["flagged"])
