"""Read models of sync runs for the dashboard and the API: history, health, counts, marks.

Nothing here writes a run; the web and API layers only format what these functions return.
"""

from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import SYNCED_MODELS, Patient, SyncMark, SyncRun, utcnow
from .plan import FINISHED_STATUSES, SETTLED_STATUSES
from .runs import active_run
from .schedule import scheduler_active


def history(org_id, limit=10, offset=0, status=None, trigger=None, mode=None):
    """Return totals over all the organization's runs and one filtered page of runs, newest first."""
    base = select(SyncRun).where(SyncRun.organization_id == org_id)
    finished = SyncRun.status.in_(FINISHED_STATUSES)
    counts = dict(
        db.session.execute(
            select(SyncRun.status, func.count())
            .where(SyncRun.organization_id == org_id)
            .group_by(SyncRun.status)
        ).all()
    )
    last_sync_at = db.session.execute(
        select(func.max(SyncRun.completed_at)).where(SyncRun.organization_id == org_id, finished)
    ).scalar()
    last_success = db.session.execute(
        select(func.max(SyncRun.completed_at)).where(
            SyncRun.organization_id == org_id, SyncRun.status == "completed"
        )
    ).scalar()
    average = db.session.execute(
        select(
            func.avg(
                _seconds_between(func.coalesce(SyncRun.started_at, SyncRun.created_at), SyncRun.completed_at)
            )
        ).where(SyncRun.organization_id == org_id, SyncRun.status == "completed")
    ).scalar()
    page = base
    if status:
        page = page.where(SyncRun.status == status)
    if trigger:
        page = page.where(SyncRun.trigger == trigger)
    if mode:
        page = page.where(SyncRun.mode == mode)
    matching = db.session.execute(select(func.count()).select_from(page.subquery())).scalar()
    runs = list(
        db.session.execute(
            page.order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(limit).offset(offset)
        ).scalars()
    )
    return {
        "total_syncs": sum(counts.values()),
        "successful_syncs": counts.get("completed", 0),
        "failed_syncs": counts.get("failed", 0),
        "cancelled_syncs": counts.get("cancelled", 0),
        "running_syncs": counts.get("starting", 0) + counts.get("running", 0),
        "last_sync_at": last_sync_at,
        "last_successful_sync_at": last_success,
        # Milliseconds first: julianday arithmetic carries sub-millisecond noise.
        "average_sync_duration_seconds": round(round(float(average), 3), 1) if average is not None else 0.0,
        "matching": matching,
        "runs": runs,
    }


def _seconds_between(start, end):
    """Return a SQL expression for the seconds from `start` to `end` on either database."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def recent_failures(org_id, hours=24):
    """Count failed runs that started in the last `hours`."""
    since = utcnow() - timedelta(hours=hours)
    stmt = select(func.count()).where(
        SyncRun.organization_id == org_id, SyncRun.status == "failed", SyncRun.created_at >= since
    )
    return db.session.execute(stmt).scalar()


def sync_status(org):
    """Return healthy, degraded, failing, never_synced or disabled (see design.md)."""
    if not org.sync_enabled:
        return "disabled"
    last_three = (
        db.session.execute(
            select(SyncRun.status)
            .where(SyncRun.organization_id == org.id, SyncRun.status.in_(SETTLED_STATUSES))
            .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
            .limit(3)
        )
        .scalars()
        .all()
    )
    if org.credentials_valid is False or (len(last_three) == 3 and set(last_three) == {"failed"}):
        return "failing"
    last_success = db.session.execute(
        select(func.max(SyncRun.completed_at)).where(
            SyncRun.organization_id == org.id, SyncRun.status == "completed"
        )
    ).scalar()
    if last_success is None:
        return "never_synced"
    interval = timedelta(minutes=current_app.config["SYNC_INTERVAL_MINUTES"])
    if recent_failures(org.id) > 0 or utcnow() - last_success > 2 * interval:
        return "degraded"
    return "healthy"


# The four activity statuses, named so that none reads as "active" (which is any of the first three).
ACTIVITY_LABELS = {
    "active": "Recent and upcoming",
    "recently_active": "Recent only",
    "upcoming_only": "Upcoming only",
    "inactive": "Inactive",
}


def active_patient():
    """Return the SQL condition for an active patient: any activity status but inactive (design.md)."""
    return Patient.activity_status != "inactive"


def patient_counts(org_id):
    """Return (patients not archived, active patients) for an organization."""
    live = (Patient.organization_id == org_id) & Patient.archived_at.is_(None) & Patient.deleted_at.is_(None)
    total = db.session.execute(select(func.count()).where(live)).scalar()
    active = db.session.execute(select(func.count()).where(live, active_patient())).scalar()
    return total, active


def stored_counts(org_id):
    """Return how many rows of each synced entity the organization holds locally."""
    return {
        entity: db.session.execute(select(func.count()).where(model.organization_id == org_id)).scalar()
        for entity, model in SYNCED_MODELS.items()
    }


def org_status(org):
    """Return the organization's sync health as the status endpoints and dashboard show it."""
    hist_last = db.session.execute(
        select(func.max(SyncRun.completed_at)).where(
            SyncRun.organization_id == org.id, SyncRun.status.in_(FINISHED_STATUSES)
        )
    ).scalar()
    total, active = patient_counts(org.id)
    running = active_run(org.id)
    return {
        "sync_running": running is not None,
        "running": running,
        "last_sync_time": hist_last,
        "total_patients": total,
        "active_patients": active,
        "credentials_valid": bool(org.credentials_valid) if org.has_credentials else False,
        "cliniko_connected": bool(org.credentials_valid),
        "sync_status": sync_status(org),
        "scheduler_active": scheduler_active(),
        "failures_24h": recent_failures(org.id),
    }


def find_run(sync_id, org_ids):
    """Return a run by its public id within the given organizations (None = all), or None."""
    stmt = select(SyncRun).where(SyncRun.sync_id == sync_id)
    if org_ids is not None:
        stmt = stmt.where(SyncRun.organization_id.in_(list(org_ids)))
    return db.session.execute(stmt).scalar_one_or_none()


def last_finished_run(org_id, statuses=FINISHED_STATUSES, mode=None):
    """Return the organization's most recent run that ended in one of `statuses`, or None."""
    stmt = select(SyncRun).where(SyncRun.organization_id == org_id, SyncRun.status.in_(statuses))
    if mode is not None:
        stmt = stmt.where(SyncRun.mode == mode)
    stmt = stmt.order_by(SyncRun.created_at.desc(), SyncRun.id.desc()).limit(1)
    return db.session.execute(stmt).scalar_one_or_none()


def latest_run(org_id):
    """Return the organization's active run, else its most recent one, or None."""
    stmt = (
        select(SyncRun)
        .where(SyncRun.organization_id == org_id)
        .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
        .limit(1)
    )
    return active_run(org_id) or db.session.execute(stmt).scalar_one_or_none()


def sync_marks(org_id):
    """Return the organization's high-water marks by entity (freshness per entity)."""
    stmt = select(SyncMark).where(SyncMark.organization_id == org_id)
    return {mark.entity: mark for mark in db.session.execute(stmt).scalars()}
