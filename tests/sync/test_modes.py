"""Every mode end to end against the simulator over HTTP, with exact counts."""

import math

import pytest
from sqlalchemy import select

from routiq_admin.errors import SyncAlreadyRunning
from routiq_admin.extensions import db, get_queue
from routiq_admin.models import Appointment, Patient, SyncRun
from routiq_admin.sync.plan import STEPS
from routiq_admin.sync.runs import start_import, start_sync

from .conftest import (
    ORG_ID,
    TABLES,
    appointments_in,
    count,
    distinct_ids,
    mark,
    patient_id_of,
    requests,
    run_inline,
    wait_finished,
    window_bounds,
)

REFERENCE_PATHS = {"/businesses", "/practitioners", "/practitioners/inactive", "/appointment_types"}


def assert_completed(run, mode):
    assert run.status == "completed", run.errors
    assert run.errors == []
    assert run.progress_percentage == 100.0
    assert run.completed_steps == run.total_steps == len(STEPS[mode])
    assert run.completed_at is not None and run.started_at is not None
    assert run.records_processed == sum(c["fetched"] for c in run.entity_counts.values())


def test_comprehensive_through_a_real_worker(org, account, sim, sim_server, start_worker):
    start_worker(sim_server)
    run = start_sync(org, "comprehensive", "manual")
    assert run.status == "starting" and run.sync_id.startswith(f"sync_{ORG_ID}_")
    run = wait_finished(run.id)
    assert_completed(run, "comprehensive")
    expected = {
        "businesses": account.count("businesses"),
        "practitioners": account.count("practitioners"),
        "appointment_types": account.count("appointment_types"),
        "patients": account.count("patients"),
        "appointments": account.count("appointments"),
    }
    # archived patients, archived and cancelled appointments, inactive practitioners are included
    assert len(account.patient_ids(include_archived=False)) < expected["patients"]
    assert (
        len(account.appointment_ids(include_archived=False, include_cancelled=False))
        < expected["appointments"]
    )
    for entity, n in expected.items():
        assert count(TABLES[entity]) == n, entity
        assert run.entity_counts[entity]["fetched"] == n, entity
        assert run.entity_counts[entity]["created"] == n, entity
        assert run.entity_counts[entity]["updated"] == 0, entity
    assert distinct_ids(Patient) == set(account.patient_ids())
    assert distinct_ids(Appointment) == set(account.appointment_ids())
    assert run.records_total == run.records_processed == sum(expected.values())
    assert run.run_metadata["sync_type"] == "comprehensive"
    assert run.run_metadata["patients_processed"] == expected["patients"]
    assert run.run_metadata["appointments_processed"] == expected["appointments"]
    # exactly the request floor: one per 100 records, plus the reference data
    reqs = requests(sim)
    by_path = {}
    for req in reqs:
        by_path[req.path] = by_path.get(req.path, 0) + 1
    assert by_path["/patients"] == math.ceil(expected["patients"] / 100)
    assert by_path["/individual_appointments"] == math.ceil(expected["appointments"] / 100)
    assert {p for p in by_path if p not in ("/patients", "/individual_appointments")} == REFERENCE_PATHS
    assert run.cliniko_requests == len(reqs)
    assert mark("patients") is not None and mark("appointments") is not None
    # the job ran in the worker and is done in RQ too
    assert get_queue().fetch_job(run.job_id).get_status() == "finished"


def test_basic_fetches_patients_and_the_window(org, account, sim, by_worker):
    run = by_worker(org, "basic")
    assert_completed(run, "basic")
    lo, hi = window_bounds(sim)
    window = appointments_in(account, lo, hi)
    assert 0 < len(window) < account.count("appointments")
    assert count(Patient) == account.count("patients")
    assert distinct_ids(Appointment) == set(window)
    assert run.entity_counts["appointments"]["fetched"] == len(window)
    assert run.entity_counts["patients"]["created"] == account.count("patients")
    assert not any(req.path in REFERENCE_PATHS for req in requests(sim))
    # the window is [now - 30 days, now + 30 days) around the run
    assert abs((hi - lo).total_seconds() - 60 * 86400) <= 2
    assert run.started_at.timestamp() - 30 * 86400 - 2 <= lo.timestamp() <= run.completed_at.timestamp()
    # patients are marked; windowed appointments never are
    assert mark("patients") is not None and mark("appointments") is None


