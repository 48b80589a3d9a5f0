"""Sync controls, the live progress widget, run pages and the history table."""

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for

from ..auth import require_principal
from ..cliniko.errors import CredentialsNotFound
from ..errors import AppError, QueueUnavailable, SyncAlreadyRunning, ValidationError
from ..models import utcnow
from ..sync import events, plan, runs
from ..sync import status as run_status
from .common import (
    MODE_LABELS,
    TRIGGER_LABELS,
    can,
    filter_status,
    is_htmx,
    org_context,
    org_zone,
    page_number,
)
from .forms import HistoryFilterForm

bp = Blueprint("syncs", __name__, url_prefix="/orgs/<org_id>/syncs")

HISTORY_PER_PAGE = 10


def progress_context(org, role, run, widget="panel", notice=None):
    """Build what syncs/_progress.html needs for the org panel or a run page."""
    active = bool(run and run.is_active)
    if widget == "panel":
        poll_url = url_for("syncs.panel", org_id=org.id, watching=run.sync_id) if active else None
        refresh_url = url_for("syncs.panel", org_id=org.id)
    else:
        poll_url = (
            url_for("syncs.progress", org_id=org.id, sync_id=run.sync_id, watching=1) if active else None
        )
        refresh_url = None
    now = utcnow()
    waiting = None
    if active and run.rate_limited_until and run.rate_limited_until > now:
        waiting = max(1, int((run.rate_limited_until - now).total_seconds() + 0.999))
    return {
        "org": org,
        "run": run,
        "widget": widget,
        "poll_url": poll_url,
        "refresh_url": refresh_url,
        "can_operate": can(role, "operator"),
        "notice": notice,
        "tz": org_zone(org),
        "now": now,
        "waiting": waiting,
        "percent": _percent(run),
        "eta": _eta(run, now) if active else None,
        "steps": plan.STEPS.get(run.mode, ()) if run else (),
    }


def _percent(run):
    if run is None:
        return 0.0
    if run.status == "completed":
        return 100.0
    return round(max(0.0, min(100.0, run.progress_percentage or 0.0)), 1)


def _eta(run, now):
    if run.estimated_completion is None or run.status != "running":
        return None
    return {
        "at": run.estimated_completion,
        "seconds": max(0, (run.estimated_completion - now).total_seconds()),
    }


def _fragment(template, context, trigger=None, announce=None):
    html = render_template(template, p=context)
    if announce:
        html += render_template("syncs/_announce.html", message=announce)
    response = make_response(html)
    if trigger:
        response.headers["HX-Trigger"] = trigger
    return response


