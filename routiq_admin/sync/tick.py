"""The periodic tick: clean stale runs, start the organizations whose schedule is due, oldest first.

The tick only starts runs through `start_sync`, the same path the dashboard button takes. Its
cost is bounded: two indexed queries and at most SCHEDULER_MAX_STARTS_PER_TICK starts; the
activity refresh ("now" moved) runs in a job of its own, at most every ACTIVITY_REFRESH_MINUTES.
"""

import logging

import redis
from flask import current_app
from sqlalchemy import and_, case, exists, func, select

from ..errors import AppError, QueueUnavailable
from ..extensions import db, get_queue, get_redis
from ..models import Organization, SyncRun, utcnow
from .activity import clock_margin, refresh_activity
from .cadence import advance
from .plan import ACTIVE_STATUSES
from .runs import active_run, cleanup_stale, start_sync

log = logging.getLogger(__name__)

ACTIVITY_JOB_ID = "routiq-activity-refresh"
ACTIVITY_FUNC = "workers.jobs.refresh_activity"
ACTIVITY_LOCK_KEY = "routiq:scheduler:activity"
# How many busy (due, but running) organizations a tick lists in its summary.
SKIPPED_LISTED = 100


def _due_at():
    org = Organization
    regular = func.coalesce(org.next_run_at, org.created_at)
    return case(
        (and_(org.next_full_at.is_not(None), org.next_full_at < regular), org.next_full_at), else_=regular
    )


def _due(now):
    org = Organization
    running = exists().where(SyncRun.organization_id == org.id, SyncRun.status.in_(ACTIVE_STATUSES))
    return running, [
        org.sync_enabled.is_(True),
        org.cliniko_api_key_encrypted.is_not(None),
        org.paused_at.is_(None),
        (org.next_run_at.is_(None)) | (org.next_run_at <= now) | (org.next_full_at <= now),
    ]


def due_organizations(now, limit):
    """Return up to `limit` organizations due a scheduled start and not running, oldest due first."""
    running, where = _due(now)
    stmt = select(Organization).where(*where, ~running).order_by(_due_at(), Organization.id).limit(limit)
    return db.session.execute(stmt).scalars().all()


def _busy(now):
    running, where = _due(now)
    stmt = select(Organization.id).where(*where, running).order_by(Organization.id).limit(SKIPPED_LISTED)
    return db.session.execute(stmt).scalars().all()


def _has_completed_run(org_id):
    # A first sync reads everything anyway; "full" only matters once marks exist.
    stmt = select(SyncRun.id).where(SyncRun.organization_id == org_id, SyncRun.status == "completed").limit(1)
    return db.session.execute(stmt).first() is not None


def start_due(org, now):
    """Start one due organization's scheduled run (full when its daily pass is due); advance its schedule."""
    full = org.next_full_at is not None and org.next_full_at <= now and _has_completed_run(org.id)
    before = org.next_run_at, org.next_full_at
    advance(org, now)  # committed with the run row: one commit per start
    log.info("Starting automated sync for organization %s", org.id)
    try:
        return start_sync(org, "comprehensive", "scheduled", full=full)
    except AppError:
        db.session.rollback()
        org.next_run_at, org.next_full_at = before  # not started: the next tick retries
        db.session.commit()
        raise


def tick(now=None):
    """Run one scheduler tick; return a summary of what it did."""
    cleaned = cleanup_stale()
    now = now or utcnow()  # after the cleanup: a run it failed is due again at once (first failure)
    started, skipped = [], [(org_id, "running") for org_id in _busy(now)]
    for org in due_organizations(now, current_app.config["SCHEDULER_MAX_STARTS_PER_TICK"]):
        try:
            started.append(start_due(org, now).sync_id)
        except AppError as exc:
            log.warning("scheduled sync for %s not started: %s", org.id, exc.message)
            skipped.append((org.id, exc.error_type))
    activity = _enqueue_activity_refresh()
    return {"cleaned": len(cleaned), "started": started, "skipped": skipped, "activity_refresh": activity}


def _enqueue_activity_refresh():
    """Enqueue the activity refresh job when the last one is older than ACTIVITY_REFRESH_MINUTES."""
    seconds = max(1, int(current_app.config["ACTIVITY_REFRESH_MINUTES"] * 60))
    try:
        if not get_redis().set(ACTIVITY_LOCK_KEY, utcnow().isoformat(), nx=True, ex=seconds):
            return False
        get_queue().enqueue(ACTIVITY_FUNC, job_id=ACTIVITY_JOB_ID, job_timeout=3600, result_ttl=3600)
        return True
    except (redis.RedisError, QueueUnavailable):
        return False


def _run_since(org_id, since):
    """Return whether the organization has a run in progress or created since `since`."""
    stmt = select(SyncRun.id).where(
        SyncRun.organization_id == org_id,
        SyncRun.status.in_(ACTIVE_STATUSES) | (SyncRun.created_at >= since - clock_margin()),
    )
    return db.session.execute(stmt.limit(1)).first() is not None


def refresh_idle_activity():
    """Recompute activity for every organization without a run in progress (a run refreshes its own)."""
    org_ids = db.session.execute(select(Organization.id).order_by(Organization.id)).scalars().all()
    refreshed = 0
    for org_id in org_ids:
        checked = utcnow()
        if active_run(org_id) is not None:
            continue
        refresh_activity(org_id)  # mostly the window edges: what "now" moving changed
        if _run_since(org_id, checked):
            # A run started meanwhile and may have written rows this pass did not see, yet
            # before the time it records; the run computes activity itself at its end.
            db.session.rollback()
            continue
        db.session.commit()
        refreshed += 1
    return refreshed
