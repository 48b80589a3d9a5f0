"""The clinic's schedule on the Settings page (form, next-runs preview), Resume, and "next run in …"."""

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..auth import require_person
from ..extensions import db
from ..models import utcnow
from ..sync import cadence, schedule
from .common import localtime, org_context, org_zone, reltime, zone_cache
from .common import zone as zone_info
from .forms import ScheduleForm

bp = Blueprint("schedule", __name__, url_prefix="/orgs/<org_id>")

ZONE_SOURCES = {
    "setting": "set here",
    "cliniko": "the zone Cliniko gives the clinic's business",
    "default": "no zone set here and none from Cliniko yet",
}


def _preview(org, form):
    """Return (next five run times, their zone, error) for the schedule the form describes."""
    zone = form.time_zone.data or cadence.business_zone_name(org.id) or "UTC"
    zone = zone if cadence.valid_zone(zone) else "UTC"
    if form.errors:
        return [], zone, None
    cron = form.cron.data if form.kind.data == "cron" else None
    try:
        sched = cadence.Schedule(
            every_minutes=form.every_minutes.data or cadence.schedule_of(org).every_minutes,
            cron=cron,
            quiet_start=cadence.parse_hhmm(form.quiet_start.data) if form.quiet_start.data else None,
            quiet_end=cadence.parse_hhmm(form.quiet_end.data) if form.quiet_end.data else None,
            quiet_weekdays_only=bool(form.quiet_weekdays_only.data),
            full_at=cadence.parse_hhmm(form.full_sync_at.data or cadence.DEFAULT_FULL_AT),
            zone=zone,
        )
        return cadence.preview(sched, utcnow()), zone, None
    except ValueError as exc:
        return [], zone, str(exc)


def schedule_context(org, form=None):
    """Build what settings/_schedule.html needs: the form, the zone in use and why, the preview."""
    form = form or ScheduleForm.of(org)
    sched = cadence.schedule_of(org)
    times, zone, error = _preview(org, form)
    tz = org_zone(org)
    return {
        "form": form,
        "zone": cadence.zone_name(org),
        "zone_source": ZONE_SOURCES[cadence.zone_source(org)],
        "business_zone": cadence.business_zone_name(org.id),
        "describe": sched.describe(),
        "preview_zone": zone,
        "preview": [localtime(t, zone_info(zone), "%a %d %b %Y %H:%M") for t in times],
        "preview_error": error,
        "next_full": localtime(org.next_full_at, tz) if org.next_full_at else None,
    }


def save_schedule(org, form):
    """Apply a valid ScheduleForm, recompute the next run from now, commit; return the message to flash."""
    form.apply(org)
    cadence.reschedule(org)
    db.session.commit()
    zone_cache().clear()  # the zone may have changed
    state = "on" if org.sync_enabled else "off"
    tz = org_zone(org)
    return f"Scheduled sync {state}: {cadence.schedule_of(org).describe()}; next run {localtime(org.next_run_at, tz)}."


@bp.get("/settings/schedule/preview")
def preview(org_id):
    """Return the next five run times for the schedule being typed (htmx), or why it is unusable."""
    org = require_person(org_id, "admin")
    form = ScheduleForm(formdata=request.args, meta={"csrf": False})
    form.validate()
    context = schedule_context(org, form)
    return render_template("settings/_schedule_preview.html", s=context)


@bp.post("/resume")
def resume(org_id):
    """Resume a paused clinic's scheduled syncs (operators); the next tick starts it."""
    org, _ = org_context(org_id, "operator")
    if org.paused_at is not None:
        cadence.resume(org)
        db.session.commit()
        flash("Scheduled syncs resumed: the next scheduler tick starts a sync.", "info")
    if request.form.get("back") == "list":
        return redirect(url_for("orgs.index"))
    return redirect(url_for("orgs.show", org_id=org.id))


def next_scheduled(org):
    """Return (why there is no next run, None) or (None, when the scheduler next starts the organization)."""
    if not org.sync_enabled:
        return "Sync off", None
    if not org.has_credentials:
        return "No Cliniko key", None
    if org.paused_at is not None:
        return "Paused", None
    if "_scheduler_state" not in g:
        g._scheduler_state = schedule.scheduler_state()
    state = g._scheduler_state
    if not state["active"] or state["next_run"] is None:
        return "Scheduler not running", None
    now = utcnow()
    due = min((t for t in (org.next_run_at, org.next_full_at) if t is not None), default=now)
    # The tick starts a due clinic at its next pass (every SCHEDULER_TICK_SECONDS).
    return None, max(due, state["next_run"], now)


def next_run_text(org):
    """Return "in 12 min", "due now" or why there is no next run (for badges)."""
    reason, at = next_scheduled(org)
    return reason or reltime(at)
