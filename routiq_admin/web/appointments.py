"""Appointments of one organization: date range and status filters, paging."""

from datetime import timedelta

from flask import Blueprint, render_template
from sqlalchemy import and_, select

from ..models import Appointment, AppointmentType, Business, Patient, Practitioner, utcnow
from .common import (
    PER_PAGE,
    choice,
    day_param,
    is_htmx,
    org_context,
    org_zone,
    page_number,
    paginate,
    utc_from_local,
    zone,
)

bp = Blueprint("appointments", __name__, url_prefix="/orgs/<org_id>/appointments")

STATUSES = ("booked", "cancelled", "did_not_arrive", "archived")
STATUS_LABELS = {
    "booked": "Booked",
    "cancelled": "Cancelled",
    "did_not_arrive": "Did not arrive",
    "archived": "Archived",
}
DEFAULT_PAST_DAYS, DEFAULT_FUTURE_DAYS = 7, 30


def _joined(model, org_id, column):
    return and_(model.organization_id == org_id, model.cliniko_id == column)


def _status_filter(status):
    live = and_(Appointment.archived_at.is_(None), Appointment.deleted_at.is_(None))
    return {
        "booked": and_(live, Appointment.cancelled_at.is_(None), Appointment.did_not_arrive.is_not(True)),
        "cancelled": and_(live, Appointment.cancelled_at.is_not(None)),
        "did_not_arrive": and_(
            live, Appointment.cancelled_at.is_(None), Appointment.did_not_arrive.is_(True)
        ),
        "archived": Appointment.archived_at.is_not(None) | Appointment.deleted_at.is_not(None),
    }[status]


@bp.get("")
def index(org_id):
    """List appointments in a date range (a table fragment for htmx, else the whole page)."""
    org, role = org_context(org_id)
    tz = org_zone(org)
    today = utcnow().astimezone(tz).date()
    start = day_param("from", today - timedelta(days=DEFAULT_PAST_DAYS))
    end = max(day_param("to", today + timedelta(days=DEFAULT_FUTURE_DAYS)), start)
    status = choice("status", STATUSES)
    stmt = (
        select(
            Appointment,
            Patient.first_name,
            Patient.last_name,
            Practitioner.display_name,
            AppointmentType.name,
            Business.time_zone_identifier,
        )
        .where(
            Appointment.organization_id == org.id,
            Appointment.starts_at >= utc_from_local(start, tz),
            Appointment.starts_at < utc_from_local(end, tz, end=True),
        )
        .outerjoin(Patient, _joined(Patient, org.id, Appointment.patient_cliniko_id))
        .outerjoin(Practitioner, _joined(Practitioner, org.id, Appointment.practitioner_cliniko_id))
        .outerjoin(AppointmentType, _joined(AppointmentType, org.id, Appointment.appointment_type_cliniko_id))
        .outerjoin(Business, _joined(Business, org.id, Appointment.business_cliniko_id))
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if status:
        stmt = stmt.where(_status_filter(status))
    page = paginate(stmt, page_number(), PER_PAGE, scalars=False)
    rows = [
        {
            "appt": appt,
            "patient": f"{first or ''} {last or ''}".strip()
            or appt.patient_name
            or f"Patient {appt.patient_cliniko_id}",
            "practitioner": practitioner,
            "type": type_name,
            "tz": zone(business_tz) if business_tz else tz,
        }
        for appt, first, last, practitioner, type_name, business_tz in page.items
    ]
    context = {
        "org": org,
        "role": role,
        "tz": tz,
        "page": page,
        "rows": rows,
        "filters": {"from": start.isoformat(), "to": end.isoformat(), "status": status},
        "status_labels": STATUS_LABELS,
    }
    return render_template("appointments/_table.html" if is_htmx() else "appointments/index.html", **context)
