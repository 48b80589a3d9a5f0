"""The synced data over the API: summary, patients and appointments pages, filters, cursors that
hold while a sync writes, and the Python client iterating pages. Every response is checked
against the OpenAPI document (the `api` fixture)."""

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from routiq_admin.client import RoutiqClient
from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient, utcnow
from routiq_admin.sync import records
from routiq_admin.sync.engine import SyncEngine
from routiq_admin.sync.runs import start_sync
from routiq_admin.timefmt import iso
from tests.api.conftest import KEY_A
from tests.conftest import serve_simulator

BASE = "/api/v1/organizations/org_a"


def sync(org, mode="comprehensive"):
    """Run a real sync of `org` from the simulator in this process; return the finished row."""
    run = start_sync(org, mode, "manual")
    SyncEngine(run.id, run.job_id).run()
    db.session.rollback()
    db.session.refresh(run)
    assert run.status == "completed", run.errors
    return run


def pages(api, path, token, **params):
    """Follow next_cursor from the first page to the last; return (items, number of pages)."""
    items, cursor, count = [], None, 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, token=token, query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["data"]
        count += 1
        assert body["has_more"] == (body["next_cursor"] is not None)
        cursor = body["next_cursor"]
        if cursor is None:
            return items, count


def live_patient_ids(org_id="org_a"):
    stmt = select(Patient.cliniko_id).where(
        Patient.organization_id == org_id, Patient.archived_at.is_(None), Patient.deleted_at.is_(None)
    )
    return set(db.session.execute(stmt).scalars())


@pytest.fixture
def synced(api, orgs):
    """Clinic A synced from the simulator (651 patients, 296 appointments)."""
    return sync(orgs.a)


