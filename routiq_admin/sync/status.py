"""Read models of sync runs for the dashboard and the API: history, health, counts, marks.

Nothing here writes a run; the web and API layers only format what these functions return.
"""

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, exists, false, func, literal, or_, select
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import (
    SYNCED_MODELS,
    Organization,
    SyncMark,
    SyncRun,
    UTCDateTime,
    utcnow,
)
from .plan import ACTIVE_STATUSES, FINISHED_STATUSES
from .records import patient_counts
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
    row = db.session.execute(fleet_query([org.id])).one()
    return health(org, row)


def health(org, row):
    """Return an organization's sync_status from its fleet row (fleet_query's columns)."""
    if not org.sync_enabled:
        return "disabled"
    # "The last 3 settled runs failed" = 3 failures since the last completed run.
    if org.credentials_valid is False or row.failures >= 3:
        return "failing"
    if row.last_success_at is None:
        return "never_synced"
    interval = timedelta(minutes=current_app.config["SYNC_INTERVAL_MINUTES"])
    if row.failures_24h > 0 or utcnow() - row.last_success_at > 2 * interval:
        return "degraded"
    return "healthy"


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


# Reference data has no mark: every completed comprehensive run fetches it whole.
REFERENCE_ENTITIES = ("businesses", "practitioners", "appointment_types")


def freshness(org_id):
    """Return per synced entity: when it last synced, as of when, and how many rows are stored."""
    marks = sync_marks(org_id)
    whole = last_finished_run(org_id, statuses=("completed",), mode="comprehensive")
    stored = stored_counts(org_id)
    out = {}
    for entity in SYNCED_MODELS:
        mark = marks.get(entity)
        if mark is not None:
            synced, as_of = mark.last_success_at, mark.watermark
        elif entity in REFERENCE_ENTITIES and whole:
            synced, as_of = whole.completed_at, whole.started_at
        else:
            synced = as_of = None
        out[entity] = {"synced": synced, "as_of": as_of, "stored": stored[entity]}
    return out


# ---- the fleet view: every organization's state in one query ---------------------------------------
FLEET_STATES = ("failing", "paused", "stale", "running", "never_synced")
FLEET_SORTS = ("name", "last_success", "failures")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fleet_runs(org_ids, materialized=False):
    """Per organization: last success, consecutive failures, failures in 24 h, whether a run is active.

    Correlated lookups on (organization_id, created_at): each costs an index seek, so the view
    does not slow down as the organizations' run history grows.
    """

    def newest_completed(column):
        run = aliased(SyncRun)
        return (
            select(getattr(run, column))
            .where(run.organization_id == Organization.id, run.status == "completed")
            .order_by(run.created_at.desc())
            .limit(1)
            .correlate(Organization)  # from any enclosing level (it is nested in `failures` too)
            .scalar_subquery()
        )

    failed, recent, active = aliased(SyncRun), aliased(SyncRun), aliased(SyncRun)
    last_ok_created = newest_completed("created_at")
    failures = (
        select(func.count())
        .where(
            failed.organization_id == Organization.id,
            failed.status == "failed",
            failed.created_at > func.coalesce(last_ok_created, literal(EPOCH, UTCDateTime)),
        )
        .scalar_subquery()
    )
    failures_24h = (
        select(func.count())
        .where(
            recent.organization_id == Organization.id,
            recent.status == "failed",
            recent.created_at >= utcnow() - timedelta(hours=24),
        )
        .scalar_subquery()
    )
    running = exists().where(active.organization_id == Organization.id, active.status.in_(ACTIVE_STATUSES))
    stmt = select(
        Organization.id.label("org_id"),
        newest_completed("completed_at").label("last_success_at"),
        failures.label("failures"),
        failures_24h.label("failures_24h"),
        case((running, 1), else_=0).label("running"),
    )
    if org_ids is not None:
        stmt = stmt.where(Organization.id.in_(list(org_ids)))
    if materialized:  # each organization's lookups run once, however often the states read them
        return stmt.cte("fleet_runs").prefix_with("MATERIALIZED")
    return stmt.subquery("fleet_runs")  # a page sorted by name looks up only the rows it shows


