"""Organizations list and the organization page (connection, controls, health, freshness)."""

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..auth import CLINIKO_CALL_ROLE, require_principal
from ..sync import cadence, plan, records, runs
from ..sync import status as run_status
from ..sync.connection import check_connection
from . import charts
from .common import choice, is_htmx, localtime, org_context, org_zone, org_zones, page_number, paginate
from .syncs import history_context, progress_context

bp = Blueprint("orgs", __name__)

ENTITY_LABELS = {
    "patients": "Patients",
    "appointments": "Appointments",
    "businesses": "Businesses",
    "practitioners": "Practitioners",
    "appointment_types": "Appointment types",
}
FAILURE_ALERT, SLOW_ALERT_SECONDS = 2, 600


def mini_context(org):
    """Build the live mini status of one organization (list row); no Redis call."""
    run = runs.active_run(org.id)
    percent = round(run.progress_percentage or 0, 1) if run else 0
    return {"org": org, "run": run, "percent": percent, "sync_status": run_status.sync_status(org)}


FLEET_PER_PAGE = 50
STATE_LABELS = {
    "failing": "Failing",
    "paused": "Paused",
    "stale": "Stale",
    "running": "Running",
    "never_synced": "Never synced",
}
SORT_LABELS = {
    "name": "Name",
    "last_success": "Last success (oldest first)",
    "failures": "Failures (most first)",
}


@bp.get("/")
def index():
    """The fleet view: the caller's organizations, searched, filtered by state, sorted and paged."""
    principal = require_principal()
    q = request.args.get("q", "").strip()[:100]
    state = choice("state", run_status.FLEET_STATES)
    sort = choice("sort", run_status.FLEET_SORTS) or "name"
    scope = principal.visible_org_ids()
    page = paginate(
        run_status.fleet_query(scope, q=q, state=state, sort=sort),
        page_number(),
        FLEET_PER_PAGE,
        scalars=False,
    )
    page_ids = [item.Organization.id for item in page.items]
    patients = records.patient_counts_by_org(page_ids)
    last = run_status.last_finished_runs(page_ids)
    zones = org_zones([item.Organization for item in page.items])
    rows = []
    for item in page.items:
        org = item.Organization
        total, active = patients.get(org.id, (0, 0))
        run = runs.active_run(org.id) if item.running else None
        rows.append(
            {
                "org": org,
                "run": run,
                "percent": round(run.progress_percentage or 0, 1) if run else 0,
                "sync_status": run_status.health(org, item),
                "role": principal.role_in(org.id),
                "last": last.get(org.id),
                "last_success_at": item.last_success_at,
                "failures": item.failures,
                "states": [name for name in run_status.FLEET_STATES if getattr(item, name)],
                "total_patients": total,
                "active_patients": active,
                "tz": zones[org.id],
            }
        )
    context = {
        "rows": rows,
        "page": page,
        "counts": run_status.fleet_counts(scope),
        "filters": {"q": q, "state": state, "sort": sort if sort != "name" else ""},
        "state_labels": STATE_LABELS,
        "sort_labels": SORT_LABELS,
        "principal": principal,
    }
    return render_template("orgs/_fleet.html" if is_htmx() else "orgs/index.html", **context)


@bp.get("/orgs/<org_id>/status")
def status(org_id):
    """Return an organization's live mini status (polled while a run is active)."""
    org, _ = org_context(org_id)
    if not is_htmx():
        return redirect(url_for("orgs.show", org_id=org.id))
    return render_template("orgs/_status.html", **mini_context(org))


def summary_context(org):
    """Build health, freshness and the recent-runs chart."""
    tz = org_zone(org)
    data = run_status.history(org.id, limit=20)
    finished = [r for r in reversed(data["runs"]) if not r.is_active]
    failures = run_status.recent_failures(org.id)
    average = data["average_sync_duration_seconds"]
    alerts = []
    if failures > FAILURE_ALERT:
        alerts.append(f"High failure rate: {failures} failures in last 24h")
    if average > SLOW_ALERT_SECONDS:
        alerts.append(f"Slow sync performance: {average}s average")
    fresh = run_status.freshness(org.id)
    freshness = [{"label": label, **fresh[entity]} for entity, label in ENTITY_LABELS.items()]
    return {
        "org": org,
        "tz": tz,
        "hist": data,
        "failures": failures,
        "average": average,
        "alerts": alerts,
        "freshness": freshness,
        "chart": charts.run_chart(finished, tz, localtime),
        "sync_status": run_status.sync_status(org),
    }


@bp.get("/orgs/<org_id>/summary")
def summary(org_id):
    """Return health, freshness and the chart (refreshed when a run finishes)."""
    org, _ = org_context(org_id)
    if not is_htmx():
        return redirect(url_for("orgs.show", org_id=org.id))
    return render_template("orgs/_summary.html", s=summary_context(org))


@bp.get("/orgs/<org_id>")
def show(org_id):
    """Show one organization: connection, controls, live progress, health, history."""
    org, role = org_context(org_id)
    return render_template(
        "orgs/show.html",
        org=org,
        role=role,
        tz=org_zone(org),
        modes=plan.MODES,
        p=progress_context(org, role, run_status.latest_run(org.id)),
        s=summary_context(org),
        h=history_context(org, role),
        connection=None,
        schedule_text=cadence.schedule_of(org).describe(),
    )


@bp.get("/orgs/<org_id>/connection")
def connection(org_id):
    """Return the connection card (refreshed when a run finishes: runs record credential checks)."""
    org, role = org_context(org_id)
    if not is_htmx():
        return redirect(url_for("orgs.show", org_id=org.id))
    return render_template("orgs/_connection.html", org=org, role=role, tz=org_zone(org), connection=None)


@bp.post("/orgs/<org_id>/test-connection")
def test_connection(org_id):
    """Call Cliniko now and show the outcome inline (with the response time)."""
    org, role = org_context(org_id, CLINIKO_CALL_ROLE)
    result = check_connection(org)
    if not is_htmx():
        ok = result["success"]
        ms = f" in {result['response_time_ms']} ms" if result.get("response_time_ms") is not None else ""
        flash(
            f"Connection {result['connection_status']}{ms}: {result.get('message', '')}",
            "info" if ok else "error",
        )
        return redirect(url_for("orgs.show", org_id=org.id))
    return render_template("orgs/_connection.html", org=org, role=role, tz=org_zone(org), connection=result)
