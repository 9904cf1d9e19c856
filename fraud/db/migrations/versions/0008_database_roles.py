"""database roles: one PostgreSQL role per component, least privilege per table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Creates `fraud_writer`, `fraud_realtime`, `fraud_reporting` and `fraud_review` where missing (LOGIN; in RDS also
`rds_iam`, so they log in with IAM database authentication tokens) and grants each the privileges fraud/db/roles.py
`GRANTS` names, table by table, with the sequences of the tables it inserts into. The schema's owner (whoever runs
the migrations) stays the only one who may create in it. Later migrations that add tables name them in `GRANTS` and
call `apply_grants` themselves (no ALTER DEFAULT PRIVILEGES: one default could not be least privilege for every
table).
"""

from alembic import op

from fraud.db.roles import apply_grants, create_roles, revoke_grants

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    create_roles(connection)
    apply_grants(connection)


def downgrade() -> None:
    revoke_grants(op.get_bind())