def test_active_fetches_the_window_and_only_referenced_patients(org, account, sim, by_worker):
    run = by_worker(org, "active")
    assert_completed(run, "active")
    lo, hi = window_bounds(sim)
    window = appointments_in(account, lo, hi)
    referenced = {patient_id_of(a) for a in window.values()}
    assert distinct_ids(Appointment) == set(window)
    assert distinct_ids(Patient) == referenced
    assert len(referenced) < account.count("patients")
    patient_reqs = [r for r in requests(sim) if r.path == "/patients"]
    assert len(patient_reqs) == math.ceil(len(referenced) / 100)
    assert all(any(f.startswith("id:=") for f in r.q) for r in patient_reqs)
    assert mark("patients") is None and mark("appointments") is None
    assert run.entity_counts["patients"]["created"] == len(referenced)


def test_patients_only(org, account, sim, by_worker):
    run = by_worker(org, "patients-only")
    assert_completed(run, "patients-only")
    assert distinct_ids(Patient) == set(account.patient_ids())
    assert count(Appointment) == 0
    assert {r.path for r in requests(sim)} == {"/patients"}
    assert all("archived_at:*" in r.q for r in requests(sim))
    assert run.entity_counts == {
        "patients": {
            "fetched": account.count("patients"),
            "created": account.count("patients"),
            "updated": 0,
            "unchanged": 0,
            "failed": 0,
        }
    }


def test_import_patients(org, account, sim, sim_server, start_worker):
    first = run_inline(org, "patients-only")
    assert first.status == "completed"
    db.session.execute(Patient.__table__.delete().where(Patient.organization_id == ORG_ID))
    db.session.commit()
    sim.reset_stats()
    run = start_import(org, trigger="api")
    assert run.kind == "import" and run.mode == "import" and run.full is True
    assert run.sync_id.startswith(f"import_{ORG_ID}_")
    # it takes the organization's one active slot
    with pytest.raises(SyncAlreadyRunning):
        start_sync(org, "basic", "manual")
    start_worker(sim_server)
    run = wait_finished(run.id)
    assert_completed(run, "import")
    # all of them, ignoring the mark the first run set
    assert distinct_ids(Patient) == set(account.patient_ids())
    assert run.entity_counts["patients"]["created"] == account.count("patients")
    assert all(not any(f.startswith("updated_at") for f in r.q) for r in requests(sim))
    assert mark("patients") is not None
    kinds = db.session.execute(select(SyncRun.kind).where(SyncRun.organization_id == ORG_ID)).scalars().all()
    assert sorted(kinds) == ["import", "sync"]


def test_basic_then_comprehensive_still_fetches_every_appointment(org, account, sim, by_worker):
    basic = by_worker(org, "basic")
    assert basic.status == "completed"
    assert count(Appointment) < account.count("appointments")
    sim.reset_stats()
    comp = by_worker(org, "comprehensive")
    assert comp.status == "completed", comp.errors
    assert distinct_ids(Appointment) == set(account.appointment_ids())
    appt_reqs = [r for r in requests(sim) if r.path == "/individual_appointments"]
    assert all(not any(f.startswith(("updated_at", "starts_at")) for f in r.q) for r in appt_reqs)
    assert comp.entity_counts["appointments"]["fetched"] == account.count("appointments")
    # the patients mark basic set is used (and no patient changed since)
    patient_reqs = [r for r in requests(sim) if r.path == "/patients"]
    assert len(patient_reqs) == 1 and any(f.startswith("updated_at:>=") for f in patient_reqs[0].q)
    assert comp.entity_counts["patients"]["created"] == 0
    assert comp.entity_counts["patients"]["updated"] == 0
