"""Patient activity ("active patients"), computed in SQL from local appointments.

One UPDATE per organization: the new values of every patient come from one grouped pass over
the organization's appointments, LEFT JOINed to its patients, and only patients whose values
differ are written, so an unchanged run (same appointments, same statuses) rewrites no row.
Both sides are read once whatever the planner guesses; on PostgreSQL nested loops are switched
off for that statement (a nested loop over the grouped pass, chosen when a freshly loaded table
has no statistics, is what made it take minutes), and a large load is followed by ANALYZE.
"""

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, case, func, literal, or_, select, text, update

from ..extensions import db
from ..models import Appointment, Patient, utcnow

# A run that wrote at least this many patients and appointments gives the planner statistics.
ANALYZE_AFTER_ROWS = 10_000
FIELDS = (
    "recent_appointment_count",
    "upcoming_appointment_count",
    "total_appointment_count",
    "last_appointment_at",
    "next_appointment_at",
    "activity_status",
)


def refresh_activity(org_id, now=None):
    """Recompute every patient's appointment counts, last/next visit and activity status."""
    now = now or utcnow()
    past = now - timedelta(days=current_app.config["ACTIVE_PAST_DAYS"])
    a, p = Appointment, Patient
    counts = (
        select(
            a.patient_cliniko_id.label("cliniko_id"),
            func.count().filter(a.starts_at >= past, a.starts_at <= now).label("recent"),
            func.count().filter(a.starts_at > now).label("upcoming"),
            func.count().label("total"),
            func.max(a.starts_at).filter(a.starts_at <= now).label("last"),
            func.min(a.starts_at).filter(a.starts_at > now).label("next"),
        )
        .where(
            a.organization_id == org_id,
            a.patient_cliniko_id.is_not(None),
            a.cancelled_at.is_(None),
            a.archived_at.is_(None),
            a.deleted_at.is_(None),
        )
        .group_by(a.patient_cliniko_id)
        .subquery("counts")
    )
    recent = func.coalesce(counts.c.recent, 0)
    upcoming = func.coalesce(counts.c.upcoming, 0)
    fresh = (
        select(
            p.id.label("id"),
            recent.label("recent_appointment_count"),
            upcoming.label("upcoming_appointment_count"),
            func.coalesce(counts.c.total, 0).label("total_appointment_count"),
            counts.c["last"].label("last_appointment_at"),
            counts.c["next"].label("next_appointment_at"),
            case(
                (and_(recent > 0, upcoming > 0), literal("active")),
                (recent > 0, literal("recently_active")),
                (upcoming > 0, literal("upcoming_only")),
                else_=literal("inactive"),
            ).label("activity_status"),
        )
        .select_from(p)
        .outerjoin(counts, counts.c.cliniko_id == p.cliniko_id)
        .where(p.organization_id == org_id)
        .subquery("fresh")
    )
    target = Patient.__table__
    stmt = (
        update(target)
        .where(
            target.c.id == fresh.c.id,
            target.c.organization_id == org_id,
            or_(*(target.c[f].is_distinct_from(fresh.c[f]) for f in FIELDS)),
        )
        .values({f: fresh.c[f] for f in FIELDS})
        .execution_options(synchronize_session=False)
    )
    postgresql = db.engine.dialect.name == "postgresql"
    if postgresql:
        db.session.execute(text("SET LOCAL enable_nestloop = off"))
    result = db.session.execute(stmt)
    if postgresql:
        db.session.execute(text("SET LOCAL enable_nestloop TO DEFAULT"))
    return result.rowcount


def analyze_after_load(rows_written):
    """Give PostgreSQL's planner statistics after a large load (nothing else runs ANALYZE)."""
    if rows_written >= ANALYZE_AFTER_ROWS and db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE patients, appointments"))
