"""Appointments of one organization: date range and status filters, paging."""

from datetime import timedelta

from flask import Blueprint, render_template

from ..models import Appointment, utcnow
from ..sync.records import (
    appointment_status_filter,
    appointments_query,
)
from .common import (
    PER_PAGE,
    is_htmx,
    list_response,
    org_context,
    org_zone,
    page_number,
    paginate,
    patient_name,
    utc_from_local,
    zone,
)
from .forms import AppointmentFilterForm

bp = Blueprint("appointments", __name__, url_prefix="/orgs/<org_id>/appointments")

STATUS_LABELS = {
    "booked": "Booked",
    "cancelled": "Cancelled",
    "did_not_arrive": "Did not arrive",
    "archived": "Archived",
}
DEFAULT_PAST_DAYS, DEFAULT_FUTURE_DAYS = 7, 30


@bp.get("")
def index(org_id):
    """List appointments in a date range (a table fragment for htmx, else the whole page).

    A refused filter marks its field and is not applied; the others still are.
    """
    org, role = org_context(org_id)
    tz = org_zone(org)
    today = utcnow().astimezone(tz).date()
    form = AppointmentFilterForm(STATUS_LABELS)
    valid = form.validate()
    if form.start.errors or not form.start.data:
        form.start.data = today - timedelta(days=DEFAULT_PAST_DAYS)
    if form.end.errors or not form.end.data:
        form.end.data = max(today + timedelta(days=DEFAULT_FUTURE_DAYS), form.start.data)
    start, end = form.start.data, form.end.data
    status = "" if form.status.errors else form.status.data or ""
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
    rows = []
    for appt, first, preferred, last, practitioner, type_name, business_tz in page.items:
        shown, legal = patient_name(first, preferred, last)
        rows.append(
            {
                "appt": appt,
                "patient": shown or appt.patient_name or f"Patient {appt.patient_cliniko_id}",
                "legal_name": legal,
                "practitioner": practitioner,
                "type": type_name,
                "tz": zone(business_tz) if business_tz else tz,
            }
        )
    context = {
        "org": org,
        "role": role,
        "tz": tz,
        "form": form,
        "oob_form": is_htmx() and not valid,
        "page": page,
        "rows": rows,
        "filters": {"from": start.isoformat(), "to": end.isoformat(), "status": status},
        "status_labels": STATUS_LABELS,
    }
    html = render_template("appointments/_table.html" if is_htmx() else "appointments/index.html", **context)
    return list_response(html, valid, "appointments.index", context["filters"], page, org_id=org.id)
