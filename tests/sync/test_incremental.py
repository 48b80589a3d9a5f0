"""Marks and incremental runs: unchanged clinics, exact pick-up of changes, windowed fetches,
edits that land while a run is paging."""

from datetime import timedelta
from urllib.parse import parse_qs

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Organization, Patient
from routiq_admin.sync.engine import MARK_OVERLAP

from .conftest import (
    ORG_ID,
    TABLES,
    appointments_in,
    distinct_ids,
    mark,
    parse_ts,
    requests,
    run_inline,
    synced_at,
    window_bounds,
)

UNFILTERED = ("/patients", "/individual_appointments")


def snapshot():
    return {entity: synced_at(model) for entity, model in TABLES.items()}


def test_second_run_without_changes_costs_one_request_per_entity_and_changes_no_row(org, account, sim):
    first = run_inline(org, "comprehensive")
    assert first.status == "completed", first.errors
    before = snapshot()
    marks = {e: mark(e) for e in ("patients", "appointments")}
    sim.reset_stats()

    second = run_inline(org, "comprehensive")
    assert second.status == "completed", second.errors
    reqs = requests(sim)
    paths = [r.path for r in reqs]
    # one request per unfiltered entity (filtered by the mark), one per small reference list
    for path in UNFILTERED:
        assert paths.count(path) == 1, path
        (req,) = [r for r in reqs if r.path == path]
        since = parse_ts(next(f for f in req.q if f.startswith("updated_at:>="))[len("updated_at:>=") :])
        assert since == marks["patients" if path == "/patients" else "appointments"] - MARK_OVERLAP
        assert req.params.get("sort") == "updated_at:asc"
    assert len(paths) == len(set(paths)) == 6
    assert second.cliniko_requests == 6
    for entity, counts in second.entity_counts.items():
        assert counts["created"] == counts["updated"] == counts["failed"] == 0, entity
        assert counts["unchanged"] == counts["fetched"], entity
    # the overlap re-reads a few records of the mark's own second, and writes none of them
    assert 0 < second.entity_counts["patients"]["fetched"] < 100
    assert snapshot() == before
    assert {e: mark(e) for e in marks} == marks


def test_full_run_ignores_the_marks_and_still_changes_no_row(org, account, sim):
    assert run_inline(org, "patients-only").status == "completed"
    before = synced_at(Patient)
    sim.reset_stats()
    run = run_inline(org, "patients-only", full=True)
    assert run.status == "completed" and run.full is True
    (req, *rest) = [r for r in requests(sim) if r.path == "/patients"]
    assert not any(f.startswith("updated_at") for f in req.q)
    assert len(rest) + 1 == 7
    counts = run.entity_counts["patients"]
    assert counts["fetched"] == counts["unchanged"] == account.count("patients")
    assert synced_at(Patient) == before


def test_incremental_run_picks_up_exactly_the_changes(org, account, sim):
    assert run_inline(org, "comprehensive").status == "completed"
    before = {"patients": synced_at(Patient), "appointments": synced_at(Appointment)}
    marks = {e: mark(e) for e in before}
    live_patients = account.patient_ids(include_archived=False)
    live_appts = account.appointment_ids(include_archived=False, include_cancelled=False)

    new_patient = account.add_patient(first_name="Nora", last_name="Newcomer", email="nora@example.com")
    changed_patient = account.update_patient(live_patients[3], email="changed@example.com")
    archived_patient = account.archive_patient(live_patients[4])
    new_appt = account.add_appointment(patient_id=new_patient["id"])
    moved = parse_ts(account.get("appointments", live_appts[5])["starts_at"]) + timedelta(hours=1)
    changed_appt = account.update_appointment(live_appts[5], starts_at=moved)
    cancelled_appt = account.cancel_appointment(live_appts[6])
    archived_appt = account.archive_appointment(live_appts[7])
    sim.reset_stats()

    run = run_inline(org, "comprehensive")
    assert run.status == "completed", run.errors
    p, a = run.entity_counts["patients"], run.entity_counts["appointments"]
    assert (p["created"], p["updated"]) == (1, 2)
    assert (a["created"], a["updated"]) == (1, 3)
    assert [r.path for r in requests(sim)].count("/patients") == 1

    after = {"patients": synced_at(Patient), "appointments": synced_at(Appointment)}
    touched = {
        entity: {cid for cid, at in after[entity].items() if before[entity].get(cid) != at}
        for entity in after
    }
    assert touched["patients"] == {new_patient["id"], changed_patient["id"], archived_patient["id"]}
    assert touched["appointments"] == {
        new_appt["id"],
        changed_appt["id"],
        cancelled_appt["id"],
        archived_appt["id"],
    }
    db.session.rollback()
    by_id = {
        row.cliniko_id: row
        for row in db.session.query(Patient).filter(
            Patient.cliniko_id.in_([new_patient["id"], changed_patient["id"], archived_patient["id"]])
        )
    }
    assert by_id[new_patient["id"]].first_name == "Nora"
    assert by_id[changed_patient["id"]].email == "changed@example.com"
    assert by_id[archived_patient["id"]].archived_at == parse_ts(archived_patient["archived_at"])
    appts = {
        row.cliniko_id: row
        for row in db.session.query(Appointment).filter(
            Appointment.cliniko_id.in_(
                [new_appt["id"], changed_appt["id"], cancelled_appt["id"], archived_appt["id"]]
            )
        )
    }
    assert appts[new_appt["id"]].patient_cliniko_id == new_patient["id"]
    assert appts[new_appt["id"]].patient is not None  # linked to the local row
    assert appts[changed_appt["id"]].starts_at == moved
    assert appts[cancelled_appt["id"]].cancelled_at is not None
    assert appts[archived_appt["id"]].archived_at is not None
    # archiving never deletes: every patient is still here
    assert distinct_ids(Patient) == set(account.patient_ids())
    # the marks moved to the newest change, or stayed (changes in the run's own second are re-read)
    assert mark("patients") in (marks["patients"], parse_ts(archived_patient["updated_at"]))
    newest_appt = max(
        parse_ts(x["updated_at"]) for x in (new_appt, changed_appt, cancelled_appt, archived_appt)
    )
    assert mark("appointments") in (marks["appointments"], newest_appt)


