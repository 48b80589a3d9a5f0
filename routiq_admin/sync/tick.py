"""The periodic tick: clean stale runs, refresh activity, fan out scheduled syncs.

The tick only starts runs through `start_sync`, the same path the dashboard button takes.
"""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..errors import AppError
from ..extensions import db
from ..models import Organization, SyncRun, utcnow
from .activity import refresh_activity
from .plan import SETTLED_STATUSES
from .runs import active_run, cleanup_stale, start_sync

log = logging.getLogger(__name__)

MAX_BACKOFF_TICKS = 24


def _consecutive_scheduled_failures(org_id):
    statuses = db.session.execute(
        select(SyncRun.status, SyncRun.created_at)
        .where(
            SyncRun.organization_id == org_id,
            SyncRun.trigger == "scheduled",
            SyncRun.status.in_(SETTLED_STATUSES),
        )
        .order_by(SyncRun.created_at.desc())
        .limit(MAX_BACKOFF_TICKS + 3)
    ).all()
    failures = 0
    for status, _ in statuses:
        if status != "failed":
            break
        failures += 1
    return failures, (statuses[0][1] if statuses else None)


def backing_off(org_id, interval):
    """Tell whether repeated scheduled failures mean this tick skips the organization."""
    failures, last_at = _consecutive_scheduled_failures(org_id)
    if failures < 2 or last_at is None:
        return False
    wait_ticks = min(2 ** (failures - 1), MAX_BACKOFF_TICKS)
    return utcnow() - last_at < interval * (wait_ticks - 0.5)


def needs_full_pass(org_id):
    """Tell whether the organization is due its daily full comprehensive pass."""
    hours = current_app.config["FULL_RESYNC_HOURS"]
    last_full = db.session.execute(
        select(SyncRun.completed_at)
        .where(
            SyncRun.organization_id == org_id,
            SyncRun.status == "completed",
            SyncRun.full.is_(True),
            SyncRun.mode.in_(("comprehensive",)),
        )
        .order_by(SyncRun.completed_at.desc())
        .limit(1)
    ).scalar()
    return last_full is None or utcnow() - last_full >= timedelta(hours=hours)


def tick():
    """Run one scheduler tick; return a summary of what it did."""
    cleaned = cleanup_stale()
    interval = timedelta(minutes=current_app.config["SYNC_INTERVAL_MINUTES"])
    started, skipped = [], []
    orgs = db.session.execute(select(Organization).order_by(Organization.id)).scalars().all()
    for org in orgs:
        refresh_activity(org.id)
        db.session.commit()  # else orgs after the last start_sync lose it when the job's context ends
        if not org.sync_enabled or not org.has_credentials:
            continue
        if active_run(org.id) is not None:
            skipped.append((org.id, "running"))
            continue
        if backing_off(org.id, interval):
            skipped.append((org.id, "backoff"))
            continue
        full = needs_full_pass(org.id) and _has_completed_run(org.id)
        try:
            log.info("Starting automated sync for organization %s", org.id)
            run = start_sync(org, "comprehensive", "scheduled", full=full)
            started.append(run.sync_id)
        except AppError as exc:
            log.warning("scheduled sync for %s not started: %s", org.id, exc.message)
            skipped.append((org.id, exc.error_type))
    return {"cleaned": len(cleaned), "started": started, "skipped": skipped}


def _has_completed_run(org_id):
    # A first sync reads everything anyway; "full" only matters once marks exist.
    return (
        db.session.execute(
            select(SyncRun.id)
            .where(SyncRun.organization_id == org_id, SyncRun.status == "completed")
            .limit(1)
        ).first()
        is not None
    )
