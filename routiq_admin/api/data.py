"""The synced data, read-only: an organization's summary, its patients and appointments.

Pages are keyset pages in the order of our own row ids, which a sync never changes (upserts
update rows in place, new rows get higher ids): paging while a sync writes returns every row
that existed when paging began exactly once. Everything here needs the `patients:read` scope.
"""

from flask import Blueprint, jsonify

from ..auth import path_org, scope_guard
from ..extensions import db
from ..models import PATIENTS_READ, Appointment, AppointmentType, Patient, Practitioner
from ..sync import records
from ..sync import status as run_status
from ..timefmt import iso
from .params import boolean, choice, cursor, encode_cursor, int_range, query, text, timestamp
from .serializers import appointment_json, now_iso, page_json, patient_json

bp = Blueprint("api_data", __name__, url_prefix="/api/v1/organizations")
bp.before_request(scope_guard(PATIENTS_READ))

MAX_LIMIT, DEFAULT_LIMIT = 500, 100
# Only the columns a page shows: loading whole ORM objects cost more than the query itself.
PATIENT_COLUMNS = (
    Patient.id,
    Patient.cliniko_id,
    Patient.first_name,
    Patient.last_name,
    Patient.preferred_first_name,
    Patient.email,
    Patient.activity_status,
    Patient.recent_appointment_count,
    Patient.upcoming_appointment_count,
    Patient.total_appointment_count,
    Patient.last_appointment_at,
    Patient.next_appointment_at,
    Patient.archived_at,
    Patient.deleted_at,
    Patient.cliniko_updated_at,
    Patient.synced_at,
)
APPOINTMENT_COLUMNS = (
    Appointment.id,
    Appointment.cliniko_id,
    Appointment.starts_at,
    Appointment.ends_at,
    Appointment.patient_cliniko_id,
    Appointment.patient_name,
    Appointment.practitioner_cliniko_id,
    Appointment.appointment_type_cliniko_id,
    Appointment.business_cliniko_id,
    Appointment.did_not_arrive,
    Appointment.cancelled_at,
    Appointment.archived_at,
    Appointment.deleted_at,
    Appointment.cliniko_updated_at,
    Appointment.synced_at,
    Patient.first_name.label("patient_first_name"),
    Patient.last_name.label("patient_last_name"),
    Practitioner.display_name.label("practitioner_name"),
    AppointmentType.name.label("appointment_type_name"),
)


def _page(stmt, model, serialize):
    """Run one keyset page of `stmt` (limit and cursor from the query) and return its JSON."""
    limit = query("limit", int_range(1, MAX_LIMIT), DEFAULT_LIMIT)
    after = query("cursor", cursor)
    if after is not None:
        stmt = stmt.where(model.id > after)
    updated_since = query("updated_since", timestamp)
    if updated_since is not None:
        stmt = stmt.where(model.synced_at >= updated_since)
    rows = db.session.execute(stmt.order_by(model.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify(
        page_json([serialize(r) for r in rows], encode_cursor(rows[-1].id) if more else None, limit)
    )


@bp.get("/<organization_id>/summary")
def summary(organization_id):
    """Patient and appointment counts, the last successful sync and freshness per entity."""
    org = path_org(organization_id)
    total, active = records.patient_counts(org.id)
    by_activity = records.activity_counts(org.id)
    appointments = records.appointment_counts(org.id)
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
    stmt = records.patients_query(
        org.id,
        q=query("q", text(100), ""),
        activity=query("activity", choice(records.ACTIVITY_STATUSES, "activity")),
        archived=query("archived", boolean, False),
    )
    return _page(stmt.with_only_columns(*PATIENT_COLUMNS), Patient, patient_json)


@bp.get("/<organization_id>/appointments")
def appointments(organization_id):
    """A page of appointments: starting in [from, to), status, one patient, changed since."""
    org = path_org(organization_id)
    stmt = records.appointments_query(org.id).with_only_columns(*APPOINTMENT_COLUMNS)
    start, end = query("from", timestamp), query("to", timestamp)
    if start is not None:
        stmt = stmt.where(Appointment.starts_at >= start)
    if end is not None:
        stmt = stmt.where(Appointment.starts_at < end)
    status = query("status", choice(records.APPOINTMENT_STATUSES, "status"))
    if status:
        stmt = stmt.where(records.appointment_status_filter(status))
    patient_id = query("patient_id", text(32))
    if patient_id:
        stmt = stmt.where(Appointment.patient_cliniko_id == patient_id)
    return _page(stmt, Appointment, appointment_json)
