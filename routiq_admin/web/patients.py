"""Patients of one organization: search by name or email, filter by activity, paging."""

from flask import Blueprint, render_template, request
from sqlalchemy import func, or_

from ..models import Patient, for_org
from .common import PER_PAGE, choice, is_htmx, org_context, org_zone, page_number, paginate

bp = Blueprint("patients", __name__, url_prefix="/orgs/<org_id>/patients")

ACTIVITY = ("active", "recently_active", "upcoming_only", "inactive")
ACTIVITY_LABELS = {
    "active": "Active",
    "recently_active": "Recently active",
    "upcoming_only": "Upcoming only",
    "inactive": "Inactive",
}


def _escape_like(term):
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@bp.get("")
def index(org_id):
    """List patients (a table fragment for htmx, else the whole page)."""
    org, role = org_context(org_id)
    q = request.args.get("q", "").strip()[:100]
    activity = choice("activity", ACTIVITY)
    archived = request.args.get("archived") == "1"
    stmt = for_org(Patient, org.id)
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
