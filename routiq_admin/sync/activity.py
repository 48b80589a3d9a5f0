"""Patient activity ("active patients"), computed in SQL from local appointments.

One UPDATE per organization: the new values of its patients come from one grouped pass over
their appointments, LEFT JOINed to the patients, and only patients whose values differ are
written, so an unchanged run (same appointments, same statuses) rewrites no row.

Incremental: each organization remembers its last computation (when it started, the "now" it
used, its recent window's start). The next one recomputes only the candidates: patients whose
row was synced since, patients of appointments synced since, the patients those appointments
were moved away from (`previous_patient_cliniko_id`, see below), and patients with a counted
appointment between the old and the new window edges (now and now - ACTIVE_PAST_DAYS). A
patient's values depend only on its own appointments, its patient id and the two edges, so
no other patient can change. The whole organization is recomputed when asked (`full`), when it
never was, after a gap of over MAX_GAP, or past MAX_CANDIDATES candidates.

Moved appointments: after Cliniko moves an appointment to another patient (a merge), its row
no longer names the patient it left, whose stored counts still include it. The upsert keeps
that patient in `previous_patient_cliniko_id` (the first one, while it is set) and every
computation that recomputes it clears the column, so "set" means "left since the last
computation". This is sound as long as computations of one organization do not overlap with
its writes: the engine's own step runs after its writes, computations are serialized on the
organization's row, and the idle refresh (sync/tick.py) rolls back when a run started meanwhile.

Both sides are read once whatever the planner guesses; on PostgreSQL nested loops are switched
off for that statement (a nested loop over the grouped pass, chosen when a freshly loaded table
has no statistics, is what made it take minutes), and a large load is followed by ANALYZE. The
candidate pass restricts each of its tables to the candidates and hash-joins sets of at most
MAX_CANDIDATES rows: index scans on the ids with statistics, at worst one read of the
organization's rows per table without. Finding the candidates reads the organization's
appointments and patients once (`synced_at` has no index: one would cost every upsert) and two
index ranges of (organization, starts_at) for the edges.
"""

from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, case, func, literal, null, or_, select, text, union, update

from ..extensions import db
from ..models import Appointment, Organization, Patient, utcnow

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
# Past these, one pass over the whole organization costs less than the candidates one by one.
MAX_CANDIDATES = 5_000
MAX_GAP = timedelta(days=7)


def clock_margin():
    """Return how long before the last computation rows synced count as changed again."""
    # synced_at is the writer's clock, the mark the computer's: hosts' clocks may disagree a little.
    return timedelta(seconds=current_app.config["ACTIVITY_CLOCK_MARGIN_SECONDS"])


def refresh_activity(org_id, now=None, *, full=False, changed_since=None):
    """Recompute the activity of the patients that may have changed (all when `full`); return rows written."""
    now = now or utcnow()
    recent_from = now - timedelta(days=current_app.config["ACTIVE_PAST_DAYS"])
    orgs = Organization.__table__
    # FOR NO KEY UPDATE: serializes computations of one organization, yet lets a run insert rows
    # that reference it (their foreign keys take KEY SHARE).
    mark = db.session.execute(
        select(orgs.c.activity_computed_at, orgs.c.activity_as_of, orgs.c.activity_recent_from)
        .where(orgs.c.id == org_id)
        .with_for_update(key_share=True)
    ).one_or_none()
    # After the lock: every write this computation must see has committed before it started.
    started = utcnow()
    candidates = moved = None
    if not full and mark is not None:
        candidates, moved = _candidates(org_id, mark, now, recent_from, changed_since)
    written = _recompute(org_id, now, recent_from, candidates) if candidates != set() else 0
    if candidates is None or moved:
        a = Appointment.__table__
        db.session.execute(
            update(a)
            .where(a.c.organization_id == org_id, a.c.previous_patient_cliniko_id.is_not(None))
            .values(previous_patient_cliniko_id=None)
        )
    db.session.execute(
        update(orgs)
        .where(orgs.c.id == org_id)
        .values(activity_computed_at=started, activity_as_of=now, activity_recent_from=recent_from)
    )
    return written


def _counted(a):
    return (a.cancelled_at.is_(None), a.archived_at.is_(None), a.deleted_at.is_(None))


def _between(column, one, other):
    # Closed at both ends and in either direction: the clock may also have moved back.
    return column.between(min(one, other), max(one, other))


def _candidates(org_id, mark, now, recent_from, changed_since):
    """Return (patients' cliniko ids to recompute, whether one moved), or (None, None) for a whole pass."""
    computed_at, as_of, was_from = mark
    if computed_at is None or as_of is None or was_from is None:
        return None, None
    if abs(now - as_of) > MAX_GAP or abs(recent_from - was_from) > MAX_GAP:
        return None, None
    since = min(computed_at, changed_since or computed_at) - clock_margin()
    a, p = Appointment, Patient
    stmt = union(
        # One read of the organization's appointments: changed since, or moved and not yet recomputed.
        select(
            a.patient_cliniko_id.label("cliniko_id"), a.previous_patient_cliniko_id.label("previous")
        ).where(
            a.organization_id == org_id,
            or_(a.synced_at >= since, a.previous_patient_cliniko_id.is_not(None)),
        ),
        # Two index ranges (organization, starts_at): the appointments the edges moved past.
        select(a.patient_cliniko_id, null()).where(
            a.organization_id == org_id,
            or_(_between(a.starts_at, as_of, now), _between(a.starts_at, was_from, recent_from)),
            *_counted(a),
        ),
        select(p.cliniko_id, null()).where(p.organization_id == org_id, p.synced_at >= since),
    )
    # More rows than the cap (a large load within the margin, say) stop early: a whole pass.
    rows = db.session.execute(stmt.limit(MAX_CANDIDATES + 1)).all()
    if len(rows) > MAX_CANDIDATES:
        return None, None
    ids = {cliniko_id for row in rows for cliniko_id in row if cliniko_id is not None}
    return ids, any(previous is not None for _, previous in rows)


def _recompute(org_id, now, recent_from, candidates):
    """Write the values of the organization's patients (only the candidates unless None) that differ."""
    a, p = Appointment, Patient
    target = Patient.__table__
    where = [a.organization_id == org_id, a.patient_cliniko_id.is_not(None), *_counted(a)]
    patients, targets = [p.organization_id == org_id], [target.c.organization_id == org_id]
    if candidates is not None:
        # On each of the three tables: with nested loops off, a restriction only on the grouped
        # side would still hash-join it to every patient of the organization.
        ids = sorted(candidates)
        where.append(a.patient_cliniko_id.in_(ids))
        patients.append(p.cliniko_id.in_(ids))
        targets.append(target.c.cliniko_id.in_(ids))
    counts = (
        select(
            a.patient_cliniko_id.label("cliniko_id"),
            func.count().filter(a.starts_at >= recent_from, a.starts_at <= now).label("recent"),
            func.count().filter(a.starts_at > now).label("upcoming"),
            func.count().label("total"),
            func.max(a.starts_at).filter(a.starts_at <= now).label("last"),
            func.min(a.starts_at).filter(a.starts_at > now).label("next"),
        )
        .where(*where)
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
        .where(*patients)
        .subquery("fresh")
    )
    stmt = (
        update(target)
        .where(
            target.c.id == fresh.c.id,
            *targets,
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
