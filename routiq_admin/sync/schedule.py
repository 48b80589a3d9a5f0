"""rq-scheduler plumbing: register the periodic tick, beat a heartbeat, tell what is scheduled.

Registered idempotently under one fixed job id; what the tick does lives in `tick.py`.
"""

from datetime import UTC, datetime

import redis
from flask import current_app
from rq_scheduler import Scheduler

from ..errors import QueueUnavailable
from ..extensions import get_redis
from ..models import utcnow

TICK_JOB_ID = "routiq-sync-tick"
TICK_FUNC = "workers.jobs.scheduler_tick"
HEARTBEAT_KEY = "routiq:scheduler:heartbeat"


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


def unregister(scheduler):
    """Cancel the periodic tick only: other scheduled jobs (notification retries) stay queued."""
    for job in scheduler.get_jobs():
        if job.func_name == TICK_FUNC:
            scheduler.cancel(job)
            job.delete()


def beat(conn, poll_seconds):
    """Record that a scheduler process is alive (expires after two poll intervals)."""
    conn.set(HEARTBEAT_KEY, utcnow().isoformat(), ex=max(2, int(2 * poll_seconds)))


def scheduler_active():
    """Tell whether the tick is registered and a scheduler process was seen recently."""
    try:
        conn = get_redis()
        if not conn.exists(HEARTBEAT_KEY):
            return False
        scheduler = Scheduler(queue_name=current_app.config["RQ_QUEUE"], connection=conn)
        return TICK_JOB_ID in scheduler
    except (redis.RedisError, QueueUnavailable):
        return False


def scheduler_state():
    """Return {"active": scheduler seen and tick registered, "next_run": when the tick is due (UTC) or None}."""
    active = scheduler_active()
    try:
        score = get_redis().zscore(Scheduler.scheduled_jobs_key, TICK_JOB_ID) if active else None
    except (redis.RedisError, QueueUnavailable):
        score = None
    return {"active": active, "next_run": None if score is None else datetime.fromtimestamp(score, UTC)}
