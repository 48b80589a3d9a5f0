"""Response shaping for the API: organizations, runs, history items and start responses as the guide shows them."""

from ..models import Patient, utcnow
from ..sync.records import appointment_patient_name, appointment_status
from ..timefmt import iso

ENTITY_COUNTS = ("fetched", "created", "updated", "unchanged", "failed")
ERROR_FIELDS = ("error_type", "error_code", "message", "entity", "at")


def now_iso():
    return iso(utcnow())


def error_json(entry):
    """Return one item of a run's `errors` with exactly the documented keys."""
    entry = entry if isinstance(entry, dict) else {"message": str(entry)}
    out = {key: entry.get(key) for key in ERROR_FIELDS}
    out["message"] = str(out["message"] or "")
    out["error_type"] = out["error_type"] or "internal_error"
    out["error_code"] = out["error_code"] or "INTERNAL_ERROR"
    return out


def progress_json(run):
    """Return a run as the guide's progress response (plus kind, mode, trigger, completed_at)."""
    return {
        "sync_id": run.sync_id,
        "organization_id": run.organization_id,
        "status": run.status,
        "progress_percentage": float(run.progress_percentage or 0.0),
        "current_step": run.current_step,
        "total_steps": int(run.total_steps or 0),
        "completed_steps": int(run.completed_steps or 0),
        "started_at": iso(run.started_at or run.created_at),
        "estimated_completion": iso(run.estimated_completion),
        "records_processed": int(run.records_processed or 0),
        "records_total": int(run.records_total or 0),
        "current_operation": run.current_operation,
        "errors": [error_json(e) for e in run.errors or []],
        "kind": run.kind,
        "sync_mode": run.mode,
        "trigger": run.trigger,
        "completed_at": iso(run.completed_at),
        "rate_limited_until": iso(run.rate_limited_until),
    }


def metadata_json(run):
    meta = run.run_metadata or {}
    return {
        "sync_type": meta.get("sync_type") or run.mode,
        "patients_processed": int(meta.get("patients_processed") or 0),
        "appointments_processed": int(meta.get("appointments_processed") or 0),
    }


def history_item(run):
    """Return a run as an item of the guide's `recent_syncs` (plus id, kind, trigger, mode, duration)."""
    processed, failed = int(run.records_processed or 0), int(run.records_failed or 0)
    return {
        "sync_id": run.sync_id,
        "kind": run.kind,
        "trigger": run.trigger,
        "mode": run.mode,
        "started_at": iso(run.started_at or run.created_at),
        "completed_at": iso(run.completed_at),
        "duration_seconds": run.duration_seconds,
        "status": run.status,
        "records_processed": processed,
        "records_success": max(0, processed - failed),
        "records_failed": failed,
        "metadata": metadata_json(run),
    }


def run_json(run):
    """Return everything about a run: progress, counts per entity, Cliniko requests and 429 waits."""
    counts = run.entity_counts or {}
    return {
        **progress_json(run),
        **{
            k: v
            for k, v in history_item(run).items()
            if k in ("records_success", "records_failed", "metadata", "duration_seconds")
        },
        "full": bool(run.full),
        "created_at": iso(run.created_at),
        "heartbeat_at": iso(run.heartbeat_at),
        "cancel_requested": bool(run.cancel_requested),
        "triggered_by": run.triggered_by_label,
        "entity_counts": {
            entity: {k: int((c or {}).get(k) or 0) for k in ENTITY_COUNTS}
            for entity, c in counts.items()
            if isinstance(c, dict)
        },
        "cliniko_requests": int(run.cliniko_requests or 0),
        "rate_limit_waits": int(run.rate_limit_waits or 0),
        "rate_limit_wait_seconds": round(float(run.rate_limit_wait_seconds or 0.0), 3),
    }


def started_json(run, message, **fields):
    """Return the body of a start response: the guide's fields plus the run's id."""
    return {
        "message": message,
        **fields,
        "organization_id": run.organization_id,
        "sync_id": run.sync_id,
        "timestamp": iso(run.created_at),
    }


def org_json(org):
    """Return an organization as JSON (never the key itself)."""
    return {
        "organization_id": org.id,
        "name": org.name,
        "api_region": org.cliniko_shard,
        "cliniko_api_key": org.masked_key,
        "sync_enabled": org.sync_enabled,
        "created_at": iso(org.created_at),
    }


def patient_json(patient):
    """Return a synced patient (a row of data.PATIENT_COLUMNS) as the dashboard shows it, plus its
    Cliniko id and our row's update time."""
    return {
        "cliniko_id": patient.cliniko_id,
        "display_name": Patient.display_name.fget(patient),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "preferred_first_name": patient.preferred_first_name,
        "email": patient.email,
        "activity_status": patient.activity_status,
        "recent_appointment_count": int(patient.recent_appointment_count or 0),
        "upcoming_appointment_count": int(patient.upcoming_appointment_count or 0),
        "total_appointment_count": int(patient.total_appointment_count or 0),
        "last_appointment_at": iso(patient.last_appointment_at),
        "next_appointment_at": iso(patient.next_appointment_at),
        "archived_at": iso(patient.archived_at or patient.deleted_at),
        "cliniko_updated_at": iso(patient.cliniko_updated_at),
        "updated_at": iso(patient.synced_at),
    }


def appointment_json(appt):
    """Return an appointment (a row of data.APPOINTMENT_COLUMNS) as the dashboard shows it, plus Cliniko ids."""
    return {
        "cliniko_id": appt.cliniko_id,
        "starts_at": iso(appt.starts_at),
        "ends_at": iso(appt.ends_at),
        "status": appointment_status(appt),
        "patient_cliniko_id": appt.patient_cliniko_id,
        "patient_name": appointment_patient_name(appt, appt.patient_first_name, appt.patient_last_name),
        "practitioner_cliniko_id": appt.practitioner_cliniko_id,
        "practitioner_name": appt.practitioner_name,
        "appointment_type_cliniko_id": appt.appointment_type_cliniko_id,
        "appointment_type_name": appt.appointment_type_name,
        "business_cliniko_id": appt.business_cliniko_id,
        "cancelled_at": iso(appt.cancelled_at),
        "archived_at": iso(appt.archived_at or appt.deleted_at),
        "cliniko_updated_at": iso(appt.cliniko_updated_at),
        "updated_at": iso(appt.synced_at),
    }


def page_json(items, next_cursor, limit):
    """Return one keyset page: its items and the cursor of the next page (null on the last)."""
    return {"data": items, "next_cursor": next_cursor, "has_more": next_cursor is not None, "limit": limit}


def run_events_json(run, events):
    """Return a run's event log as GET /sync/runs/{sync_id}/events answers it."""
    return {
        "sync_id": run.sync_id,
        "organization_id": run.organization_id,
        "events": [
            {"seq": e.seq, "at": iso(e.at), "type": e.type, "message": e.message, "data": e.data or {}}
            for e in events
        ],
    }
