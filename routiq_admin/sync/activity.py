"""Patient activity ("active patients"), computed in SQL from local appointments."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, case, func, select, update

from ..extensions import db
from ..models import Appointment, Patient, utcnow


def refresh_activity(org_id, now=None):
    """Recompute every patient's appointment counts, last/next visit and activity status."""
    now = now or utcnow()
    past = now - timedelta(days=current_app.config["ACTIVE_PAST_DAYS"])
    a = Appointment
    counted = and_(
        a.organization_id == Patient.organization_id,
        a.patient_cliniko_id == Patient.cliniko_id,
        a.cancelled_at.is_(None),
        a.archived_at.is_(None),
        a.deleted_at.is_(None),
    )

    def agg(fn, *where):
        return select(fn).where(counted, *where).scalar_subquery()

    db.session.execute(
        update(Patient)
        .where(Patient.organization_id == org_id)
        .values(
            recent_appointment_count=agg(func.count(), a.starts_at >= past, a.starts_at <= now),
            upcoming_appointment_count=agg(func.count(), a.starts_at > now),
            total_appointment_count=agg(func.count()),
            last_appointment_at=agg(func.max(a.starts_at), a.starts_at <= now),
            next_appointment_at=agg(func.min(a.starts_at), a.starts_at > now),
        )
        .execution_options(synchronize_session=False)
    )
    recent = Patient.recent_appointment_count > 0
    upcoming = Patient.upcoming_appointment_count > 0
    db.session.execute(
        update(Patient)
        .where(Patient.organization_id == org_id)
        .values(
            activity_status=case(
                (and_(recent, upcoming), "active"),
                (recent, "recently_active"),
                (upcoming, "upcoming_only"),
                else_="inactive",
            )
        )
        .execution_options(synchronize_session=False)
    )
