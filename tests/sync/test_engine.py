"""Engine details: referenced patients fetched in id batches, relations, dangling ids, 429 waits."""

import math
from urllib.parse import parse_qs

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient, Practitioner
from tests.conftest import app_for, serve_simulator
from tests.factories import make_org

from .conftest import (
    KEY,
    ORG_ID,
    appointments_in,
    distinct_ids,
    patient_id_of,
    requests,
    run_inline,
    window_bounds,
)


@pytest.fixture
def big_server():
    """A clinic whose activity window references a few hundred patients."""
    yield from serve_simulator(patients=3000, appointments=2500)


@pytest.fixture
def big_app(make_app, big_server):
    yield from app_for(make_app, big_server)


def id_filters(req):
    (ids,) = [f[len("id:=") :] for f in req.q if f.startswith("id:=")]
    return ids.split(",")


def test_active_fetches_missing_patients_in_batches_of_at_most_100_ids(big_app, big_server):
    sim = big_server.simulator
    account = sim.account(KEY)
    org = make_org(ORG_ID, "Big Clinic", api_key=KEY)
    # a few referenced patients are already here: only the missing ones are asked for
    run = run_inline(org, "patients-only")
    assert run.status == "completed"
    db.session.execute(
        Patient.__table__.delete().where(
            Patient.organization_id == ORG_ID, Patient.cliniko_id.not_in(account.patient_ids()[:50])
        )
    )
    db.session.commit()
    already = distinct_ids(Patient)
    sim.reset_stats()

    run = run_inline(org, "active")
    assert run.status == "completed", run.errors
    lo, hi = window_bounds(sim)
    window = appointments_in(account, lo, hi)
    referenced = {patient_id_of(a) for a in window.values()}
    missing = referenced - already
    assert len(missing) > 200, "the window must reference enough patients to need several batches"

    patient_reqs = [r for r in requests(sim) if r.path == "/patients"]
    batches = [id_filters(r) for r in patient_reqs]
    assert len(patient_reqs) == math.ceil(len(missing) / 100)  # never one request per patient
    assert all(len(b) <= 100 for b in batches)
    assert all("archived_at:*" in r.q for r in patient_reqs)
    requested = [i for b in batches for i in b]
    assert sorted(requested) == sorted(missing)  # each missing id once, nothing already here
    assert distinct_ids(Patient) == already | referenced
    assert run.entity_counts["patients"]["created"] == len(missing)

    # nothing is missing any more: the next active run asks for no patient
    sim.reset_stats()
    again = run_inline(org, "active")
    assert again.status == "completed"
    assert [r for r in requests(sim) if r.path == "/patients"] == []


def test_relations_link_local_rows_and_dangling_ids_crash_nothing(org, account, sim):
    # an appointment stored earlier points at a patient Cliniko does not have
    db.session.add(Appointment(organization_id=ORG_ID, cliniko_id="42", patient_cliniko_id="4242424242"))
    db.session.commit()
    run = run_inline(org, "comprehensive")
    assert run.status == "completed", run.errors
    db.session.rollback()
    appts = db.session.query(Appointment).filter(Appointment.cliniko_id != "42").all()
    assert len(appts) == account.count("appointments")
    for a in appts:
        raw = account.get("appointments", a.cliniko_id)
        assert a.patient_cliniko_id == patient_id_of(raw)
        assert a.practitioner_cliniko_id == raw["practitioner"]["links"]["self"].rsplit("/", 1)[1]
        assert a.business_cliniko_id == raw["business"]["links"]["self"].rsplit("/", 1)[1]
        assert a.appointment_type_cliniko_id == raw["appointment_type"]["links"]["self"].rsplit("/", 1)[1]
        assert a.patient is not None and a.patient.cliniko_id == a.patient_cliniko_id
        assert isinstance(a.practitioner, Practitioner)
    # the dangling id was asked for once, in a batch, and simply not found
    batch_reqs = [
        r for r in requests(sim) if r.path == "/patients" and any(f.startswith("id:=") for f in r.q)
    ]
    assert len(batch_reqs) == 1 and id_filters(batch_reqs[0]) == ["4242424242"]
    dangling = db.session.query(Appointment).filter_by(cliniko_id="42").one()
    assert dangling.patient is None


def test_rate_limited_page_waits_and_completes(org, account, sim):
    sim.inject("rate_limit", count=1, path="/patients", reset_seconds=1)
    run = run_inline(org, "patients-only")
    assert run.status == "completed", run.errors
    assert run.rate_limit_waits == 1
    assert run.rate_limit_wait_seconds >= 1
    assert run.rate_limited_until is None
    assert distinct_ids(Patient) == set(account.patient_ids())
    statuses = [r.status for r in requests(sim)]
    assert statuses.count(429) == 1
    assert run.cliniko_requests == len(statuses)


def test_independent_first_pages_travel_together_and_requests_stay_at_the_floor(slow_app, slow_server):
    """Reference lists in one round trip; appointments' page 1 goes out with patients' page 1."""
    org = make_org(ORG_ID, "Slow Clinic", api_key=KEY)
    run = run_inline(org)
    assert run.status == "completed"
    sim = slow_server.simulator
    log = sorted((mono, target) for mono, _w, k, _m, target, _s in sim.request_log if k == KEY)

    def arrival(resource, page):
        for mono, target in log:
            path, _, query = target.split("/v1/", 1)[1].partition("?")
            if path == resource and parse_qs(query).get("page", ["1"]) == [str(page)]:
                return mono
        raise AssertionError(f"no request for {resource} page {page}")

    reference = {"businesses", "practitioners", "practitioners/inactive", "appointment_types"}
    assert {target.split("/v1/", 1)[1].split("?")[0] for _, target in log[:4]} == reference
    # the reference step waits for all four before the patients step starts
    assert arrival("individual_appointments", 1) < arrival("patients", 2)
    account = sim.account(KEY)
    floor = 4 + math.ceil(account.count("patients") / 100) + math.ceil(account.count("appointments") / 100)
    assert len(log) == run.cliniko_requests == floor