def test_appointment_entering_the_window_unedited_is_picked_up_by_active(
    org, account, sim, make_app, sim_server
):
    first = run_inline(org, "active")
    assert first.status == "completed", first.errors
    lo, hi = window_bounds(sim)
    have = distinct_ids(Appointment)
    # appointments 30..60 days back: outside the first window, never edited since
    older = appointments_in(account, lo - timedelta(days=30) + timedelta(hours=1), lo - timedelta(hours=1))
    assert older and not (set(older) & have)
    assert all(parse_ts(a["updated_at"]) < first.started_at for a in older.values())
    sim.reset_stats()

    wider = make_app(CLINIKO_BASE_URL=sim_server.base_url, ACTIVE_PAST_DAYS=60)
    with wider.app_context():
        run = run_inline(db.session.get(Organization, ORG_ID), "active")
        assert run.status == "completed", run.errors
        assert set(older) <= distinct_ids(Appointment)
        assert have <= distinct_ids(Appointment)
        # patients of the newly seen appointments were fetched by id
        assert {a["patient"]["links"]["self"].rsplit("/", 1)[1] for a in older.values()} <= distinct_ids(
            Patient
        )
        (req,) = [r for r in requests(sim) if r.path == "/individual_appointments"]
        assert not any(f.startswith("updated_at") for f in req.q)


def test_record_edited_while_paging_is_never_lost(org, account, sim):
    """An edit between pages shifts offset paging; the mark must not move so the next run heals it."""
    assert run_inline(org, "patients-only").status == "completed"
    mark_1 = mark("patients")
    # 150 patients changed a while ago (after the mark, before this run): two pages to read
    stamp = max(int(mark_1.timestamp()) + 1, int(sim.clock()) - 120)
    added = [
        account.add_patient(first_name=f"Batch{k}", created_at=stamp, updated_at=stamp)["id"]
        for k in range(150)
    ]
    edited = {}

    def edit_after_first_page(key, path, query, status):
        params = parse_qs(query)
        if path.endswith("/patients") and "page" not in params and "sort" in params and not edited:
            edited.update(account.update_patient(added[0], email="edited-mid-run@example.com"))

    sim.add_hook(edit_after_first_page)
    second = run_inline(org, "patients-only")
    assert second.status == "completed", second.errors
    assert edited, "the hook did not fire"
    assert sim.hook_errors == []
    # the run saw a record edited after its first page: offset paging may have skipped one
    assert mark("patients") == mark_1
    missing = set(account.patient_ids()) - distinct_ids(Patient)
    # offset paging skipped the row that shifted across the page boundary: the next run heals it
    assert len(missing) == 1

    third = run_inline(org, "patients-only")
    assert third.status == "completed", third.errors
    assert distinct_ids(Patient) == set(account.patient_ids())
    db.session.rollback()
    row = db.session.query(Patient).filter_by(organization_id=ORG_ID, cliniko_id=added[0]).one()
    assert row.email == "edited-mid-run@example.com"
    assert row.cliniko_updated_at == parse_ts(edited["updated_at"])
    stamps = dict(
        db.session.query(Patient.cliniko_id, Patient.cliniko_updated_at).filter_by(organization_id=ORG_ID)
    )
    for pid in added:
        assert stamps[pid] == parse_ts(account.get("patients", pid)["updated_at"])
