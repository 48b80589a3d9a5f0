"""Incremental activity: only candidates are recomputed, and the result always equals a full pass.

Rows are written through the real Upserter (as a sync writes them), so `synced_at` and the
moved-from patient behave as in production; the activity clock is frozen, the wall clock is not.
"""

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Organization, Patient, utcnow
from routiq_admin.sync import activity, tick
from routiq_admin.sync.activity import FIELDS, MAX_GAP, refresh_activity
from routiq_admin.sync.upsert import Upserter
from tests.factories import make_org, make_run
from tests.sync.conftest import ORG_ID, run_inline
from tests.sync.test_activity import patient_versions  # noqa: F401 (a fixture)

NOW = datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
ORG = "org_incr"
OTHER = "org_incr_other"


def appointment(cliniko_id, patient, starts_at):
    """A booked appointment's row as the sync parses one (the columns activity reads)."""
    return {
        "cliniko_id": cliniko_id,
        "patient_cliniko_id": patient,
        "starts_at": starts_at,
        "ends_at": starts_at and starts_at + timedelta(minutes=30),
        "cancelled_at": None,
        "archived_at": None,
        "deleted_at": None,
    }


def write(org_id, model, rows):
    Upserter(model, org_id).upsert(rows)
    db.session.commit()


def patients(org_id, *cliniko_ids):
    write(org_id, Patient, [{"cliniko_id": pid, "first_name": f"P{pid}"} for pid in cliniko_ids])


def stored(org_id):
    """Each patient's activity values, read afresh."""
    db.session.rollback()
    cols = [Patient.cliniko_id, *(getattr(Patient, f) for f in FIELDS)]
    rows = db.session.execute(select(*cols).where(Patient.organization_id == org_id))
    return {row[0]: tuple(row[1:]) for row in rows}


def expected(org_id, now, past_days=30):
    """The activity values computed in Python from the stored appointments (the oracle)."""
    db.session.rollback()
    out = {}
    for pid in db.session.execute(
        select(Patient.cliniko_id).where(Patient.organization_id == org_id)
    ).scalars():
        starts = [
            a.starts_at
            for a in db.session.execute(
                select(Appointment).where(
                    Appointment.organization_id == org_id, Appointment.patient_cliniko_id == pid
                )
            ).scalars()
            if not (a.cancelled_at or a.archived_at or a.deleted_at)
        ]
        dated = [s for s in starts if s is not None]
        recent = sum(1 for s in dated if now - timedelta(days=past_days) <= s <= now)
        upcoming = sum(1 for s in dated if s > now)
        status = {
            (True, True): "active",
            (True, False): "recently_active",
            (False, True): "upcoming_only",
        }.get((recent > 0, upcoming > 0), "inactive")
        last = max((s for s in dated if s <= now), default=None)
        nxt = min((s for s in dated if s > now), default=None)
        out[pid] = (recent, upcoming, len(starts), last, nxt, status)
    return out


def backdate(org_id):
    """Make every row look synced an hour ago (the test's writes all happen within a second)."""
    for model in (Patient, Appointment):
        db.session.execute(
            update(model).where(model.organization_id == org_id).values(synced_at=utcnow() - HOUR)
        )
    db.session.commit()


@pytest.fixture
def clinic(app):
    """Six patients of one organization, a same-id patient elsewhere; computed once at NOW."""
    make_org(ORG, api_key=None)
    make_org(OTHER, api_key=None)
    patients(ORG, "1", "2", "3", "4", "5", "6")
    patients(OTHER, "1")
    write(
        ORG,
        Appointment,
        [
            appointment("a1", "1", NOW - 2 * DAY),
            appointment("a2", "1", NOW + 3 * DAY),
            appointment("a3", "2", NOW + HOUR),  # upcoming, crosses "now" within two hours
            appointment("a4", "3", NOW - 30 * DAY + HOUR),  # recent, leaves the window within two hours
            appointment("a5", "4", NOW - 5 * DAY),
            appointment("a6", "5", NOW + 10 * DAY),
            appointment("a7", "5", None),  # no start: counts in the total only
        ],
    )
    write(OTHER, Appointment, [appointment("o1", "1", NOW - DAY)])
    backdate(ORG)
    assert refresh_activity(ORG, now=NOW) == 5  # never computed: the whole organization
    assert refresh_activity(OTHER, now=NOW) == 1
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW)


def tamper(org_id, cliniko_id):
    """Give a patient wrong activity values without syncing it (synced_at untouched)."""
    db.session.execute(
        update(Patient)
        .where(Patient.organization_id == org_id, Patient.cliniko_id == cliniko_id)
        .values(activity_status="active", total_appointment_count=99)
    )
    db.session.commit()


def test_an_unchanged_computation_writes_and_reads_no_patient(clinic, patient_versions):  # noqa: F811
    before = patient_versions(ORG)
    tamper(ORG, "6")  # "6" is no candidate: a pass that read it would put it right
    tampered = stored(ORG)
    versions = patient_versions(ORG)
    assert refresh_activity(ORG, now=NOW) == 0
    db.session.commit()
    assert patient_versions(ORG) == versions != before
    assert stored(ORG) == tampered
    assert refresh_activity(ORG, now=NOW, full=True) == 1  # the full pass reads everyone
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW)