def history_context(org, role):
    """Build the history table's context from the query string (filters and page)."""
    form = HistoryFilterForm(
        {s: s for s in plan.STATUSES},
        {t: TRIGGER_LABELS.get(t, t) for t in plan.TRIGGERS},
        {**{m: MODE_LABELS.get(m, m) for m in plan.MODES}, plan.IMPORT_MODE: "Patient import"},
    )
    valid = form.validate()
    filters = {
        name: "" if form[name].errors else form[name].data or "" for name in ("status", "trigger", "mode")
    }

    def fetch(page):
        offset = (page - 1) * HISTORY_PER_PAGE
        query = {k: v or None for k, v in filters.items()}
        return run_status.history(org.id, limit=HISTORY_PER_PAGE, offset=offset, **query)

    page = page_number()
    data = fetch(page)
    pages = max(1, -(-data["matching"] // HISTORY_PER_PAGE))
    if page > pages:  # past the end: the last page
        page = pages
        data = fetch(page)
    return {
        "org": org,
        "role": role,
        "tz": org_zone(org),
        "data": data,
        "form": form,
        "valid": valid,
        "filters": filters,
        "active_filters": {k: v for k, v in filters.items() if v},
        "page": page,
        "pages": pages,
    }


def _run_or_404(org, sync_id):
    run = run_status.find_run(sync_id, [org.id])
    if run is None:
        abort(404)
    return run


def _finished_message(run):
    return f"Sync {run.status}." if run else "Sync finished."


@bp.post("")
def start(org_id):
    """Start a sync or a patient import; a start while one is running shows that run."""
    org, role = org_context(org_id, "operator")
    user = require_principal().user
    kind = "import" if request.form.get("kind") == "import" else "sync"
    mode = request.form.get("mode") or "comprehensive"
    full = request.form.get("full") in ("1", "on", "true", "y")
    run, notice, started = None, None, False
    try:
        if kind == "import":
            run = runs.start_import(org, "manual", user=user)
        else:
            run = runs.start_sync(org, mode, "manual", user=user, full=full)
        started = True
    except SyncAlreadyRunning as exc:
        run = run_status.find_run(exc.extra.get("sync_id"), [org.id]) or runs.active_run(org.id)
        notice = ("info", "A sync is already running for this organization; showing it.")
    except (CredentialsNotFound, ValidationError, QueueUnavailable) as exc:
        notice = ("error", exc.message)
    if not is_htmx():
        if notice:
            flash(notice[1], notice[0])
        elif started:
            flash(f"{'Import' if kind == 'import' else 'Sync'} {run.sync_id} started.", "info")
        return redirect(url_for("orgs.show", org_id=org.id))
    context = progress_context(org, role, run or run_status.latest_run(org.id), notice=notice)
    if started:
        what = "Patient import" if kind == "import" else "Sync"
        return _fragment("syncs/_progress.html", context, trigger="sync-started", announce=f"{what} started.")
    return _fragment("syncs/_progress.html", context)


@bp.get("/panel")
def panel(org_id):
    """Return the live progress panel: the running sync, else the latest one."""
    org, role = org_context(org_id)
    if not is_htmx():
        return redirect(url_for("orgs.show", org_id=org.id))
    run = run_status.latest_run(org.id)
    context = progress_context(org, role, run)
    watching = request.args.get("watching")
    if watching and not (run and run.is_active and run.sync_id == watching):
        watched = run_status.find_run(watching, [org.id])
        return _fragment(
            "syncs/_progress.html", context, trigger="sync-finished", announce=_finished_message(watched)
        )
    return _fragment("syncs/_progress.html", context)


@bp.get("")
def history(org_id):
    """Show the sync history (a fragment for htmx, else a page of its own)."""
    org, role = org_context(org_id)
    context = history_context(org, role)
    html = render_template(
        "syncs/_history.html" if is_htmx() else "syncs/history.html", h=context, org=org, role=role
    )
    return html, filter_status(context["valid"])


@bp.get("/<sync_id>")
def show(org_id, sync_id):
    """Show one run: counts, requests, waits, errors, who triggered it, timings."""
    org, role = org_context(org_id)
    run = _run_or_404(org, sync_id)
    context = {"org": org, "role": role, "run": run, "tz": org_zone(org), "events": events.for_run(run)}
    if is_htmx():
        return render_template("syncs/_run_details.html", **context)
    return render_template("syncs/show.html", p=progress_context(org, role, run, widget="run"), **context)


@bp.get("/<sync_id>/timeline")
def timeline(org_id, sync_id):
    """Return one run's event timeline (polled while the run is active)."""
    org, _ = org_context(org_id)
    run = _run_or_404(org, sync_id)
    if not is_htmx():
        return redirect(url_for("syncs.show", org_id=org.id, sync_id=run.sync_id))
    return render_template(
        "syncs/_timeline.html", org=org, run=run, tz=org_zone(org), events=events.for_run(run)
    )


@bp.get("/<sync_id>/progress")
def progress(org_id, sync_id):
    """Return one run's progress widget (polled while the run is active)."""
    org, role = org_context(org_id)
    run = _run_or_404(org, sync_id)
    if not is_htmx():
        return redirect(url_for("syncs.show", org_id=org.id, sync_id=run.sync_id))
    context = progress_context(org, role, run, widget="run")
    if request.args.get("watching") and not run.is_active:
        return _fragment(
            "syncs/_progress.html", context, trigger="sync-finished", announce=_finished_message(run)
        )
    return _fragment("syncs/_progress.html", context)


@bp.post("/<sync_id>/cancel")
def cancel(org_id, sync_id):
    """Cancel a run (a running one stops after its current page)."""
    org, role = org_context(org_id, "operator")
    run = _run_or_404(org, sync_id)
    widget = "run" if request.form.get("widget") == "run" else "panel"
    try:
        runs.cancel_run(run)
        notice = ("info", "Cancelled." if run.status == "cancelled" else "Cancelling after the current page…")
    except AppError as exc:
        if exc.error_type != "sync_not_active":
            raise
        notice = ("info", f"This sync already finished ({run.status}).")
    if not is_htmx():
        flash(notice[1], notice[0])
        if widget == "run":
            return redirect(url_for("syncs.show", org_id=org.id, sync_id=run.sync_id))
        return redirect(url_for("orgs.show", org_id=org.id))
    context = progress_context(org, role, run, widget=widget, notice=notice)
    if not run.is_active:
        return _fragment(
            "syncs/_progress.html", context, trigger="sync-finished", announce=_finished_message(run)
        )
    return _fragment("syncs/_progress.html", context)


@bp.post("/<sync_id>/retry")
def retry(org_id, sync_id):
    """Start a failed or cancelled run again (same mode and full flag); show the new run."""
    org, _ = org_context(org_id, "operator")
    run = _run_or_404(org, sync_id)
    try:
        new = runs.retry_run(run, "manual", user=require_principal().user)
    except SyncAlreadyRunning as exc:
        flash("A sync is already running for this organization; showing it.", "info")
        running = run_status.find_run(exc.extra.get("sync_id"), [org.id]) or runs.active_run(org.id) or run
        return redirect(url_for("syncs.show", org_id=org.id, sync_id=running.sync_id))
    except AppError as exc:
        if exc.http_status >= 500 and exc.error_type != "queue_unavailable":
            raise
        flash(exc.message, "error")
        return redirect(url_for("syncs.show", org_id=org.id, sync_id=run.sync_id))
    flash(f"Retrying: {new.sync_id} started ({new.mode}{', full' if new.full else ''}).", "info")
    return redirect(url_for("syncs.show", org_id=org.id, sync_id=new.sync_id))