def test_patients_pages_cover_every_live_patient_once(api, orgs, synced):
    items, count = pages(api, f"{BASE}/patients", orgs.token_a_read, limit=100)
    ids = [p["cliniko_id"] for p in items]
    assert len(ids) == len(set(ids)) and set(ids) == live_patient_ids()
    assert count == -(-len(ids) // 100)
    patient = db.session.execute(
        select(Patient).filter_by(organization_id="org_a", cliniko_id=ids[0])
    ).scalar()
    first = items[0]
    assert first["display_name"] == patient.display_name and first["email"] == patient.email
    assert first["activity_status"] == patient.activity_status
    assert first["total_appointment_count"] == patient.total_appointment_count
    assert first["updated_at"] == iso(patient.synced_at)
    assert "phone" not in first and "date_of_birth" not in first  # what the dashboard shows, no more


def test_default_limit_and_the_500_ceiling(api, orgs, synced):
    body = api.get(f"{BASE}/patients", token=orgs.token_a_read).get_json()
    assert body["limit"] == 100 and len(body["data"]) == 100 and body["has_more"]
    body = api.get(f"{BASE}/patients?limit=500", token=orgs.token_a_read).get_json()
    assert len(body["data"]) == 500 and body["has_more"]
    response = api.get(f"{BASE}/patients?limit=501", token=orgs.token_a_read)
    assert response.status_code == 422 and response.get_json()["details"]["field"] == "limit"


def test_patient_filters(api, orgs, synced):
    token = orgs.token_a_read
    counts = records.activity_counts("org_a")
    for activity, expected in counts.items():
        items, _ = pages(api, f"{BASE}/patients", token, activity=activity, limit=500)
        assert len(items) == expected and {p["activity_status"] for p in items} <= {activity}
    assert sum(counts.values()) == len(live_patient_ids()) and counts["inactive"] < len(live_patient_ids())

    archived = db.session.execute(
        select(func.count()).where(Patient.organization_id == "org_a", Patient.archived_at.is_not(None))
    ).scalar()
    assert archived > 0
    everyone, _ = pages(api, f"{BASE}/patients", token, archived="true", limit=500)
    assert len(everyone) == len(live_patient_ids()) + archived
    assert any(p["archived_at"] for p in everyone)

    target = next(p for p in everyone if p["last_name"] and not p["archived_at"])
    term = target["last_name"][1:4].upper()
    found, _ = pages(api, f"{BASE}/patients", token, q=term, limit=500)
    assert target["cliniko_id"] in {p["cliniko_id"] for p in found}
    assert all(
        term.lower() in f"{p['first_name']} {p['last_name']} {p['preferred_first_name']} {p['email']}".lower()
        for p in found
    )
    assert api.get(f"{BASE}/patients?q=%25", token=token).get_json()["data"] == []  # LIKE escapes


def test_updated_since_returns_only_what_a_later_sync_changed(api, orgs, sim_server, synced):
    account = sim_server.simulator.account(KEY_A)
    changed = account.patient_ids(include_archived=False)[5:10]
    since = utcnow()
    for pid in changed:
        account.update_patient(pid, first_name="Changed")
    sync(orgs.a, "patients-only")
    items, _ = pages(api, f"{BASE}/patients", orgs.token_a_read, updated_since=iso(since))
    assert {p["cliniko_id"] for p in items} == set(changed)
    assert {p["first_name"] for p in items} == {"Changed"}
    # A date is midnight UTC; the future holds nothing.
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert (
        api.get(f"{BASE}/patients?updated_since={tomorrow}", token=orgs.token_a_read).get_json()["data"] == []
    )


def test_appointment_filters(api, orgs, synced):
    token = orgs.token_a_read
    stored = db.session.execute(select(Appointment).filter_by(organization_id="org_a")).scalars().all()
    everything, _ = pages(api, f"{BASE}/appointments", token, limit=50)
    assert sorted(a["cliniko_id"] for a in everything) == sorted(a.cliniko_id for a in stored)
    statuses = Counter(records.appointment_status(a) for a in stored)
    assert len(statuses) > 1
    for status, expected in statuses.items():
        items, _ = pages(api, f"{BASE}/appointments", token, status=status, limit=500)
        assert len(items) == expected and {a["status"] for a in items} == {status}

    starts = sorted(a.starts_at for a in stored)
    lo, hi = starts[len(starts) // 4], starts[3 * len(starts) // 4]
    items, _ = pages(api, f"{BASE}/appointments", token, **{"from": iso(lo), "to": iso(hi)}, limit=500)
    assert len(items) == sum(1 for s in starts if lo <= s < hi) and 0 < len(items) < len(stored)

    patient = Counter(a.patient_cliniko_id for a in stored).most_common(1)[0]
    items, _ = pages(api, f"{BASE}/appointments", token, patient_id=patient[0], limit=500)
    assert len(items) == patient[1] and {a["patient_cliniko_id"] for a in items} == {patient[0]}
    assert all(a["patient_name"] and a["practitioner_name"] for a in items)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=abc",
        "cursor=not-a-cursor",
        "cursor=YWZ0ZXI6eA",  # after:x
        "updated_since=yesterday",
        "updated_since=2025-06-30T12:00:00",  # no offset
        "updated_since=0001-01-01",
        "activity=busy",
        "archived=maybe",
        "q=a%00b",
    ],
)
def test_patient_parameters_are_validated(api, orgs, query):
    response = api.get(f"{BASE}/patients?{query}", token=orgs.token_a_read)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["details"]["field"] == query.split("=")[0]


@pytest.mark.parametrize(
    "query", ["from=2025-13-01", "to=soon", "status=done", "patient_id=" + "9" * 33, "limit=501"]
)
def test_appointment_parameters_are_validated(api, orgs, query):
    response = api.get(f"{BASE}/appointments?{query}", token=orgs.token_a_read)
    assert response.status_code == 422 and response.get_json()["details"]["field"] == query.split("=")[0]


def test_summary_reuses_the_dashboard_numbers(api, orgs, synced):
    body = api.get(f"{BASE}/summary", token=orgs.token_a_read).get_json()
    total, active = records.patient_counts("org_a")
    by_activity = records.activity_counts("org_a")
    assert body["total_patients"] == total and body["active_patients"] == active
    assert body["patients_by_activity"] == by_activity
    assert active == total - by_activity["inactive"] and 0 < active < total
    assert body["patients_with_recent_appointments"] == (
        db.session.execute(
            select(func.count()).where(
                Patient.organization_id == "org_a",
                Patient.archived_at.is_(None),
                Patient.deleted_at.is_(None),
                Patient.recent_appointment_count > 0,
            )
        ).scalar()
    )
    counts = body["appointments"]
    assert counts["in_window"] > 0 and counts["recent"] + counts["upcoming"] >= counts["in_window"]
    assert body["last_successful_sync_at"] == iso(synced.completed_at)
    fresh = body["freshness"]
    assert set(fresh) == {"patients", "appointments", "businesses", "practitioners", "appointment_types"}
    assert fresh["patients"]["stored"] == db.session.query(Patient).filter_by(organization_id="org_a").count()
    assert fresh["patients"]["last_synced_at"] is not None


