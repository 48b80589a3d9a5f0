"""Queries over the synced Cliniko records: patient and appointment lists, filters, counts.

The dashboard lists and the API's data endpoints share these; sync runs themselves are in status.py.
"""

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, case, func, or_, select

from ..extensions import db
from ..models import Appointment, AppointmentType, Business, Patient, Practitioner, for_org, utcnow

# The four activity statuses, named so that none reads as "active" (which is any of the first three).
ACTIVITY_LABELS = {
    "active": "Recent and upcoming",
    "recently_active": "Recent only",
    "upcoming_only": "Upcoming only",
    "inactive": "Inactive",
}


def active_patient():
    """Return the SQL condition for an active patient: any activity status but inactive (design.md)."""
    return Patient.activity_status != "inactive"


def patient_counts(org_id):
    """Return (patients not archived, active patients) for an organization."""
    return patient_counts_by_org([org_id]).get(org_id, (0, 0))


def patient_counts_by_org(org_ids):
    """Return {org_id: (patients not archived, active patients)}; active = any activity but inactive."""
    active = case((Patient.activity_status != "inactive", 1), else_=0)
    stmt = (
        select(Patient.organization_id, func.count(), func.coalesce(func.sum(active), 0))
        .where(
            Patient.organization_id.in_(list(org_ids)),
            Patient.archived_at.is_(None),
            Patient.deleted_at.is_(None),
        )
        .group_by(Patient.organization_id)
    )
    return {org_id: (total, int(act)) for org_id, total, act in db.session.execute(stmt)}


ACTIVITY_STATUSES = ("active", "recently_active", "upcoming_only", "inactive")
APPOINTMENT_STATUSES = ("booked", "cancelled", "did_not_arrive", "archived")


def _escape_like(term):
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def patients_query(org_id, q="", activity=None, archived=False):
    """Return a select of an organization's patients: name/email search, activity, archived ones or not."""
    stmt = for_org(Patient, org_id)
    if q:
        like = f"%{_escape_like(q.lower())}%"
        full = func.lower(func.coalesce(Patient.first_name, "") + " " + func.coalesce(Patient.last_name, ""))
        preferred = func.lower(
            func.coalesce(Patient.preferred_first_name, "") + " " + func.coalesce(Patient.last_name, "")
        )
        stmt = stmt.where(
            or_(
                full.like(like, escape="\\"),
                preferred.like(like, escape="\\"),
                func.lower(Patient.email).like(like, escape="\\"),
            )
        )
    if activity:
        stmt = stmt.where(Patient.activity_status == activity)
    if not archived:
        stmt = stmt.where(Patient.archived_at.is_(None), Patient.deleted_at.is_(None))
    return stmt


def appointment_status_filter(status):
    """Return the SQL condition for one of APPOINTMENT_STATUSES."""
    live = and_(Appointment.archived_at.is_(None), Appointment.deleted_at.is_(None))
    return {
        "booked": and_(live, Appointment.cancelled_at.is_(None), Appointment.did_not_arrive.is_not(True)),
        "cancelled": and_(live, Appointment.cancelled_at.is_not(None)),
        "did_not_arrive": and_(
            live, Appointment.cancelled_at.is_(None), Appointment.did_not_arrive.is_(True)
        ),
        "archived": Appointment.archived_at.is_not(None) | Appointment.deleted_at.is_not(None),
    }[status]


def _joined(model, org_id, column):
    return and_(model.organization_id == org_id, model.cliniko_id == column)


def appointments_query(org_id):
    """Return a select of an organization's appointments with patient names, practitioner,
    type and business time zone (rows of Appointment, first, preferred, last, practitioner, type, zone)."""
    return (
        select(
            Appointment,
            Patient.first_name,
            Patient.preferred_first_name,
            Patient.last_name,
            Practitioner.display_name,
            AppointmentType.name,
            Business.time_zone_identifier,
        )
        .where(Appointment.organization_id == org_id)
        .outerjoin(Patient, _joined(Patient, org_id, Appointment.patient_cliniko_id))
        .outerjoin(Practitioner, _joined(Practitioner, org_id, Appointment.practitioner_cliniko_id))
        .outerjoin(AppointmentType, _joined(AppointmentType, org_id, Appointment.appointment_type_cliniko_id))
        .outerjoin(Business, _joined(Business, org_id, Appointment.business_cliniko_id))
    )


def appointment_patient_name(appt, first, last):
    """Return the name an appointment's patient is shown by (the stored patient, else Cliniko's label)."""
    return f"{first or ''} {last or ''}".strip() or appt.patient_name or f"Patient {appt.patient_cliniko_id}"


def appointment_status(appt):
    """Return which of APPOINTMENT_STATUSES an appointment is in (as appointment_status_filter sees it)."""
    if appt.archived_at or appt.deleted_at:
        return "archived"
    if appt.cancelled_at:
        return "cancelled"
    return "did_not_arrive" if appt.did_not_arrive else "booked"


def activity_counts(org_id):
    """Return the organization's patients (not archived) by activity status, every status present."""
    rows = db.session.execute(
        select(Patient.activity_status, func.count())
        .where(Patient.organization_id == org_id, Patient.archived_at.is_(None), Patient.deleted_at.is_(None))
        .group_by(Patient.activity_status)
    ).all()
    return {status: 0 for status in ACTIVITY_STATUSES} | dict(rows)


def appointment_counts(org_id, now=None):
    """Count the appointments the activity step counts: recent, upcoming, and in the activity window."""
    now = now or utcnow()
    config = current_app.config
    past = now - timedelta(days=config["ACTIVE_PAST_DAYS"])
    future = now + timedelta(days=config["ACTIVE_FUTURE_DAYS"])
    a = Appointment

    def between(low, high):
        return func.coalesce(func.sum(case((and_(a.starts_at >= low, a.starts_at <= high), 1), else_=0)), 0)

    recent, upcoming, window = db.session.execute(
        select(
            between(past, now),
            func.coalesce(func.sum(case((a.starts_at > now, 1), else_=0)), 0),
            between(past, future),
        ).where(
            a.organization_id == org_id,
            a.cancelled_at.is_(None),
            a.archived_at.is_(None),
            a.deleted_at.is_(None),
        )
    ).one()
    return {
        "recent": int(recent),
        "upcoming": int(upcoming),
        "in_window": int(window),
        "window_start": past,
        "window_end": future,
    }


def missing_patient_ids(org_id):
    """Return Cliniko ids of patients that local appointments reference but we do not have."""
    # A set difference, not a LEFT JOIN: on tables without statistics PostgreSQL planned the join
    # as a nested loop over the organization's patients per appointment (quadratic in the clinic).
    referenced = (
        for_org(Appointment, org_id)
        .with_only_columns(Appointment.patient_cliniko_id)
        .where(Appointment.patient_cliniko_id.is_not(None))
    )
    stored = for_org(Patient, org_id).with_only_columns(Patient.cliniko_id)
    return sorted(db.session.execute(referenced.except_(stored)).scalars())
