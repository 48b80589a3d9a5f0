"""Appointments of one organization: date range and status filters, paging."""

from datetime import timedelta

from flask import Blueprint, render_template

from ..models import Appointment, utcnow
from ..sync.status import (
    APPOINTMENT_STATUSES,
    appointment_patient_name,
    appointment_status_filter,
    appointments_query,
)
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

STATUSES = APPOINTMENT_STATUSES
STATUS_LABELS = {
    "booked": "Booked",
    "cancelled": "Cancelled",
    "did_not_arrive": "Did not arrive",
    "archived": "Archived",
}
DEFAULT_PAST_DAYS, DEFAULT_FUTURE_DAYS = 7, 30


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
        appointments_query(org.id)
        .where(
            Appointment.starts_at >= utc_from_local(start, tz),
            Appointment.starts_at < utc_from_local(end, tz, end=True),
        )
        .order_by(Appointment.starts_at, Appointment.id)
    )
    if status:
        stmt = stmt.where(appointment_status_filter(status))
    page = paginate(stmt, page_number(), PER_PAGE, scalars=False)
    rows = [
        {
            "appt": appt,
            "patient": appointment_patient_name(appt, first, last),
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
