"""Patients of one organization: search by name or email, filter by activity, paging."""

from flask import Blueprint, render_template

from ..models import Patient
from ..sync.records import ACTIVITY_LABELS, active_patient, patients_query
from .common import PER_PAGE, is_htmx, list_response, org_context, org_zone, page_number, paginate
from .forms import PatientFilterForm

bp = Blueprint("patients", __name__, url_prefix="/orgs/<org_id>/patients")

# "active" means what it means everywhere (any status but inactive); then one value per status.
ACTIVITY_FILTERS = {
    "active": "Active (any but inactive)",
    "recent_and_upcoming": ACTIVITY_LABELS["active"],
    **{k: v for k, v in ACTIVITY_LABELS.items() if k != "active"},
}
FILTER_STATUS = {"recent_and_upcoming": "active"}


def _activity(value):
    if value == "active":
        return active_patient()
    return Patient.activity_status == FILTER_STATUS.get(value, value)


@bp.get("")
def index(org_id):
    """List patients (a table fragment for htmx, else the whole page); bad filters mark their field."""
    org, role = org_context(org_id)
    form = PatientFilterForm(ACTIVITY_FILTERS)
    valid = form.validate()
    q, activity, archived = form.q.data or "", form.activity.data or "", form.archived.data
    stmt = patients_query(org.id, q, archived=archived)
    if activity and not form.activity.errors:
        stmt = stmt.where(_activity(activity))
    stmt = stmt.order_by(Patient.last_name, Patient.first_name, Patient.id)
    context = {
        "org": org,
        "role": role,
        "tz": org_zone(org),
        "form": form,
        "oob_form": is_htmx() and not valid,
        "page": paginate(stmt, page_number(), PER_PAGE),
        "filters": {"q": q, "activity": activity, "archived": "1" if archived else ""},
        "activity_labels": ACTIVITY_LABELS,
    }
    html = render_template("patients/_table.html" if is_htmx() else "patients/index.html", **context)
    return list_response(html, valid, "patients.index", context["filters"], context["page"], org_id=org.id)
