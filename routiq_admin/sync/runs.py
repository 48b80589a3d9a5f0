"""Create, start, cancel and clean up sync runs: every write to a run outside the engine.

One code path for every caller (dashboard, API, scheduler, CLI).
"""

import logging
from datetime import timedelta

import redis
from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import notify
from ..cliniko.errors import CredentialsNotFound
from ..errors import AppError, QueueUnavailable, SyncAlreadyRunning, SyncNotActive, ValidationError
from ..extensions import db, get_queue, get_redis
from ..models import Organization, SyncRun, utcnow
from . import events
from .cadence import record_outcome
from .engine import error_entry
from .plan import ACTIVE_STATUSES, IMPORT_MODE, MODES, STEPS, TRIGGERS, is_cli_job

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = ("failed", "cancelled")
# An RQ job that vanished this soon after its row was committed may still be on its way in.
JOB_GRACE = timedelta(seconds=30)
# The current_step cleanup leaves on a run it failed (the metrics count these).
STALE_STEP = "Failed (stale)"


def validate_mode(mode):
    """Return the mode if it is one of the four, else raise a 422."""
    if mode not in MODES:
        raise ValidationError(f"Unknown sync mode {mode!r}; use one of {', '.join(MODES)}", field="sync_mode")
    return mode


def _run_id(kind, org_id, now, attempt):
    base = f"{'import' if kind == 'import' else 'sync'}_{org_id}_{now:%Y%m%d_%H%M%S}"
    return base if attempt == 0 else f"{base}_{attempt + 1}"


def active_run(org_id):
    """Return the organization's starting/running run, or None."""
    stmt = select(SyncRun).where(SyncRun.organization_id == org_id, SyncRun.status.in_(ACTIVE_STATUSES))
    return db.session.execute(stmt).scalar_one_or_none()


def create_run(
    org,
    *,
    kind="sync",
    mode="comprehensive",
    trigger="manual",
    full=False,
    user=None,
    label=None,
    job_id=None,
):
    """Commit a `starting` run row (no job yet); SyncAlreadyRunning if one is active."""
    now = utcnow()
    for attempt in range(20):
        sync_id = _run_id(kind, org.id, now, attempt)
        run = SyncRun(
            sync_id=sync_id,
            organization_id=org.id,
            kind=kind,
            mode=mode,
            trigger=trigger,
            full=full,
            status="starting",
            total_steps=len(STEPS[mode]),
            current_step="Queued",
            current_operation="Waiting for a worker",
            triggered_by_id=user.id if user else None,
            triggered_by_label=label or (user.email if user else trigger),
            job_id=job_id or sync_id,
            created_at=now,
            errors=[],
            entity_counts={},
            run_metadata={},
        )
        db.session.add(run)
        try:
            db.session.commit()
            return run
        except IntegrityError:
            db.session.rollback()
            running = active_run(org.id)
            if running is not None:
                raise SyncAlreadyRunning(
                    f"A sync is already running for {org.id}", sync_id=running.sync_id
                ) from None
    raise AppError("Could not allocate a sync id", error_type="internal_error")


def start_sync(org, mode="comprehensive", trigger="manual", user=None, full=False, kind="sync", label=None):
    """Commit a `starting` run, then enqueue its job; return the run.

    The database refuses a second active run per organization; Redis down deletes the row.
    """
    if kind == "import":
        mode, full = IMPORT_MODE, True
    else:
        validate_mode(mode)
    if trigger not in TRIGGERS:
        raise ValidationError(f"Unknown trigger {trigger!r}")
    if not org.has_credentials:
        raise CredentialsNotFound(f"Organization {org.id} has no Cliniko API key configured")
    run = create_run(org, kind=kind, mode=mode, trigger=trigger, full=full, user=user, label=label)
    try:
        get_queue().enqueue(
            "workers.jobs.run_sync",
            run.id,
            job_id=run.job_id,
            job_timeout=current_app.config["SYNC_JOB_TIMEOUT_SECONDS"],
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            description=f"{kind} {run.sync_id}",
        )
    except (redis.RedisError, QueueUnavailable, OSError):
        log.warning("queue unavailable: removing run %s", run.sync_id)
        db.session.delete(run)
        db.session.commit()
        raise QueueUnavailable("The job queue (Redis) is unavailable; nothing was started") from None
    log.info("Starting %s %s for organization %s (%s, %s)", kind, run.sync_id, org.id, mode, trigger)
    return run


