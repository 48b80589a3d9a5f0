"""Index appointments by (organization, patient, starts_at) for the activity step

Without it the activity step walks every appointment of the organization once per patient
(hours at 100,000 patients); it replaces the (organization, patient) index it extends.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_appointments_org_patient_starts",
        "appointments",
        ["organization_id", "patient_cliniko_id", "starts_at"],
    )
    op.drop_index("ix_appointments_org_patient", table_name="appointments")


def downgrade():
    op.create_index("ix_appointments_org_patient", "appointments", ["organization_id", "patient_cliniko_id"])
    op.drop_index("ix_appointments_org_patient_starts", table_name="appointments")
