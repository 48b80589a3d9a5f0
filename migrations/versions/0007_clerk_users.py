"""Clerk users seen calling the API, per organization (last seen; no token stored)

Revision ID: 0007
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "clerk_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.String(length=64), nullable=False),
        sa.Column("clerk_user_id", sa.String(length=200), nullable=False),
        sa.Column("clerk_role", sa.String(length=64), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "clerk_user_id"),
    )
    with op.batch_alter_table("clerk_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clerk_users_organization_id"), ["organization_id"], unique=False)


def downgrade():
    with op.batch_alter_table("clerk_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clerk_users_organization_id"))
    op.drop_table("clerk_users")