def _interval_minutes():
    """Return the SQL expression of an organization's sync interval in minutes."""
    # The global default until per-organization schedules exist; a column expression works too.
    return literal(current_app.config["SYNC_INTERVAL_MINUTES"])


def fleet_states(runs, now=None):
    """Return each fleet state's SQL condition over an organization and its run aggregates.

    failing: the last settled run failed, or Cliniko refused the key; paused: scheduled syncs
    paused (when the schedule columns exist); stale: sync on and the last success older than
    twice the interval; running: a run is starting or running; never_synced: no completed run.
    """
    now = now or utcnow()
    paused_at = getattr(Organization, "paused_at", None)
    age = _seconds_between(runs.c.last_success_at, literal(now, UTCDateTime))
    return {
        "failing": or_(runs.c.failures > 0, Organization.credentials_valid.is_(False)),
        "paused": paused_at.is_not(None) if paused_at is not None else false(),
        "stale": and_(
            Organization.sync_enabled.is_(True),
            runs.c.last_success_at.is_not(None),
            age > 120 * _interval_minutes(),
        ),
        "running": runs.c.running == 1,
        "never_synced": runs.c.last_success_at.is_(None),
    }


def _fleet_base(org_ids, materialized=False):
    runs = _fleet_runs(org_ids, materialized)
    states = fleet_states(runs)
    flags = [case((cond, True), else_=False).label(name) for name, cond in states.items()]
    stmt = select(Organization, runs.c.last_success_at, runs.c.failures, runs.c.failures_24h, *flags).join(
        runs, runs.c.org_id == Organization.id
    )
    return stmt, runs, states


def _like(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fleet_query(org_ids, q="", state="", sort="name"):
    """Return a select of (Organization, last_success_at, failures, one flag per state) for one view."""
    stmt, runs, states = _fleet_base(org_ids)
    if q:
        pattern = _like(q.strip())
        stmt = stmt.where(
            or_(Organization.name.ilike(pattern, escape="\\"), Organization.id.ilike(pattern, escape="\\"))
        )
    if state:
        stmt = stmt.where(states[state])
    if sort == "last_success":  # the longest without a success first, never synced before all
        order = (runs.c.last_success_at.is_not(None), runs.c.last_success_at)
    elif sort == "failures":
        order = (runs.c.failures.desc(),)
    else:
        order = ()
    return stmt.order_by(*order, Organization.name, Organization.id)


def fleet_counts(org_ids):
    """Return how many of the given organizations (None = all) are in each state, and the total."""
    stmt, _, states = _fleet_base(org_ids, materialized=True)
    sub = stmt.subquery()
    row = db.session.execute(
        select(
            func.count(), *[func.coalesce(func.sum(case((sub.c[name], 1), else_=0)), 0) for name in states]
        )
    ).one()
    return {"all": row[0], **{name: int(value) for name, value in zip(states, row[1:], strict=True)}}


def last_finished_runs(org_ids):
    """Return {org_id: its most recent finished run} for the given organizations (one query)."""
    newest = (
        select(SyncRun.organization_id, func.max(SyncRun.created_at).label("created_at"))
        .where(SyncRun.organization_id.in_(list(org_ids)), SyncRun.status.in_(FINISHED_STATUSES))
        .group_by(SyncRun.organization_id)
        .subquery()
    )
    stmt = (
        select(SyncRun)
        .join(
            newest,
            (newest.c.organization_id == SyncRun.organization_id)
            & (newest.c.created_at == SyncRun.created_at),
        )
        .where(SyncRun.status.in_(FINISHED_STATUSES))
        .order_by(SyncRun.id)
    )
    return {run.organization_id: run for run in db.session.execute(stmt).scalars()}