def test_one_changed_appointment_recomputes_its_patient_only(clinic):
    tamper(ORG, "6")
    write(ORG, Appointment, [appointment("a5", "4", NOW + 2 * DAY)])  # "4": recently_active -> upcoming_only
    before = stored(ORG)
    assert refresh_activity(ORG, now=NOW) == 1
    db.session.commit()
    after = stored(ORG)
    assert after["4"][5] == "upcoming_only" and after["4"][4] == NOW + 2 * DAY
    assert {pid: v for pid, v in after.items() if pid != "4"} == {
        pid: v for pid, v in before.items() if pid != "4"
    }


def test_the_window_edges_move_statuses_without_any_appointment_change(clinic, patient_versions):  # noqa: F811
    later = NOW + 2 * HOUR
    assert refresh_activity(ORG, now=later) == 2
    db.session.commit()
    s = stored(ORG)
    assert s["2"][5] == "recently_active" and s["2"][3] == NOW + HOUR  # crossed "now"
    assert s["3"][5] == "inactive" and s["3"][0] == 0  # crossed now - 30 days
    assert s == expected(ORG, later)
    versions = patient_versions(ORG)
    assert refresh_activity(ORG, now=later) == 0
    assert patient_versions(ORG) == versions
    # the clock going back is the same edges crossed the other way
    assert refresh_activity(ORG, now=NOW) == 2
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW)


def test_a_moved_appointment_recomputes_the_patient_it_left(clinic):
    write(ORG, Appointment, [appointment("a1", "6", NOW - 2 * DAY)])  # "1" merged into "6", say
    assert refresh_activity(ORG, now=NOW) == 2
    db.session.commit()
    s = stored(ORG)
    assert (s["1"][5], s["1"][2]) == ("upcoming_only", 1) and (s["6"][5], s["6"][2]) == ("recently_active", 1)
    assert s == expected(ORG, NOW)
    left = select(Appointment.previous_patient_cliniko_id).where(Appointment.cliniko_id == "a1")
    assert db.session.execute(left).scalar() is None  # recomputed: forgotten
    # moved twice before a computation: the patient it first left is the one to recompute
    write(ORG, Appointment, [appointment("a6", "2", NOW + 10 * DAY)])
    write(ORG, Appointment, [appointment("a6", "3", NOW + 10 * DAY)])
    first_left = select(Appointment.previous_patient_cliniko_id).where(Appointment.cliniko_id == "a6")
    assert db.session.execute(first_left).scalar() == "5"
    refresh_activity(ORG, now=NOW)
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW)


def test_a_patient_synced_after_its_appointments_is_recomputed(clinic):
    write(ORG, Appointment, [appointment("a9", "7", NOW + DAY)])  # its patient is fetched later
    refresh_activity(ORG, now=NOW)
    db.session.commit()
    backdate(ORG)
    patients(ORG, "7")
    assert refresh_activity(ORG, now=NOW) == 1
    db.session.commit()
    assert stored(ORG)["7"][5] == "upcoming_only" and stored(ORG) == expected(ORG, NOW)


def test_the_mark_is_kept_with_the_computation(clinic):
    org = db.session.get(Organization, ORG, populate_existing=True)
    assert (org.activity_as_of, org.activity_recent_from) == (NOW, NOW - 30 * DAY)
    assert utcnow() - org.activity_computed_at < timedelta(minutes=1)
    # a long gap (or never computed) is one pass over the whole organization
    tamper(ORG, "6")
    assert refresh_activity(ORG, now=NOW + MAX_GAP + DAY) >= 1
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW + MAX_GAP + DAY)


def test_more_candidates_than_the_cap_is_a_whole_pass(clinic, monkeypatch):
    monkeypatch.setattr(activity, "MAX_CANDIDATES", 2)
    tamper(ORG, "6")
    rows = [appointment("a1", "1", NOW - 3 * DAY), appointment("a5", "4", NOW - 4 * DAY)]
    write(ORG, Appointment, [*rows, appointment("a6", "5", NOW + 9 * DAY)])
    refresh_activity(ORG, now=NOW)
    db.session.commit()
    assert stored(ORG) == expected(ORG, NOW)  # "6" put right: everyone was read


def test_the_window_setting_moving_is_an_edge(make_app, clinic):
    with make_app(ACTIVE_PAST_DAYS=31).app_context():
        write(ORG, Appointment, [appointment("a8", "6", NOW - 30 * DAY - HOUR)])
        backdate(ORG)
        assert refresh_activity(ORG, now=NOW) == 1  # "6": only in the wider window's new day
        db.session.commit()
        assert stored(ORG) == expected(ORG, NOW, past_days=31)


