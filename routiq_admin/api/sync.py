"""The guide's /api/v1/sync endpoints, plus cancel and run detail; the service computes, we format.

Checks run 401 → 403 → 404 → 422: the caller, then the organization's scope, then the ids,
then the parameters.
"""

from flask import Blueprint, jsonify

from ..auth import (
    header_org_id,
    org_in_scope,
    path_org,
    require_principal,
    role_at_least,
    run_in_scope,
    scope_guard,
    selected_org,
)
from ..errors import Forbidden
from ..models import SYNC_SCOPE
from ..sync import cadence, events, plan, runs
from ..sync import status as run_status
from ..timefmt import iso
from .params import choice, int_range, mode_param, query, start_run
from .serializers import history_item, now_iso, progress_json, run_events_json, run_json, started_json

bp = Blueprint("api_sync", __name__, url_prefix="/api/v1/sync")
bp.before_request(scope_guard(SYNC_SCOPE))

CANCEL_MESSAGES = {
    "cancelled": "Sync cancelled",
    "running": "Cancellation requested; the sync stops after its current page",
}


@bp.post("/trigger")
def trigger():
    """Start a sync for the selected organization (default comprehensive)."""
    org = selected_org("operator")
    run = start_run(org, mode_param("sync_mode", "comprehensive"), "api")
    return jsonify(started_json(run, "Sync started successfully", sync_started=True, sync_mode=run.mode))


@bp.get("/scheduler/status")
def scheduler_status():
    """Report whether the scheduler runs and whether a sync is running for the organization."""
    from flask import current_app

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
            "schedule": cadence.schedule_of(org).as_json(),
            "next_run_at": iso(org.next_run_at),
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


@bp.get("/runs/<sync_id>/events")
def run_events(sync_id):
    """Return one run's event log, in order."""
    run = run_in_scope(sync_id)
    return jsonify(run_events_json(run, events.for_run(run)))


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


@bp.post("/retry/<sync_id>")
def retry(sync_id):
    """Start a failed or cancelled run again (same mode and `full`); 409 while it runs or once completed."""
    run = run_in_scope(sync_id, "operator")
    principal = require_principal()
    new = runs.retry_run(run, "api", user=principal.user, label=principal.label)
    body = started_json(new, f"Retry of {run.sync_id} started", sync_started=True, sync_mode=new.mode)
    body["retry_of"] = run.sync_id
    return jsonify(body)
