"""The guide's /api/v1/sync endpoints, plus cancel and run detail; the service computes, we format.

Checks run 401 → 403 → 404 → 422: the caller, then the organization's scope, then the ids,
then the parameters.
"""

import re

from flask import Blueprint, current_app, jsonify, request

from ..auth import Forbidden, NotFound, require_org, require_principal, role_at_least
from ..errors import ValidationError
from ..models import utcnow
from ..sync import plan, runs
from ..sync import status as run_status
from ..timefmt import iso

bp = Blueprint("api_sync", __name__, url_prefix="/api/v1/sync")

# Ids never hold control characters; PostgreSQL refuses NUL in text, so stop them here.
VALID_ID = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
ORG_HEADER = "X-Organization-ID"
ENTITY_COUNTS = ("fetched", "created", "updated", "unchanged", "failed")
ERROR_FIELDS = ("error_type", "error_code", "message", "entity", "at")
CANCEL_MESSAGES = {
    "cancelled": "Sync cancelled",
    "running": "Cancellation requested; the sync stops after its current page",
}
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


# ---- request helpers (shared with api/cliniko.py) ---------------------------------------------


def org_in_scope(org_id, role="viewer"):
    """Return the organization if the caller holds `role` in it (401, 403, 404 in that order)."""
    principal = require_principal()
    if not VALID_ID.fullmatch(org_id):
        raise (
            NotFound("Organization not found")
            if principal.sees_all
            else Forbidden("You do not have access to this organization")
        )
    return require_org(org_id, role)


def header_org_id():
    """Return the X-Organization-ID header, or None when it is absent or blank."""
    return (request.headers.get(ORG_HEADER) or "").strip() or None


def path_org(org_id, role="viewer"):
    """Return the organization named in the path; a header naming another one must be in scope too."""
    header = header_org_id()
    if header is not None and header != org_id:
        org_in_scope(header)
    return org_in_scope(org_id, role)


def selected_org(role="viewer"):
    """Return the organization chosen by X-Organization-ID, else the token's (or person's only) one."""
    principal = require_principal()
    org_id = header_org_id() or principal.default_org_id()
    if org_id is None and principal.user is not None:
        ids = principal.visible_org_ids()
        org_id = ids[0] if ids is not None and len(ids) == 1 else None
    if org_id is None:
        raise ValidationError(f"Send the {ORG_HEADER} header to choose an organization", field=ORG_HEADER)
    return org_in_scope(org_id, role)


def run_in_scope(sync_id, role="viewer"):
    """Return a run the caller may see (another organization's id is 404), checking `role` in its org."""
    principal = require_principal()
    header = header_org_id()
    org_ids = [org_in_scope(header).id] if header else principal.visible_org_ids()
    run = run_status.find_run(sync_id, org_ids) if VALID_ID.fullmatch(sync_id) else None
    if run is None:
        raise NotFound(f"Sync {sync_id} not found")
    require_org(run.organization_id, role)
    return run


def query(name, parse, default=None):
    """Return a parsed query parameter, its default when absent, or raise a 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, KeyError):
        raise ValidationError(f"Invalid value {raw[:80]!r} for {name}", field=name) from None


def choice(values, name):
    """Return a parser accepting only `values` (the 422 lists them)."""

    def parse(raw):
        if raw not in values:
            raise ValidationError(
                f"Invalid value {raw[:80]!r} for {name}; use one of {', '.join(values)}", field=name
            )
        return raw

    return parse


def int_range(low, high):
    """Return a parser for a decimal integer in [low, high]."""

    def parse(raw):
        if not re.fullmatch(r"[0-9]{1,10}", raw) or not low <= int(raw) <= high:
            raise ValueError(raw)
        return int(raw)

    return parse


def boolean(raw):
    """Parse true/false/1/0 (any case)."""
    return BOOLEANS[raw.strip().lower()]


def start_run(org, mode, trigger, kind="sync"):
    """Start a run for the caller (a sync honours ?full=true, which ignores marks) and return it."""
    principal = require_principal()
    if kind == "import":
        return runs.start_import(org, trigger, user=principal.user, label=principal.label)
    full = query("full", boolean, False)
    return runs.start_sync(org, mode, trigger, user=principal.user, full=full, label=principal.label)


def mode_param(name, default):
    return query(name, choice(plan.MODES, name), default)


def now_iso():
    return iso(utcnow())


# ---- formatting ---------------------------------------------------------------------------------


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


# ---- endpoints ------------------------------------------------------------------------------------


@bp.post("/trigger")
def trigger():
    """Start a sync for the selected organization (default comprehensive)."""
    org = selected_org("operator")
    run = start_run(org, mode_param("sync_mode", "comprehensive"), "api")
    return jsonify(started_json(run, "Sync started successfully", sync_started=True, sync_mode=run.mode))


@bp.get("/scheduler/status")
def scheduler_status():
    """Report whether the scheduler runs and whether a sync is running for the organization."""
    org = selected_org()
    status = run_status.org_status(org)
    running = status["running"]
    return jsonify(
        {
            "organization_id": org.id,
            "sync_running": status["sync_running"],
            "last_sync_time": iso(status["last_sync_time"]),
            "scheduler_active": status["scheduler_active"],
            "message": "Scheduler status retrieved successfully",
            "current_sync_id": running.sync_id if running else None,
            "sync_interval_minutes": current_app.config["SYNC_INTERVAL_MINUTES"],
        }
    )


@bp.post("/scheduler/trigger")
def scheduler_trigger():
    """Run the scheduler's sync for the selected organization now (trigger `scheduled`)."""
    org = selected_org("operator")
    run = start_run(org, "comprehensive", "scheduled")
    return jsonify(
        started_json(run, "Scheduled sync triggered successfully", sync_started=True, sync_mode=run.mode)
    )


