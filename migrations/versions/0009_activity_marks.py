"""Incremental activity: each organization's last computation, the patient an appointment left

Revision ID: 0009
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("activity_computed_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("activity_as_of", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("activity_recent_from", sa.DateTime(), nullable=True))
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_patient_cliniko_id", sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_column("previous_patient_cliniko_id")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("activity_recent_from")
        batch_op.drop_column("activity_as_of")
        batch_op.drop_column("activity_computed_at")
