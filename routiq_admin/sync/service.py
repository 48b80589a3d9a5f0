"""Start, cancel and clean up sync runs, and read their history and health.

One code path for every caller (dashboard, API, scheduler, CLI); the web and API layers only
format what these functions return.
"""

import logging
from datetime import timedelta

import redis
from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..config import SYNC_MODES
from ..errors import AppError, SyncAlreadyRunning, SyncNotActive, ValidationError
from ..extensions import QueueUnavailable, db, get_queue, get_redis
from ..models import ACTIVE_STATUSES, SYNCED_MODELS, Patient, SyncRun, utcnow

log = logging.getLogger(__name__)

IMPORT_MODE = "import"
TRIGGERS = ("manual", "scheduled", "api")
STATUSES = ("starting", "running", "completed", "failed", "cancelled")
# Each mode's steps: (engine method suffix, label shown as current_step).
STEP_PLAN = {
    "comprehensive": (
        ("reference", "Syncing reference data"),
        ("patients", "Processing patients"),
        ("appointments", "Processing appointments"),
        ("activity", "Updating patient activity"),
    ),
    "basic": (
        ("patients", "Processing patients"),
        ("window_appointments", "Processing appointments"),
        ("activity", "Updating patient activity"),
    ),
    "active": (
        ("window_appointments", "Processing appointments"),
        ("missing_patients", "Fetching referenced patients"),
        ("activity", "Updating patient activity"),
    ),
    "patients-only": (("patients", "Processing patients"),),
    IMPORT_MODE: (("patients", "Importing patients"),),
}
STEPS = {mode: tuple(label for _, label in plan) for mode, plan in STEP_PLAN.items()}
# An RQ job that vanished this soon after its row was committed may still be on its way in.
JOB_GRACE = timedelta(seconds=30)


def validate_mode(mode):
    """Return the mode if it is one of the four, else raise a 422."""
    if mode not in SYNC_MODES:
        raise ValidationError(
            f"Unknown sync mode {mode!r}; use one of {', '.join(SYNC_MODES)}", field="sync_mode"
        )
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
    from ..cliniko.errors import CredentialsNotFound

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


def error_entry(error_type, error_code, message, entity=None):
    """Return one item of a run's `errors` list."""
    from ..timefmt import iso

    return {
        "error_type": error_type,
        "error_code": error_code,
        "message": message,
        "entity": entity,
        "at": iso(utcnow()),
    }


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
    if conn is None or not run.job_id or run.job_id.startswith("cli-"):
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
            current_step="Failed (stale)",
            current_operation=None,
            errors=[*(run.errors or []), error_entry("internal_error", "SYNC_STALE", reason)],
        ):
            log.warning("cleaned up stale sync %s: %s", run.sync_id, reason)
            cleaned.append(run)
    return cleaned


def history(org_id, limit=10, offset=0, status=None, trigger=None, mode=None):
    """Return totals over all the organization's runs and one filtered page of runs, newest first."""
    base = select(SyncRun).where(SyncRun.organization_id == org_id)
    finished = SyncRun.status.in_(("completed", "failed", "cancelled"))
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
            .where(SyncRun.organization_id == org.id, SyncRun.status.in_(("completed", "failed")))
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


def patient_counts(org_id):
    """Return (patients not archived, active patients) for an organization."""
    live = (Patient.organization_id == org_id) & Patient.archived_at.is_(None) & Patient.deleted_at.is_(None)
    total = db.session.execute(select(func.count()).where(live)).scalar()
    active = db.session.execute(
        select(func.count()).where(live, Patient.activity_status != "inactive")
    ).scalar()
    return total, active


def stored_counts(org_id):
    """Return how many rows of each synced entity the organization holds locally."""
    return {
        entity: db.session.execute(select(func.count()).where(model.organization_id == org_id)).scalar()
        for entity, model in SYNCED_MODELS.items()
    }


def org_status(org):
    """Return the organization's sync health as the status endpoints and dashboard show it."""
    from .scheduler import scheduler_active

    hist_last = db.session.execute(
        select(func.max(SyncRun.completed_at)).where(
            SyncRun.organization_id == org.id, SyncRun.status.in_(("completed", "failed", "cancelled"))
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


def check_connection(org):
    """Call Cliniko's GET /user now, store the outcome on the organization, and report it."""
    from ..cliniko.client import ClinikoClient
    from ..cliniko.errors import ApiConnectionFailed, InvalidCredentials, RateLimitExceeded

    result = {"success": False, "api_region": org.cliniko_shard, "response_time_ms": None}
    if not org.has_credentials:
        return {**result, "connection_status": "no_credentials", "message": "No Cliniko API key configured"}
    client = ClinikoClient.from_config(
        org.api_key, current_app.config, redis=_redis_or_none(), wait_on_rate_limit=False, retries=0
    )
    try:
        outcome = client.test_connection()
    except InvalidCredentials as exc:
        status = "insufficient_permissions" if getattr(exc, "status", 401) == 403 else "invalid_credentials"
        org.credentials_valid = False
        result.update(connection_status=status, message=exc.message)
    except RateLimitExceeded as exc:
        result.update(connection_status="rate_limited", message=exc.message, retry_after=exc.retry_after)
    except ApiConnectionFailed as exc:
        result.update(connection_status="unreachable", message=exc.message)
    except AppError as exc:
        result.update(connection_status="unreachable", message=exc.message)
    else:
        org.credentials_valid = True
        org.cliniko_user_id = str(outcome["user"].get("id") or "") or None
        result.update(
            success=True,
            connection_status="healthy",
            response_time_ms=outcome["response_time_ms"],
            message="Connected to Cliniko",
        )
    finally:
        client.close()
    if result["connection_status"] in ("healthy", "invalid_credentials", "insufficient_permissions"):
        org.credentials_checked_at = utcnow()
    db.session.commit()
    return result


def _redis_or_none():
    try:
        return get_redis()
    except QueueUnavailable:
        return None


def find_run(sync_id, org_ids):
    """Return a run by its public id within the given organizations (None = all), or None."""
    stmt = select(SyncRun).where(SyncRun.sync_id == sync_id)
    if org_ids is not None:
        stmt = stmt.where(SyncRun.organization_id.in_(list(org_ids)))
    return db.session.execute(stmt).scalar_one_or_none()


# -- read-side helpers for the dashboard (web/) ----------------------------------------------


def last_finished_run(org_id, statuses=("completed", "failed", "cancelled"), mode=None):
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
    from ..models import SyncMark

    stmt = select(SyncMark).where(SyncMark.organization_id == org_id)
    return {mark.entity: mark for mark in db.session.execute(stmt).scalars()}


def scheduler_state():
    """Return {"active": scheduler seen and tick registered, "next_run": when the tick is due (UTC) or None}."""
    from datetime import UTC, datetime

    from rq_scheduler import Scheduler

    from .scheduler import TICK_JOB_ID, scheduler_active

    active = scheduler_active()
    try:
        score = get_redis().zscore(Scheduler.scheduled_jobs_key, TICK_JOB_ID) if active else None
    except (redis.RedisError, QueueUnavailable):
        score = None
    return {"active": active, "next_run": None if score is None else datetime.fromtimestamp(score, UTC)}