def start_import(org, trigger="manual", user=None, label=None):
    """Start a full patient import (kind=import); it takes the organization's one active slot."""
    return start_sync(org, IMPORT_MODE, trigger, user=user, full=True, kind="import", label=label)


def _compare_and_set(run, expected, **values):
    """Update the run only if its row still shows `expected` (column: value); tell whether it did.

    Workers, cleanup and people change runs concurrently: a decision made on a stale copy
    of the row must not overwrite what happened meanwhile.
    """
    stmt = update(SyncRun).where(SyncRun.id == run.id)
    for column, value in expected.items():
        stmt = stmt.where(getattr(SyncRun, column).is_not_distinct_from(value))
    done = db.session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    db.session.refresh(run)
    return done == 1


def cancel_run(run):
    """Cancel a run: a `starting` one at once, a `running` one at its next page; 409 if finished."""
    now = utcnow()
    if _compare_and_set(
        run,
        {"status": "starting"},
        status="cancelled",
        completed_at=now,
        current_step="Cancelled",
        current_operation=None,
    ):
        try:
            Job.fetch(run.job_id, connection=get_redis()).cancel()
        except (NoSuchJobError, redis.RedisError, QueueUnavailable):
            pass  # the job exits on its own when it sees the row is no longer `starting`
        return run
    if _compare_and_set(
        run,
        {"status": "running"},
        cancel_requested=True,
        current_operation="Cancelling after the current page",
    ):
        return run
    raise SyncNotActive(f"Sync {run.sync_id} already finished ({run.status})", status=run.status)


def _job_lost(run, conn, now):
    if conn is None or not run.job_id or is_cli_job(run.job_id):
        return False
    if now - run.created_at < JOB_GRACE:
        return False
    try:
        job = Job.fetch(run.job_id, connection=conn)
    except NoSuchJobError:
        return True
    return job.get_status(refresh=False) in ("failed", "stopped", "canceled")


def cleanup_stale(org_ids=None):
    """Mark stale starting/running runs failed and return them (heartbeat too old, or job gone)."""
    now = utcnow()
    threshold = now - timedelta(minutes=current_app.config["STALE_SYNC_MINUTES"])
    stmt = select(SyncRun).where(SyncRun.status.in_(ACTIVE_STATUSES))
    if org_ids is not None:
        stmt = stmt.where(SyncRun.organization_id.in_(list(org_ids)))
    try:
        conn = get_redis()
        conn.ping()
    except (redis.RedisError, QueueUnavailable):
        conn = None
    cleaned = []
    for run in db.session.execute(stmt).scalars().all():
        last_sign = run.heartbeat_at or run.started_at or run.created_at
        # A `starting` run has no heartbeat yet: it may wait in the queue behind busy workers,
        # so only a lost job makes it stale (design.md), never its age.
        if run.status == "running" and last_sign < threshold:
            reason = f"No heartbeat since {last_sign:%Y-%m-%d %H:%M:%S} UTC; the worker was lost"
        elif _job_lost(run, conn, now):
            reason = "The worker job for this sync is gone or failed"
        else:
            continue
        seen = {"status": run.status, "heartbeat_at": run.heartbeat_at}
        if _compare_and_set(
            run,
            seen,
            status="failed",
            completed_at=now,
            current_step=STALE_STEP,
            current_operation=None,
            errors=[*(run.errors or []), error_entry("internal_error", "SYNC_STALE", reason)],
        ):
            log.warning("cleaned up stale sync %s: %s", run.sync_id, reason)
            events.append(run, "error", reason, error_type="internal_error", error_code="SYNC_STALE")
            notify.run_finished(run, outcome=record_outcome(run))
            cleaned.append(run)
    events.prune(org_ids)
    db.session.commit()
    return cleaned


def retry_run(run, trigger="manual", user=None, label=None):
    """Start a failed or cancelled run again (same kind, mode and `full` flag); 409 otherwise."""
    if run.is_active:
        raise SyncAlreadyRunning(f"Sync {run.sync_id} is still {run.status}", sync_id=run.sync_id)
    if run.status not in RETRYABLE_STATUSES:
        raise SyncNotActive(
            f"Sync {run.sync_id} completed; only failed or cancelled runs are retried",
            error_code="SYNC_COMPLETED",
            status=run.status,
        )
    org = db.session.get(Organization, run.organization_id)
    if run.kind == "import":
        return start_import(org, trigger, user=user, label=label)
    return start_sync(org, run.mode, trigger, user=user, full=run.full, label=label)
