"""The synced data, read-only: an organization's summary, its patients and appointments.

Pages are keyset pages in the order of our own row ids, which a sync never changes (upserts
update rows in place, new rows get higher ids): paging while a sync writes returns every row
that existed when paging began exactly once. Everything here needs the `patients:read` scope.
"""

from flask import Blueprint, jsonify

from ..auth import path_org, scope_guard
from ..extensions import db
from ..models import PATIENTS_READ, Appointment, Patient
from ..sync import status as run_status
from ..timefmt import iso
from .params import boolean, choice, cursor, encode_cursor, int_range, query, text, timestamp
from .serializers import appointment_json, now_iso, page_json, patient_json

bp = Blueprint("api_data", __name__, url_prefix="/api/v1/organizations")
bp.before_request(scope_guard(PATIENTS_READ))

MAX_LIMIT, DEFAULT_LIMIT = 500, 100


def _page(stmt, model, serialize, scalars=True):
    """Run one keyset page of `stmt` (limit and cursor from the query) and return its JSON."""
    limit = query("limit", int_range(1, MAX_LIMIT), DEFAULT_LIMIT)
    after = query("cursor", cursor)
    if after is not None:
        stmt = stmt.where(model.id > after)
    updated_since = query("updated_since", timestamp)
    if updated_since is not None:
        stmt = stmt.where(model.synced_at >= updated_since)
    result = db.session.execute(stmt.order_by(model.id).limit(limit + 1))
    rows = list(result.scalars() if scalars else result.all())
    more = len(rows) > limit
    rows = rows[:limit]
    last_id = (rows[-1] if scalars else rows[-1][0]).id if more else None
    return jsonify(page_json([serialize(r) for r in rows], encode_cursor(last_id) if more else None, limit))


@bp.get("/<organization_id>/summary")
def summary(organization_id):
    """Patient and appointment counts, the last successful sync and freshness per entity."""
    org = path_org(organization_id)
    total, active = run_status.patient_counts(org.id)
    by_activity = run_status.activity_counts(org.id)
    appointments = run_status.appointment_counts(org.id)
    last = run_status.last_finished_run(org.id, statuses=("completed",))
    return jsonify(
        {
            "organization_id": org.id,
            "total_patients": total,
            "active_patients": active,
            "patients_by_activity": by_activity,
            "patients_with_recent_appointments": by_activity["active"] + by_activity["recently_active"],
            "patients_with_upcoming_appointments": by_activity["active"] + by_activity["upcoming_only"],
            "appointments": {
                "recent": appointments["recent"],
                "upcoming": appointments["upcoming"],
                "in_window": appointments["in_window"],
                "window_start": iso(appointments["window_start"]),
                "window_end": iso(appointments["window_end"]),
            },
            "last_successful_sync_at": iso(last.completed_at) if last else None,
            "freshness": {
                entity: {
                    "last_synced_at": iso(f["synced"]),
                    "data_as_of": iso(f["as_of"]),
                    "stored": f["stored"],
                }
                for entity, f in run_status.freshness(org.id).items()
            },
            "generated_at": now_iso(),
        }
    )


@bp.get("/<organization_id>/patients")
def patients(organization_id):
    """A page of patients: search, activity, archived ones or not, changed since."""
    org = path_org(organization_id)
    stmt = run_status.patients_query(
        org.id,
        q=query("q", text(100), ""),
        activity=query("activity", choice(run_status.ACTIVITY_STATUSES, "activity")),
        archived=query("archived", boolean, False),
    )
    return _page(stmt, Patient, patient_json)


@bp.get("/<organization_id>/appointments")
def appointments(organization_id):
    """A page of appointments: starting in [from, to), status, one patient, changed since."""
    org = path_org(organization_id)
    stmt = run_status.appointments_query(org.id)
    start, end = query("from", timestamp), query("to", timestamp)
    if start is not None:
        stmt = stmt.where(Appointment.starts_at >= start)
    if end is not None:
        stmt = stmt.where(Appointment.starts_at < end)
    status = query("status", choice(run_status.APPOINTMENT_STATUSES, "status"))
    if status:
        stmt = stmt.where(run_status.appointment_status_filter(status))
    patient_id = query("patient_id", text(32))
    if patient_id:
        stmt = stmt.where(Appointment.patient_cliniko_id == patient_id)
    return _page(stmt, Appointment, appointment_json, scalars=False)
