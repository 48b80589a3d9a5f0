"""The synced Cliniko tables, unique by (organization_id, cliniko_id), and SYNCED_MODELS."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint, and_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class ClinikoRecord:
    """Columns every synced table has; rows are unique by (organization_id, cliniko_id)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    cliniko_id: Mapped[str] = mapped_column(String(32))
    cliniko_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cliniko_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)


def _org_cliniko_unique(table):
    return (UniqueConstraint("organization_id", "cliniko_id", name=f"uq_{table}_org_cliniko"),)


class Business(ClinikoRecord, db.Model):
    __tablename__ = "businesses"
    __table_args__ = _org_cliniko_unique("businesses")

    business_name: Mapped[str | None] = mapped_column(String(200))
    time_zone_identifier: Mapped[str | None] = mapped_column(String(64))
    city: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(120))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Practitioner(ClinikoRecord, db.Model):
    __tablename__ = "practitioners"
    __table_args__ = _org_cliniko_unique("practitioners")

    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(60))
    designation: Mapped[str | None] = mapped_column(String(120))
    display_name: Mapped[str | None] = mapped_column(String(240))
    active: Mapped[bool | None] = mapped_column(Boolean)


class AppointmentType(ClinikoRecord, db.Model):
    __tablename__ = "appointment_types"
    __table_args__ = _org_cliniko_unique("appointment_types")

    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(120))
    duration_in_minutes: Mapped[int | None] = mapped_column(Integer)
    color: Mapped[str | None] = mapped_column(String(16))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Patient(ClinikoRecord, db.Model):
    __tablename__ = "patients"
    __table_args__ = (
        *_org_cliniko_unique("patients"),
        Index("ix_patients_org_activity", "organization_id", "activity_status"),
        Index("ix_patients_org_name", "organization_id", "last_name", "first_name"),
        # The API's keyset pages: one organization's rows in id order, without a sort.
        Index("ix_patients_org_id", "organization_id", "id"),
    )

    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    preferred_first_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(60))
    email: Mapped[str | None] = mapped_column(String(254))
    date_of_birth: Mapped[datetime | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(60))
    # JSONB on PostgreSQL: plain json has no equality, and upserts compare values.
    phone_numbers: Mapped[list | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    address_1: Mapped[str | None] = mapped_column(String(240))
    city: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(120))
    post_code: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(120))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Computed locally from appointments (sync/activity.py), never from Cliniko.
    recent_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    upcoming_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_appointment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_appointment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activity_status: Mapped[str] = mapped_column(String(20), default="inactive", server_default="inactive")

    @property
    def display_name(self):
        first = self.preferred_first_name or self.first_name or ""
        return f"{first} {self.last_name or ''}".strip() or f"Patient {self.cliniko_id}"


class Appointment(ClinikoRecord, db.Model):
    __tablename__ = "appointments"
    __table_args__ = (
        *_org_cliniko_unique("appointments"),
        # Serves the activity step (per-patient counts and min/max of starts_at) and joins.
        Index("ix_appointments_org_patient_starts", "organization_id", "patient_cliniko_id", "starts_at"),
        Index("ix_appointments_org_starts", "organization_id", "starts_at"),
        Index("ix_appointments_org_id", "organization_id", "id"),
    )

    patient_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    practitioner_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    appointment_type_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    business_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    patient_name: Mapped[str | None] = mapped_column(String(240))
    did_not_arrive: Mapped[bool | None] = mapped_column(Boolean)
    patient_arrived: Mapped[bool | None] = mapped_column(Boolean)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancellation_reason: Mapped[int | None] = mapped_column(Integer)
    cancellation_reason_description: Mapped[str | None] = mapped_column(String(200))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The patient an appointment was moved away from (a merge in Cliniko), set by the upsert and
    # cleared by the activity step once that patient is recomputed; never from Cliniko.
    previous_patient_cliniko_id: Mapped[str | None] = mapped_column(String(32))

    patient: Mapped[Patient | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Appointment.organization_id) == Patient.organization_id,
            foreign(Appointment.patient_cliniko_id) == Patient.cliniko_id,
        ),
        viewonly=True,
        lazy="select",
    )
    practitioner: Mapped[Practitioner | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Appointment.organization_id) == Practitioner.organization_id,
            foreign(Appointment.practitioner_cliniko_id) == Practitioner.cliniko_id,
        ),
        viewonly=True,
    )

    @property
    def status_label(self):
        if self.deleted_at:
            return "deleted"
        if self.archived_at:
            return "archived"
        if self.cancelled_at:
            return "cancelled"
        if self.did_not_arrive:
            return "did not arrive"
        return "booked"


SYNCED_MODELS = {
    "businesses": Business,
    "practitioners": Practitioner,
    "appointment_types": AppointmentType,
    "patients": Patient,
    "appointments": Appointment,
}
