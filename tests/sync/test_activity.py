"""Patient activity against hand-made appointments around the window edges, with a frozen clock."""

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import text

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient
from routiq_admin.sync.activity import refresh_activity
from routiq_admin.sync.records import patient_counts
from tests.factories import make_org

NOW = datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
_ids = count(1000)


def patient(org_id, pid):
    db.session.add(Patient(organization_id=org_id, cliniko_id=pid, first_name=pid))
    return pid


def appt(org_id, pid, starts_at, **fields):
    db.session.add(
        Appointment(
            organization_id=org_id,
            cliniko_id=str(next(_ids)),
            patient_cliniko_id=pid,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=30),
            **fields,
        )
    )


def state(org_id):
    db.session.rollback()
    return {
        p.cliniko_id: p
        for p in db.session.query(Patient).filter_by(organization_id=org_id).populate_existing()
    }


@pytest.fixture
def clinic(app):
    """Two organizations; the second reuses a patient id to prove tenancy."""
    org = make_org("org_act", api_key=None)
    other = make_org("org_other", api_key=None)
    o = org.id
    p = {
        "edge_past": patient(o, "1"),  # exactly now - 30 days: recent
        "just_old": patient(o, "2"),  # one second before the window: not recent
        "at_now": patient(o, "3"),  # exactly now: recent, not upcoming
        "just_next": patient(o, "4"),  # one second after now: upcoming
        "both": patient(o, "5"),
        "not_counted": patient(o, "6"),  # cancelled, archived, deleted: none counts
        "dna": patient(o, "7"),  # did not arrive still counts
        "none": patient(o, "8"),
        "far_future": patient(o, "9"),  # upcoming has no upper bound
    }
    appt(o, "1", NOW - 30 * DAY)
    appt(o, "2", NOW - 30 * DAY - SECOND)
    appt(o, "2", NOW - 400 * DAY)
    appt(o, "3", NOW)
    appt(o, "4", NOW + SECOND)
    appt(o, "5", NOW - 2 * DAY)
    appt(o, "5", NOW - 10 * DAY)
    appt(o, "5", NOW + 3 * DAY)
    appt(o, "5", NOW + 9 * DAY)
    appt(o, "6", NOW - DAY, cancelled_at=NOW - 5 * DAY)
    appt(o, "6", NOW + DAY, archived_at=NOW - DAY)
    appt(o, "6", NOW + 2 * DAY, deleted_at=NOW - DAY)
    appt(o, "7", NOW - 3 * DAY, did_not_arrive=True)
    appt(o, "9", NOW + 200 * DAY)
    # another organization's appointments for a patient with the same Cliniko id
    patient(other.id, "8")
    appt(other.id, "8", NOW - DAY)
    appt(other.id, "8", NOW + DAY)
    # a dangling patient id crashes nothing
    appt(o, "999", NOW - DAY)
    db.session.commit()
    return o, p


def test_statuses_and_counts_around_the_window_edges(clinic):
    org_id, _ = clinic
    refresh_activity(org_id, now=NOW)
    db.session.commit()
    s = state(org_id)
    expect = {
        # id: (status, recent, upcoming, total, last, next)
        "1": ("recently_active", 1, 0, 1, NOW - 30 * DAY, None),
        "2": ("inactive", 0, 0, 2, NOW - 30 * DAY - SECOND, None),
        "3": ("recently_active", 1, 0, 1, NOW, None),
        "4": ("upcoming_only", 0, 1, 1, None, NOW + SECOND),
        "5": ("active", 2, 2, 4, NOW - 2 * DAY, NOW + 3 * DAY),
        "6": ("inactive", 0, 0, 0, None, None),
        "7": ("recently_active", 1, 0, 1, NOW - 3 * DAY, None),
        "8": ("inactive", 0, 0, 0, None, None),
        "9": ("upcoming_only", 0, 1, 1, None, NOW + 200 * DAY),
    }
    for pid, (status, recent, upcoming, total, last, nxt) in expect.items():
        p = s[pid]
        got = (
            p.activity_status,
            p.recent_appointment_count,
            p.upcoming_appointment_count,
            p.total_appointment_count,
            p.last_appointment_at,
            p.next_appointment_at,
        )
        assert got == (status, recent, upcoming, total, last, nxt), pid
    # "active patients" = status not inactive
    assert patient_counts(org_id) == (9, 6)
    # the other organization was not touched
    other = state("org_other")["8"]
    assert (other.activity_status, other.total_appointment_count) == ("inactive", 0)


