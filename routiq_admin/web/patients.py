"""Patients of one organization: search by name or email, filter by activity, paging."""

from flask import Blueprint, render_template, request

from ..models import Patient
from ..sync.status import ACTIVITY_STATUSES, patients_query
from .common import PER_PAGE, choice, is_htmx, org_context, org_zone, page_number, paginate

bp = Blueprint("patients", __name__, url_prefix="/orgs/<org_id>/patients")

ACTIVITY = ACTIVITY_STATUSES
ACTIVITY_LABELS = {
    "active": "Active",
    "recently_active": "Recently active",
    "upcoming_only": "Upcoming only",
    "inactive": "Inactive",
}


@bp.get("")
def index(org_id):
    """List patients (a table fragment for htmx, else the whole page)."""
    org, role = org_context(org_id)
    q = request.args.get("q", "").strip()[:100]
    activity = choice("activity", ACTIVITY)
    archived = request.args.get("archived") == "1"
    stmt = patients_query(org.id, q, activity, archived)
    stmt = stmt.order_by(Patient.last_name, Patient.first_name, Patient.id)
    context = {
        "org": org,
        "role": role,
        "tz": org_zone(org),
        "page": paginate(stmt, page_number(), PER_PAGE),
        "filters": {"q": q, "activity": activity, "archived": "1" if archived else ""},
        "activity_labels": ACTIVITY_LABELS,
    }
    return render_template("patients/_table.html" if is_htmx() else "patients/index.html", **context)