@bp.post("/start/<organization_id>")
def start(organization_id):
    """Start a sync with progress tracking (default mode `active`)."""
    org = path_org(organization_id, "operator")
    run = start_run(org, mode_param("sync_mode", "active"), "api")
    body = started_json(run, f"Sync started successfully in {run.mode} mode", sync_mode=run.mode)
    body["started_at"] = body.pop("timestamp")
    return jsonify(body)


@bp.get("/progress/<sync_id>")
def progress(sync_id):
    """Report a run's progress (syncs and imports)."""
    return jsonify(progress_json(run_in_scope(sync_id)))


@bp.get("/runs/<sync_id>")
def run_detail(sync_id):
    """Show everything about one run."""
    return jsonify(run_json(run_in_scope(sync_id)))


@bp.post("/cancel/<sync_id>")
def cancel(sync_id):
    """Cancel a run: at once when starting, after the current page when running; 409 when finished."""
    run = runs.cancel_run(run_in_scope(sync_id, "operator"))
    return jsonify(
        {
            "success": True,
            "message": CANCEL_MESSAGES.get(
                run.status, f"The sync finished ({run.status}) before it could stop"
            ),
            "sync_id": run.sync_id,
            "organization_id": run.organization_id,
            "status": run.status,
            "cancel_requested": True,
            "timestamp": now_iso(),
        }
    )


@bp.get("/history/<organization_id>")
def history(organization_id):
    """Totals over all the organization's runs and a page of them, newest first."""
    org = path_org(organization_id)
    limit = query("limit", int_range(1, 100), 10)
    offset = query("offset", int_range(0, 10**9), 0)
    status = query("status", choice(plan.STATUSES, "status"))
    trigger_ = query("trigger", choice(plan.TRIGGERS, "trigger"))
    mode = query("mode", choice(plan.ALL_MODES, "mode"))
    data = run_status.history(org.id, limit=limit, offset=offset, status=status, trigger=trigger_, mode=mode)
    return jsonify(
        {
            "organization_id": org.id,
            "total_syncs": data["total_syncs"],
            "successful_syncs": data["successful_syncs"],
            "failed_syncs": data["failed_syncs"],
            "cancelled_syncs": data["cancelled_syncs"],
            "running_syncs": data["running_syncs"],
            "last_sync_at": iso(data["last_sync_at"]),
            "last_successful_sync_at": iso(data["last_successful_sync_at"]),
            "average_sync_duration_seconds": float(data["average_sync_duration_seconds"]),
            "recent_syncs": [history_item(run) for run in data["runs"]],
            "limit": limit,
            "offset": offset,
            "total_matching": data["matching"],
        }
    )


@bp.post("/cleanup")
def cleanup():
    """Mark the caller's stale runs failed (only organizations where it may operate)."""
    principal = require_principal()
    header = header_org_id()
    if header:
        org_ids = [org_in_scope(header, "operator").id]
    elif principal.sees_all:
        org_ids = None
    else:
        org_ids = [o for o in principal.visible_org_ids() if role_at_least(principal.role_in(o), "operator")]
        if not org_ids:
            raise Forbidden("Cleaning up syncs needs the operator role", error_code="ROLE_REQUIRED")
    cleaned = runs.cleanup_stale(org_ids)
    return jsonify(
        {
            "message": f"Cleaned up {len(cleaned)} stale sync{'' if len(cleaned) == 1 else 's'}",
            "cleaned_syncs": len(cleaned),
            "sync_ids": [run.sync_id for run in cleaned],
            "timestamp": now_iso(),
        }
    )