def test_the_clock_moving_changes_statuses(clinic):
    org_id, _ = clinic
    later = NOW + 2 * SECOND
    refresh_activity(org_id, now=later)
    db.session.commit()
    s = state(org_id)
    assert s["4"].activity_status == "recently_active"  # its appointment is now in the past
    assert s["4"].last_appointment_at == NOW + SECOND and s["4"].next_appointment_at is None
    assert s["1"].activity_status == "inactive"  # fell out of the 30-day window
    assert s["1"].recent_appointment_count == 0 and s["1"].total_appointment_count == 1
    # and back: recomputing at NOW restores the frozen-clock answer
    refresh_activity(org_id, now=NOW)
    db.session.commit()
    s = state(org_id)
    assert (s["1"].activity_status, s["4"].activity_status) == ("recently_active", "upcoming_only")


def test_window_is_a_setting(make_app, clinic):
    org_id, _ = clinic
    wide = make_app(ACTIVE_PAST_DAYS=31)
    with wide.app_context():
        refresh_activity(org_id, now=NOW)
        db.session.commit()
        s = state(org_id)
        assert s["2"].activity_status == "recently_active"
        assert s["2"].recent_appointment_count == 1


@pytest.fixture
def patient_versions():
    """Return a function giving the patients' row versions: PostgreSQL's xmin per row (a rewrite
    gives a row a new one), on SQLite the count of patient UPDATEs a trigger has seen.

    Listed after the fixture that pushes the test's app context, which it uses."""
    conn = db.session.connection()
    postgresql = conn.dialect.name == "postgresql"
    if not postgresql:
        conn.execute(text("CREATE TABLE patient_writes (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO patient_writes VALUES (0)"))
        conn.execute(
            text(
                "CREATE TRIGGER patient_written AFTER UPDATE ON patients "
                "BEGIN UPDATE patient_writes SET n = n + 1; END"
            )
        )
        db.session.commit()

    def versions(org_id):
        conn = db.session.connection()
        if postgresql:
            sql = "SELECT id, xmin::text FROM patients WHERE organization_id = :o"
            return dict(conn.execute(text(sql), {"o": org_id}).all())
        return conn.execute(text("SELECT n FROM patient_writes")).scalar()

    yield versions
    if not postgresql:
        db.session.rollback()
        db.session.execute(text("DROP TRIGGER patient_written"))
        db.session.execute(text("DROP TABLE patient_writes"))
        db.session.commit()


def test_an_unchanged_refresh_writes_no_patient_row(clinic, patient_versions):
    org_id, _ = clinic
    assert refresh_activity(org_id, now=NOW) == 7  # all but the two without a counted appointment
    db.session.commit()
    before = patient_versions(org_id)
    assert refresh_activity(org_id, now=NOW) == 0
    assert patient_versions(org_id) == before
    db.session.commit()
    # the clock moving two seconds changes two patients (see above): only they are written
    assert refresh_activity(org_id, now=NOW + 2 * SECOND) == 2
    db.session.commit()


def test_an_unchanged_sync_rewrites_no_patient_row(sync_app, patient_versions):
    """A second comprehensive run against an unchanged clinic: no patient row gets a new version."""
    from tests.sync.conftest import KEY, ORG_ID, run_inline

    org = make_org(ORG_ID, "Sync Test Clinic", api_key=KEY)
    first = run_inline(org)
    assert first.status == "completed", first.errors
    before = patient_versions(ORG_ID)
    db.session.rollback()
    run = run_inline(org)
    assert run.status == "completed" and run.entity_counts["patients"]["updated"] == 0
    assert patient_versions(ORG_ID) == before