def test_an_idle_refresh_that_a_run_overlapped_is_rolled_back(clinic, monkeypatch):
    real, mark = tick.refresh_activity, db.session.get(Organization, ORG).activity_computed_at

    def overlapped(org_id):
        if org_id == ORG:  # a run starts between the idle check and the pass (and may write)
            make_run(ORG, "running", age=timedelta(0))
        return real(org_id, now=NOW + 2 * HOUR)

    monkeypatch.setattr(tick, "refresh_activity", overlapped)
    assert tick.refresh_idle_activity() == 1  # OTHER only
    assert stored(ORG) == expected(ORG, NOW) != expected(ORG, NOW + 2 * HOUR)  # the pass was not kept
    assert db.session.get(Organization, ORG, populate_existing=True).activity_computed_at == mark
    assert stored(OTHER) == expected(OTHER, NOW + 2 * HOUR)


@pytest.fixture
def unmargined(make_app):
    """An app without the clock margin: a computation sees only what changed since the last one."""
    with make_app(ACTIVITY_CLOCK_MARGIN_SECONDS=0).app_context():
        yield


OPERATIONS = ("create", "reschedule", "cancel", "restore", "archive", "delete", "move", "patient", "time")
ENDED = {"cancel": "cancelled_at", "archive": "archived_at", "delete": "deleted_at"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_sequence_ends_where_a_full_pass_would(unmargined, seed):
    """Random edits, moves, new patients and time passing: each computation matches the oracle."""
    # A computation after every one to three operations; a full pass at the end writes nothing.
    rng = random.Random(seed)
    make_org(ORG, api_key=None)
    pids = [str(n) for n in range(1, 9)]
    patients(ORG, *pids)
    booked = {}  # the clinic's appointments as Cliniko has them
    now = NOW

    def book(cid=None):
        cid = cid or f"a{len(booked) + 1}"
        booked[cid] = appointment(
            cid, rng.choice(pids), now + rng.randint(-45, 45) * DAY + rng.randint(0, 23) * HOUR
        )
        return cid

    for _ in range(25):
        book()
    write(ORG, Appointment, list(booked.values()))
    backdate(ORG)
    refresh_activity(ORG, now=now)
    db.session.commit()
    for step in range(40):
        changed = set()
        for _ in range(rng.randint(1, 3)):
            op, cid = rng.choice(OPERATIONS), rng.choice(sorted(booked))
            row = booked[cid]
            if op == "create":
                changed.add(book())
            elif op == "reschedule":
                row["starts_at"] = now + rng.randint(-40, 40) * DAY + rng.choice([-1, 1]) * HOUR
            elif op in ENDED:
                row[ENDED[op]] = now - DAY
            elif op == "restore":
                row.update(cancelled_at=None, archived_at=None, deleted_at=None)
            elif op == "move":
                row["patient_cliniko_id"] = rng.choice([*pids, None])
            elif op == "patient":  # an appointment for a patient the clinic gets later
                pids.append(str(len(pids) + 1))
                row["patient_cliniko_id"] = pids[-1]
                if rng.random() < 0.5:
                    patients(ORG, pids[-1])
            else:
                now += rng.choice([timedelta(minutes=15), 6 * HOUR, 3 * DAY, -HOUR, MAX_GAP + DAY])
            if op not in ("create", "time"):
                changed.add(cid)
        if changed:
            write(ORG, Appointment, [booked[c] for c in sorted(changed)])
        if rng.random() < 0.3:
            patients(ORG, *(p for p in pids if rng.random() < 0.5))
        refresh_activity(ORG, now=now)
        db.session.commit()
        assert stored(ORG) == expected(ORG, now), (seed, step)
    assert refresh_activity(ORG, now=now, full=True) == 0


def test_an_incremental_sync_recomputes_the_patients_a_move_touched(org, account):
    """Through the engine and the simulator: an appointment moved to another patient in Cliniko."""
    assert run_inline(org).status == "completed"
    backdate(ORG_ID)  # the first run was long ago
    before = stored(ORG_ID)
    counted = [
        a
        for a in db.session.execute(
            select(Appointment).where(Appointment.organization_id == ORG_ID)
        ).scalars()
        if a.patient_cliniko_id in before and not (a.cancelled_at or a.archived_at or a.deleted_at)
    ]
    left, moved = counted[0].patient_cliniko_id, counted[0].cliniko_id
    to = next(pid for pid, values in before.items() if values[2] == 0 and pid != left)
    idle = next(pid for pid, values in before.items() if values[2] == 0 and pid != to)
    tamper(ORG_ID, idle)  # no appointment, not synced: no candidate
    account.update_appointment(moved, patient=to)

    run = run_inline(org)
    assert run.status == "completed" and run.entity_counts["appointments"]["updated"] == 1
    after = stored(ORG_ID)
    assert after[left][2] == before[left][2] - 1 and after[to][2] == 1
    assert after[idle][5] == "active"  # the pass read the candidates only
    as_of = db.session.get(Organization, ORG_ID).activity_as_of
    assert refresh_activity(ORG_ID, now=as_of, full=True) == 1  # and it agrees with a full one but for `idle`
