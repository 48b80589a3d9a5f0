"""API token scopes (existing tokens keep `sync`, today's rights); indexes for the data API's pages

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scopes", sa.String(length=200), server_default="sync", nullable=False))
    op.create_index("ix_patients_org_id", "patients", ["organization_id", "id"])
    op.create_index("ix_appointments_org_id", "appointments", ["organization_id", "id"])


def downgrade():
    op.drop_index("ix_appointments_org_id", table_name="appointments")
    op.drop_index("ix_patients_org_id", table_name="patients")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")
