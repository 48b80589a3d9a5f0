"""The periodic tick: clean stale runs, refresh activity, fan out scheduled syncs.

Registered idempotently with rq-scheduler under one fixed job id; the tick only starts runs
through `start_sync`, the same path the dashboard button takes.
"""

import logging
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import select

from ..errors import AppError
from ..extensions import QueueUnavailable, db, get_redis
from ..models import Organization, SyncRun, utcnow

log = logging.getLogger(__name__)

TICK_JOB_ID = "routiq-sync-tick"
TICK_FUNC = "workers.jobs.scheduler_tick"
HEARTBEAT_KEY = "routiq:scheduler:heartbeat"
MAX_BACKOFF_TICKS = 24


def register(scheduler, interval_minutes):
    """Schedule the tick every `interval_minutes`; replace a stale registration; return the job."""
    interval = int(interval_minutes * 60)
    keep = None
    for job in scheduler.get_jobs():
        if job.func_name != TICK_FUNC:
            continue
        if job.id == TICK_JOB_ID and job.meta.get("interval") == interval and keep is None:
            keep = job
        else:
            scheduler.cancel(job)
            job.delete()
    if keep is not None:
        return keep
    return scheduler.schedule(
        scheduled_time=utcnow(),
        func=TICK_FUNC,
        interval=interval,
        repeat=None,
        id=TICK_JOB_ID,
        meta={"interval": interval},
        queue_name=current_app.config["RQ_QUEUE"],
        timeout=600,
        result_ttl=3600,
    )


def beat(conn, poll_seconds):
    """Record that a scheduler process is alive (expires after two poll intervals)."""
    conn.set(HEARTBEAT_KEY, utcnow().isoformat(), ex=max(2, int(2 * poll_seconds)))


def scheduler_active():
    """Tell whether the tick is registered and a scheduler process was seen recently."""
    try:
        conn = get_redis()
        if not conn.exists(HEARTBEAT_KEY):
            return False
        from rq_scheduler import Scheduler

        scheduler = Scheduler(queue_name=current_app.config["RQ_QUEUE"], connection=conn)
        return TICK_JOB_ID in scheduler
    except (redis.RedisError, QueueUnavailable):
        return False


def _consecutive_scheduled_failures(org_id):
    statuses = db.session.execute(
        select(SyncRun.status, SyncRun.created_at)
        .where(
            SyncRun.organization_id == org_id,
            SyncRun.trigger == "scheduled",
            SyncRun.status.in_(("completed", "failed")),
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
    from .activity import refresh_activity
    from .service import active_run, cleanup_stale, start_sync

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
