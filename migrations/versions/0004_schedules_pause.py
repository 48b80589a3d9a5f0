"""Per-clinic schedules, pause state and failure count; the clinic's own time zone becomes optional

Revision ID: 0004
Revises: 0006

`time_zone` NULL means "the zone Cliniko gives the business"; the old default "UTC" is read as that.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.alter_column(
            "time_zone", existing_type=sa.String(length=64), nullable=True, server_default=None
        )
        batch_op.add_column(sa.Column("schedule_every_minutes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("schedule_cron", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("quiet_start", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("quiet_end", sa.String(length=5), nullable=True))
        batch_op.add_column(
            sa.Column("quiet_weekdays_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("full_sync_at", sa.String(length=5), server_default="02:30", nullable=False)
        )
        batch_op.add_column(sa.Column("next_run_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("next_full_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("paused_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_organizations_next_run_at"), ["next_run_at"], unique=False)
    op.execute("UPDATE organizations SET time_zone = NULL WHERE time_zone = 'UTC'")


def downgrade():
    op.execute("UPDATE organizations SET time_zone = 'UTC' WHERE time_zone IS NULL")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organizations_next_run_at"))
        for column in (
            "consecutive_failures",
            "paused_reason",
            "paused_at",
            "next_full_at",
            "next_run_at",
            "full_sync_at",
            "quiet_weekdays_only",
            "quiet_end",
            "quiet_start",
            "schedule_cron",
            "schedule_every_minutes",
        ):
            batch_op.drop_column(column)
        batch_op.alter_column(
            "time_zone", existing_type=sa.String(length=64), nullable=False, server_default="UTC"
        )
