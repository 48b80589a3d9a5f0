"""Which events a finished run raises, and emitting them: one event row, one delivery per target."""

import logging
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import NotificationDelivery, NotificationEvent, NotificationTarget, SyncRun, utcnow
from ..timefmt import iso
from .delivery import enqueue

log = logging.getLogger(__name__)

DAY = timedelta(hours=24)
# The guide's checkSyncHealth: "more than 2 failures in 24 h"; sync.slow looks at recent runs.
FAILING_AFTER = 2
SLOW_WINDOW = 10


def _error(run):
    if run is None or run.status != "failed" or not run.errors:
        return None
    last = run.errors[-1]
    return {k: last.get(k) for k in ("error_type", "error_code", "message")}


def payload(event_id, event_type, org_id, run, now):
    """Return the webhook body (the issue's contract); run-less events carry nulls."""
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": iso(now),
        "data": {
            "organization_id": org_id,
            "sync_id": run.sync_id if run else None,
            "status": run.status if run else None,
            "mode": run.mode if run else None,
            "trigger": run.trigger if run else None,
            "error": _error(run),
            "records_processed": run.records_processed if run else None,
            "started_at": iso(run.started_at or run.created_at) if run else None,
            "completed_at": iso(run.completed_at) if run else None,
        },
    }


def _targets(org_id):
    stmt = select(NotificationTarget).where(
        NotificationTarget.organization_id == org_id, NotificationTarget.enabled.is_(True)
    )
    return list(db.session.execute(stmt.order_by(NotificationTarget.id)).scalars())


def _emitted_since(org_id, event_type, since):
    stmt = select(func.count()).where(
        NotificationEvent.organization_id == org_id,
        NotificationEvent.type == event_type,
        NotificationEvent.created_at >= since,
    )
    return db.session.execute(stmt).scalar() > 0


def _settled_before(run):
    stmt = (
        select(SyncRun.status)
        .where(
            SyncRun.organization_id == run.organization_id,
            SyncRun.status.in_(("completed", "failed")),
            SyncRun.id != run.id,
            SyncRun.created_at <= run.created_at,
        )
        .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
        .limit(1)
    )
    return db.session.execute(stmt).scalar_one_or_none()


def _failures_24h(org_id, now):
    stmt = select(func.count()).where(
        SyncRun.organization_id == org_id, SyncRun.status == "failed", SyncRun.created_at >= now - DAY
    )
    return db.session.execute(stmt).scalar()


def _slow(org_id):
    stmt = (
        select(SyncRun)
        .where(SyncRun.organization_id == org_id, SyncRun.status == "completed")
        .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
        .limit(SLOW_WINDOW)
    )
    durations = [
        r.duration_seconds for r in db.session.execute(stmt).scalars() if r.duration_seconds is not None
    ]
    return bool(durations) and sum(durations) / len(durations) > current_app.config["NOTIFY_SLOW_SECONDS"]


def decide(run, outcome=None):
    """Return the event types a finished run raises, read from the database."""
    now, org_id, types = utcnow(), run.organization_id, []
    if run.status == "failed":
        types.append("sync.failed")
        if _failures_24h(org_id, now) > FAILING_AFTER and not _emitted_since(
            org_id, "sync.failing", now - DAY
        ):
            types.append("sync.failing")
    elif run.status == "completed":
        types.append("sync.completed")
        if _settled_before(run) == "failed":
            types.append("sync.recovered")
        if _slow(org_id) and not _emitted_since(org_id, "sync.slow", now - DAY):
            types.append("sync.slow")
    if outcome == "paused":
        types.append("sync.paused")
    return types


def emit(org_id, event_type, run=None, *, only=None):
    """Record one event and a delivery per enabled target that wants it, commit, then enqueue them.

    `only` sends to that one target whatever it subscribes to (the "Send test event" button).
    Return the event, or None when nobody wants it or it was already emitted for this run.
    """
    targets = [only] if only is not None else [t for t in _targets(org_id) if event_type in (t.events or [])]
    if not targets:
        return None
    now = utcnow()
    event_id = "evt_" + secrets.token_hex(12)
    dedupe = f"{event_type}:{run.sync_id}" if run is not None and only is None else f"{event_type}:{event_id}"
    event = NotificationEvent(
        id=event_id,
        organization_id=org_id,
        type=event_type,
        sync_id=run.sync_id if run else None,
        dedupe_key=dedupe,
        payload=payload(event_id, event_type, org_id, run, now),
        created_at=now,
    )
    db.session.add(event)
    deliveries = [
        NotificationDelivery(organization_id=org_id, event=event, target=t, status="pending", created_at=now)
        for t in targets
    ]
    db.session.add_all(deliveries)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    for delivery in deliveries:
        enqueue(delivery.id)
    return event


def run_finished(run, outcome=None):
    """Emit what a run that just reached its final status raises; never fails the caller.

    Call after the run's final commit. `outcome` is the pause logic's verdict ("paused").
    """
    try:
        if not _targets(run.organization_id):
            return []
        types = decide(run, outcome)
        return [e for e in (emit(run.organization_id, t, run) for t in types) if e is not None]
    except Exception as exc:  # the run is already final: a notification problem must not touch it
        db.session.rollback()
        log.error("notifications for %s not emitted: %s", run.sync_id, type(exc).__name__)
        return []
