"""Issue 15 on the server side: filters that say what they refused, one meaning of "active",
one name per person, run labels written once for people, and honest progress operations."""

import re
from datetime import timedelta

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient, utcnow
from routiq_admin.sync.records import patient_counts
from tests.factories import login, make_org, make_run, make_user
from tests.web.helpers import HX


@pytest.fixture
def org(client):
    org = make_org()
    make_user(org=org, role="viewer")
    login(client)
    return org


def _patients(org, statuses):
    db.session.add_all(
        Patient(
            organization_id=org.id, cliniko_id=str(i), first_name=f"P{i}", last_name="Lee", activity_status=s
        )
        for i, s in enumerate(statuses)
    )
    db.session.commit()


@pytest.mark.parametrize(
    "path, field",
    [
        ("patients?activity=weird", "patient-activity"),
        ("appointments?status=weird", "appt-status"),
        ("appointments?from=2026-13-40", "appt-from"),
        ("appointments?to=garbage", "appt-to"),
        ("appointments?from=2026-03-10&to=2026-03-01", "appt-to"),
        ("syncs?status=weird", "history-status"),
        ("syncs?trigger=weird", "history-trigger"),
        ("syncs?mode=weird", "history-mode"),
    ],
)
def test_bad_filters_render_the_page_with_the_field_marked(client, org, path, field):
    response = client.get(f"/orgs/{org.id}/{path}")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "<html" in html and "Bad Request" not in html
    assert f'id="{field}"' in html and f'aria-describedby="{field}-error"' in html
    assert f'<p class="field-error" id="{field}-error">' in html


def test_to_before_from_is_said_not_clamped(client, org):
    html = client.get(f"/orgs/{org.id}/appointments?from=2026-03-10&to=2026-03-01").get_data(as_text=True)
    assert "“To” is before “From”" in html
    # htmx swaps only 2xx: the fragment answers 200 and brings the marked form out of band.
    frag = client.get(f"/orgs/{org.id}/appointments?from=2026-03-10&to=2026-03-01", headers=HX)
    html = frag.get_data(as_text=True)
    assert frag.status_code == 200 and "<html" not in html
    assert '<form id="appointments-filters"' in html and 'hx-swap-oob="true"' in html
    assert 'aria-describedby="appt-to-error"' in html
    valid = client.get(f"/orgs/{org.id}/appointments?from=2026-03-01", headers=HX).get_data(as_text=True)
    assert "appointments-filters" not in valid


def test_page_past_the_end_shows_the_last_page(client, org):
    _patients(org, ["inactive"] * 30)
    html = client.get(f"/orgs/{org.id}/patients?page=999", headers=HX).get_data(as_text=True)
    assert "30 found" in html and "No patients match" not in html and "Page 2 of 2" in html
    assert html.count('<td data-label="Name">') == 5
    for i in range(12):
        make_run(org.id, "completed", age=timedelta(minutes=100 - i))
    history = client.get(f"/orgs/{org.id}/syncs?page=50", headers=HX).get_data(as_text=True)
    assert "Page 2 of 2" in history and history.count("<tr data-sync-id") == 2


def test_active_means_any_status_but_inactive_everywhere(client, org):
    _patients(org, ["active", "recently_active", "upcoming_only", "inactive", "inactive"])
    assert patient_counts(org.id) == (5, 3)
    listed = client.get("/").get_data(as_text=True)
    assert "3 <span" in listed and "of 5" in listed
    active = client.get(f"/orgs/{org.id}/patients?activity=active", headers=HX).get_data(as_text=True)
    assert "3 found" in active
    both = client.get(f"/orgs/{org.id}/patients?activity=recent_and_upcoming", headers=HX)
    assert "1 found" in both.get_data(as_text=True)
    page = client.get(f"/orgs/{org.id}/patients").get_data(as_text=True)
    # No status is labelled plain "Active": that word is kept for the count above.
    assert ">Active (any but inactive)<" in page and ">Active<" not in page
    for label in ("Recent and upcoming", "Recent only", "Upcoming only", "Inactive"):
        assert f">{label}<" in page


def test_one_name_per_person_on_patients_and_appointments(client, org):
    db.session.add_all(
        [
            Patient(
                organization_id=org.id,
                cliniko_id="p1",
                first_name="Margaret",
                preferred_first_name="Peggy",
                last_name="Lee",
            ),
            Patient(organization_id=org.id, cliniko_id="p2", first_name="Ann", last_name="Ng"),
            Appointment(organization_id=org.id, cliniko_id="a1", patient_cliniko_id="p1", starts_at=utcnow()),
            Appointment(organization_id=org.id, cliniko_id="a2", patient_cliniko_id="p2", starts_at=utcnow()),
        ]
    )
    db.session.commit()
    for path in ("patients", "appointments"):
        html = client.get(f"/orgs/{org.id}/{path}", headers=HX).get_data(as_text=True)
        assert "Peggy Lee" in html and "(legal name Margaret Lee)" in html, path
        assert "Ann Ng" in html and "legal name Ann" not in html, path


def test_run_labels_say_each_word_once(client, org):
    make_run(
        org.id, "completed", trigger="scheduled", triggered_by_label="scheduled", age=timedelta(minutes=9)
    )
    make_run(
        org.id,
        "completed",
        kind="import",
        mode="import",
        full=True,
        trigger="manual",
        triggered_by_label="staff@example.com",
        age=timedelta(minutes=5),
    )
    history = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    history = re.sub(r"<wbr>|</?span[^>]*>", "", history)  # emails carry wrap points
    assert "scheduled scheduled" not in history.lower() and "import · import" not in history
    assert "Comprehensive sync" in history and "Patient import" in history
    assert "Manual, by staff@example.com" in history and ">Scheduled<" in history
    running = make_run(org.id, "running", kind="import", mode="import", full=True, trigger="scheduled")
    panel = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX).get_data(as_text=True)
    assert "Import in progress" in panel and "Sync in progress" not in panel
    assert "Patient import · Scheduled" in panel and "by scheduled" not in panel
    run_page = client.get(f"/orgs/{org.id}/syncs/{running.sync_id}").get_data(as_text=True)
    assert "Patient import" in run_page and "import · import" not in run_page


def test_progress_operation_counts_each_fetch_on_its_own(sync_app):
    """'Inactive practitioners: 5 of 1' came from adding the active practitioners' count."""
    from sqlalchemy import select

    from routiq_admin.models import SyncRun
    from routiq_admin.sync.engine import SyncEngine
    from routiq_admin.sync.runs import start_sync

    org = make_org("org_ops", api_key="ops-key-au1")
    run = start_sync(org, "comprehensive", "manual")
    seen = []

    def record(engine):
        seen.append(
            db.session.execute(select(SyncRun.current_operation).where(SyncRun.id == run.id)).scalar()
        )

    SyncEngine(run.id, run.job_id, on_progress=record).run()
    counted = [re.match(r"(.+): (\d+) of (\d+)$", op or "") for op in seen]
    counted = [(m[1], int(m[2]), int(m[3])) for m in counted if m]
    assert any(label == "Inactive practitioners" for label, _, _ in counted), seen
    for label, done, total in counted:
        assert done <= total, (label, done, total)