def test_summary_of_an_empty_organization(api, orgs):
    body = api.get("/api/v1/organizations/org_b/summary", token=orgs.token_all_read).get_json()
    assert body["total_patients"] == 0 and body["last_successful_sync_at"] is None
    assert body["freshness"]["patients"] == {"last_synced_at": None, "data_as_of": None, "stored": 0}


def test_python_client_iterates_every_page(orgs, synced, live_server):
    client = RoutiqClient(live_server, orgs.token_a_read, "org_a")
    ids = [p["cliniko_id"] for p in client.patients(limit=100)]
    assert len(ids) == len(set(ids)) and set(ids) == live_patient_ids() and len(ids) > 100
    active = list(client.patients(activity="active", limit=7))
    assert len(active) == records.activity_counts("org_a")["active"]
    appointments = list(client.appointments(start=utcnow() - timedelta(days=3650), limit=100))
    assert len(appointments) == db.session.query(Appointment).filter_by(organization_id="org_a").count()
    assert client.summary()["total_patients"] == len(ids)


# ---- paging while a sync writes -------------------------------------------------------------------

BIG = 5000


@pytest.fixture
def big_server():
    yield from serve_simulator(patients=BIG, appointments=50)


@pytest.fixture
def big(make_app, big_server):
    """An app whose clinic A has 5,000 synced patients, and the simulated clinic behind it."""
    from tests.api.conftest import CheckedClient
    from tests.factories import make_org, make_token

    app = make_app(CLINIKO_BASE_URL=big_server.base_url, API_RATE_LIMIT_READ_PER_MINUTE=10**6)
    with app.app_context():
        org = make_org("org_a", "Clinic A", api_key=KEY_A)
        _, token = make_token(org, scopes=("patients:read",))
        sync(org, "patients-only")
        yield org, token, CheckedClient(app.test_client()), big_server.simulator.account(KEY_A)


def test_paging_5000_patients_while_a_sync_changes_500_returns_each_once(big):
    org, token, api, account = big
    ids = account.patient_ids(include_archived=True)
    assert len(ids) == BIG
    before = set(
        db.session.execute(select(Patient.cliniko_id).where(Patient.organization_id == org.id)).scalars()
    )
    assert len(before) == BIG

    seen, changed, cursor, rounds = [], set(), None, 0
    while True:
        query = {"limit": 250, "archived": "true", **({"cursor": cursor} if cursor else {})}
        body = api.get(f"{BASE}/patients", token=token, query_string=query).get_json()
        seen += [p["cliniko_id"] for p in body["data"]]
        rounds += 1
        if rounds in (3, 11):
            # A sync lands between pages: 250 patients renamed so they would sort first by name,
            # half already read, half not yet; the second time also 10 new patients.
            unread = sorted(before - set(seen))
            batch = [p for p in seen if p not in changed][:125] + [p for p in unread if p not in changed][
                :125
            ]
            for pid in batch:
                account.update_patient(pid, last_name="Aaaaa-changed", first_name=f"Round{rounds}")
            changed |= set(batch)
            if rounds == 11:
                for n in range(10):
                    account.add_patient(first_name="Late", last_name=f"Arrival{n}")
            sync(org, "patients-only")
        cursor = body["next_cursor"]
        if cursor is None:
            break

    counts = Counter(seen)
    assert not [pid for pid, n in counts.items() if n > 1], "a patient came twice"
    assert before <= set(counts), f"{len(before - set(counts))} patients were skipped"
    assert len(changed) == 500
    renamed = db.session.execute(
        select(Patient.cliniko_id).where(
            Patient.organization_id == org.id, Patient.last_name == "Aaaaa-changed"
        )
    ).scalars()
    assert set(renamed) == changed  # the syncs did change those 500 while we paged
