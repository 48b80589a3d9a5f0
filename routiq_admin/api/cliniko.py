"""The guide's /api/v1/cliniko endpoints: sync, status, test-connection, patient import."""

from flask import Blueprint, jsonify

from ..auth import CLINIKO_CALL_ROLE, path_org, scope_guard
from ..models import SYNC_SCOPE
from ..sync import status as run_status
from ..sync.connection import check_connection
from ..timefmt import iso
from .params import mode_param, start_run
from .serializers import now_iso, started_json

bp = Blueprint("api_cliniko", __name__, url_prefix="/api/v1/cliniko")
bp.before_request(scope_guard(SYNC_SCOPE))


@bp.post("/sync/<organization_id>")
def sync(organization_id):
    """Start a Cliniko sync (default comprehensive)."""
    org = path_org(organization_id, "operator")
    run = start_run(org, mode_param("mode", "comprehensive"), "api")
    return jsonify(
        started_json(
            run,
            f"{run.mode.capitalize()} Cliniko sync started successfully",
            success=True,
            sync_mode=run.mode,
        )
    )


@bp.get("/status/<organization_id>")
def status(organization_id):
    """Report the organization's Cliniko connection and sync health (no call to Cliniko)."""
    org = path_org(organization_id)
    data = run_status.org_status(org)
    return jsonify(
        {
            "organization_id": org.id,
            "cliniko_connected": data["cliniko_connected"],
            "api_region": org.cliniko_shard,
            "last_sync": iso(data["last_sync_time"]),
            "total_patients": data["total_patients"],
            "sync_enabled": bool(org.sync_enabled),
            "credentials_valid": data["credentials_valid"],
            "sync_status": data["sync_status"],
            "active_patients": data["active_patients"],
            "sync_running": data["sync_running"],
            "credentials_checked_at": iso(org.credentials_checked_at),
            "sync_paused": org.paused_at is not None,
            "paused_reason": org.paused_reason,
            "paused_at": iso(org.paused_at),
        }
    )


@bp.get("/test-connection/<organization_id>")
def test_connection(organization_id):
    """Call Cliniko now and report how it answered (always 200; `success` tells)."""
    org = path_org(organization_id, CLINIKO_CALL_ROLE)
    result = check_connection(org)
    return jsonify(
        {
            "success": result["success"],
            "connection_status": result["connection_status"],
            "api_region": result["api_region"],
            "response_time_ms": result["response_time_ms"],
            "test_timestamp": now_iso(),
            "message": result.get("message") or "",
            "retry_after": result.get("retry_after"),
        }
    )


@bp.post("/import-patients/<organization_id>")
def import_patients(organization_id):
    """Start a full patient import; progress is served under its import_id like any sync."""
    org = path_org(organization_id, "operator")
    run = start_run(org, None, "api", kind="import")
    return jsonify(
        started_json(run, "Patient import started successfully", success=True, import_id=run.sync_id)
    )
