"""Dashboard pages and fragments with the Flask test client."""

from datetime import timedelta

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Business, Patient, SyncMark, SyncRun, utcnow
from tests.factories import login, make_org, make_run, make_user
from tests.web.helpers import HX, polling


def signed_in(client, role="operator", **org_fields):
    org = make_org(**org_fields)
    make_user(org=org, role=role)
    login(client)
    return org


def test_org_page_full_and_fragments(client):
    org = signed_in(client)
    page = client.get(f"/orgs/{org.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    for marker in ('id="sync-panel"', 'id="history"', 'id="org-summary"', 'id="connection"', "Sync now"):
        assert marker in html
    assert "HX-Request" in page.headers["Vary"]
    history = client.get(f"/orgs/{org.id}/syncs", headers=HX)
    assert "<html" not in history.get_data(as_text=True) and 'id="history"' in history.get_data(as_text=True)
    assert "HX-Request" in history.headers["Vary"]
    assert "<html" in client.get(f"/orgs/{org.id}/syncs").get_data(as_text=True)
    summary = client.get(f"/orgs/{org.id}/summary", headers=HX).get_data(as_text=True)
    assert summary.lstrip().startswith('<div id="org-summary"') and "sync-finished from:body" in summary
    assert client.get(f"/orgs/{org.id}/syncs/panel").status_code == 302  # fragments redirect browsers


def test_panel_polls_only_while_active(client):
    org = signed_in(client)
    idle = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX).get_data(as_text=True)
    assert "No sync has run yet" in idle and not polling(idle)
    run = make_run(org.id, "running", progress_percentage=37.5, records_processed=120, records_total=400)
    active = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX)
    html = active.get_data(as_text=True)
    assert polling(html) and 'hx-trigger="every 1s"' in html
    assert 'role="progressbar"' in html and 'aria-valuenow="37.5"' in html
    assert 'aria-valuemin="0"' in html and 'aria-valuemax="100"' in html and "complete," in html
    assert "Processing patients" in html and "120 / 400" in html and "Cancel" in html
    assert "HX-Trigger" not in active.headers
    assert polling(client.get(f"/orgs/{org.id}", headers={}).get_data(as_text=True))
    run.status, run.completed_at, run.progress_percentage = "completed", utcnow(), 99.0
    db.session.commit()
    done = client.get(f"/orgs/{org.id}/syncs/panel?watching={run.sync_id}", headers=HX)
    html = done.get_data(as_text=True)
    assert not polling(html) and 'aria-valuenow="100.0"' in html and "completed" in html
    assert done.headers["HX-Trigger"] == "sync-finished"
    assert 'hx-swap-oob="innerHTML"' in html and "Sync completed." in html
    again = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX)
    assert "HX-Trigger" not in again.headers and not polling(again.get_data(as_text=True))
    assert not polling(client.get(f"/orgs/{org.id}").get_data(as_text=True))


def test_failed_run_keeps_its_bar_and_status_word(client):
    org = signed_in(client)
    make_run(
        org.id,
        "failed",
        progress_percentage=55.0,
        errors=[
            {"error_type": "invalid_credentials", "error_code": "CLINIKO_UNAUTHORIZED", "message": "Bad key"}
        ],
    )
    html = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX).get_data(as_text=True)
    assert 'aria-valuenow="55.0"' in html and ">failed<" in html and "Bad key" in html and not polling(html)


def test_panel_shows_a_run_started_elsewhere_and_rate_limit_countdown(client):
    org = signed_in(client, role="viewer")
    make_run(
        org.id,
        "running",
        trigger="scheduled",
        triggered_by_label="scheduled",
        rate_limited_until=utcnow() + timedelta(seconds=30),
        rate_limit_waits=2,
        rate_limit_wait_seconds=61.0,
        cliniko_requests=57,
        estimated_completion=utcnow() + timedelta(seconds=95),
    )
    html = client.get(f"/orgs/{org.id}", headers={}).get_data(as_text=True)
    assert "scheduled" in html and polling(html)
    assert "Waiting for Cliniko&#39;s rate limit" in html or "Waiting for Cliniko's rate limit" in html
    assert "30 s" in html or "29 s" in html
    assert "about 1 min 3" in html  # ETA about 1 min 35 s
    assert ">57<" in html and "1 min 1 s waited" in html
    assert "Cancel" not in html and "Sync now" not in html  # viewers get no buttons


def test_start_sync_shows_the_new_run_then_the_running_one(client):
    org = signed_in(client)
    response = client.post(f"/orgs/{org.id}/syncs", data={"mode": "basic", "kind": "sync"}, headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "sync-started"
    assert polling(html) and "starting" in html and "Basic sync" in html
    run = db.session.execute(db.select(SyncRun)).scalar_one()
    assert (run.mode, run.trigger, run.triggered_by_label) == ("basic", "manual", "staff@example.com")
    again = client.post(f"/orgs/{org.id}/syncs", data={"kind": "import"}, headers=HX)
    html = again.get_data(as_text=True)
    assert again.status_code == 200 and "already running" in html and run.sync_id in html and polling(html)
    assert "HX-Trigger" not in again.headers
    assert db.session.execute(db.select(db.func.count()).select_from(SyncRun)).scalar() == 1
    plain = client.post(f"/orgs/{org.id}/syncs", data={"kind": "sync"})
    assert plain.status_code == 302 and plain.headers["Location"].endswith(f"/orgs/{org.id}")


def test_import_and_full_flags_and_bad_mode(client):
    org = signed_in(client)
    html = client.post(f"/orgs/{org.id}/syncs", data={"kind": "import"}, headers=HX).get_data(as_text=True)
    run = db.session.execute(db.select(SyncRun)).scalar_one()
    assert run.kind == "import" and run.sync_id.startswith("import_") and run.sync_id in html
    client.post(f"/orgs/{org.id}/syncs/{run.sync_id}/cancel", headers=HX)
    client.post(f"/orgs/{org.id}/syncs", data={"mode": "active", "full": "1"}, headers=HX)
    second = db.session.execute(db.select(SyncRun).where(SyncRun.kind == "sync")).scalar_one()
    assert second.full is True and second.mode == "active"
    client.post(f"/orgs/{org.id}/syncs/{second.sync_id}/cancel", headers=HX)
    bad = client.post(f"/orgs/{org.id}/syncs", data={"mode": "everything"}, headers=HX).get_data(as_text=True)
    assert "Unknown sync mode" in bad


def test_start_without_credentials_says_so(client):
    org = signed_in(client, api_key=None)
    html = client.post(f"/orgs/{org.id}/syncs", data={"kind": "sync"}, headers=HX).get_data(as_text=True)
    assert "no Cliniko API key" in html and not polling(html)


def test_cancel_starting_run_and_finished_run(client):
    org = signed_in(client)
    run = make_run(org.id, "starting")
    response = client.post(f"/orgs/{org.id}/syncs/{run.sync_id}/cancel", headers=HX)
    html = response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "sync-finished" and "cancelled" in html and not polling(html)
    assert db.session.get(SyncRun, run.id).status == "cancelled"
    again = client.post(f"/orgs/{org.id}/syncs/{run.sync_id}/cancel", headers=HX)
    assert again.status_code == 200 and "already finished" in again.get_data(as_text=True)
    running = make_run(org.id, "running")
    html = client.post(
        f"/orgs/{org.id}/syncs/{running.sync_id}/cancel", data={"widget": "run"}, headers=HX
    ).get_data(as_text=True)
    assert 'id="run-progress"' in html and "Cancelling" in html and polling(html)
    assert db.session.get(SyncRun, running.id).cancel_requested is True
    assert client.post(f"/orgs/{org.id}/syncs/sync_nope/cancel", headers=HX).status_code == 404


def test_history_filters_paging_and_links(client):
    org = signed_in(client)
    for i in range(12):
        make_run(
            org.id, "completed", age=timedelta(minutes=100 - i), trigger="scheduled" if i % 2 else "manual"
        )
    failed = make_run(org.id, "failed", age=timedelta(minutes=5), mode="basic")
    html = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    assert html.count("<tr data-sync-id") == 10 and "Page 1 of 2" in html
    assert f'/orgs/{org.id}/syncs/{failed.sync_id}"' in html
    page2 = client.get(f"/orgs/{org.id}/syncs?page=2", headers=HX).get_data(as_text=True)
    assert page2.count("<tr data-sync-id") == 3
    only_failed = client.get(f"/orgs/{org.id}/syncs?status=failed", headers=HX).get_data(as_text=True)
    assert only_failed.count("<tr data-sync-id") == 1 and failed.sync_id in only_failed
    assert "13 runs: 12 completed, 1 failed" in only_failed  # totals ignore filters
    scheduled = client.get(f"/orgs/{org.id}/syncs?trigger=scheduled&mode=comprehensive", headers=HX)
    assert scheduled.get_data(as_text=True).count("<tr data-sync-id") == 6
    assert client.get(f"/orgs/{org.id}/syncs?status=bogus").status_code == 400  # page: field marked
    bogus = client.get(f"/orgs/{org.id}/syncs?status=bogus", headers=HX)  # htmx swaps only 2xx
    assert bogus.status_code == 200 and 'aria-describedby="history-status-error"' in bogus.get_data(
        as_text=True
    )
    assert "sync-finished from:body" in html and "status=failed" in only_failed


def test_run_page_details(client):
    org = signed_in(client)
    run = make_run(
        org.id,
        "completed",
        duration=75,
        cliniko_requests=14,
        rate_limit_waits=1,
        rate_limit_wait_seconds=12.5,
        records_processed=947,
        triggered_by_label="token:ci (rtq_abcd…)",
        entity_counts={
            "patients": {"fetched": 651, "created": 651, "updated": 0, "unchanged": 0, "failed": 0},
            "appointments": {"fetched": 296, "created": 290, "updated": 6, "unchanged": 0, "failed": 0},
        },
        errors=[
            {
                "error_type": "invalid_data_format",
                "error_code": "CLINIKO_INVALID_DATA",
                "message": "odd row",
                "entity": "patients",
                "at": "2025-06-30T12:00:00.000Z",
            }
        ],
    )
    page = client.get(f"/orgs/{org.id}/syncs/{run.sync_id}")
    html = page.get_data(as_text=True)
    for text in (
        "651",
        "290",
        "token:ci (rtq_abcd…)",
        "1 min 15 s",
        "(12 s)",
        "odd row",
        "CLINIKO_INVALID_DATA",
        ">14<",
    ):
        assert text in html, text
    assert 'aria-valuenow="100.0"' in html and not polling(html)
    fragment = client.get(f"/orgs/{org.id}/syncs/{run.sync_id}", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="run-details"')
    active = make_run(make_org("org_other", name="Other").id, "running")
    assert client.get(f"/orgs/{org.id}/syncs/{active.sync_id}").status_code == 404  # another org's run


def test_run_progress_fragment_polls_then_stops(client):
    org = signed_in(client)
    run = make_run(org.id, "running")
    url = f"/orgs/{org.id}/syncs/{run.sync_id}/progress"
    assert polling(client.get(url, headers=HX).get_data(as_text=True))
    run.status, run.completed_at = "cancelled", utcnow()
    db.session.commit()
    done = client.get(url + "?watching=1", headers=HX)
    assert done.headers["HX-Trigger"] == "sync-finished" and not polling(done.get_data(as_text=True))
    assert client.get(url).status_code == 302


def test_health_alerts_freshness_and_chart(client):
    org = signed_in(client)
    for minutes in (30, 60, 90):
        make_run(org.id, "failed", age=timedelta(minutes=minutes), duration=20)
    for minutes in (200, 300):
        make_run(org.id, "completed", age=timedelta(minutes=minutes), duration=700, records_processed=947)
    db.session.add(
        SyncMark(
            organization_id=org.id,
            entity="patients",
            watermark=utcnow() - timedelta(hours=1),
            last_success_at=utcnow() - timedelta(minutes=3),
        )
    )
    db.session.commit()
    html = client.get(f"/orgs/{org.id}/summary", headers=HX).get_data(as_text=True)
    assert "High failure rate: 3 failures in last 24h" in html
    assert "Slow sync performance: 700.0s average" in html
    assert "3 min ago" in html and "failing" in html
    assert html.count('<rect class="bar') == 5 and "<polyline" in html and 'role="img"' in html


def test_orgs_list_rows_and_live_mini_status(client):
    org = signed_in(client)
    make_org("org_hidden", name="Hidden Clinic")
    db.session.add_all(
        [
            Patient(organization_id=org.id, cliniko_id="1", first_name="Ann", activity_status="active"),
            Patient(organization_id=org.id, cliniko_id="2", first_name="Bob", activity_status="inactive"),
        ]
    )
    db.session.commit()
    make_run(org.id, "completed", age=timedelta(minutes=10))
    html = client.get("/").get_data(as_text=True)
    assert "Test Clinic" in html and "Hidden Clinic" not in html
    assert "not tested" in html and ">completed<" in html and "min ago" in html
    assert "1 <span" in html and "of 2" in html  # active patients of total
    assert "Scheduler not running" in html and not polling(html)
    make_run(org.id, "running", progress_percentage=12.0)
    html = client.get("/").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and 'aria-valuenow="12.0"' in html
    mini = client.get(f"/orgs/{org.id}/status", headers=HX).get_data(as_text=True)
    assert mini.lstrip().startswith(f'<div id="org-status-{org.id}"') and polling(mini)


def test_next_scheduled_run_comes_from_the_scheduler(client, redis_conn):
    from routiq_admin.sync.schedule import HEARTBEAT_KEY, TICK_JOB_ID

    org = signed_in(client)
    make_org("org_off", name="Off Clinic", sync_enabled=False)
    make_user("boss@example.com", superuser=True)
    login(client, "boss@example.com")
    redis_conn.set(HEARTBEAT_KEY, "x", ex=60)
    redis_conn.zadd(
        "rq:scheduler:scheduled_jobs", {TICK_JOB_ID: (utcnow() + timedelta(minutes=42)).timestamp()}
    )
    from unittest import mock

    with mock.patch(
        "routiq_admin.sync.schedule.scheduler_active", return_value=True
    ):  # the tick is registered
        html = client.get("/").get_data(as_text=True)
    assert "in 41 min" in html or "in 42 min" in html
    assert "Sync off" in html and org.name in html


def test_times_show_in_the_business_time_zone(client):
    org = signed_in(client)
    db.session.add(
        Business(
            organization_id=org.id,
            cliniko_id="b1",
            business_name="Main",
            time_zone_identifier="Australia/Sydney",
        )
    )
    db.session.commit()
    make_run(org.id, "completed")
    html = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    assert "AEST" in html or "AEDT" in html


def test_patients_search_filter_and_paging(client):
    org = signed_in(client, role="viewer")
    other = make_org("org_other", name="Other")
    soon = utcnow() + timedelta(days=2)
    rows = [
        Patient(
            organization_id=org.id,
            cliniko_id=str(i),
            first_name=f"Pat{i:02d}",
            last_name="Smith",
            email=f"pat{i}@example.com",
            activity_status="inactive",
        )
        for i in range(30)
    ]
    rows += [
        Patient(
            organization_id=org.id,
            cliniko_id="100",
            first_name="Olivia",
            last_name="O'Brien",
            email="liv@clinic.test",
            activity_status="active",
            recent_appointment_count=2,
            upcoming_appointment_count=1,
            total_appointment_count=5,
            next_appointment_at=soon,
        ),
        Patient(
            organization_id=org.id,
            cliniko_id="101",
            first_name="Zed",
            last_name="Archived",
            archived_at=utcnow(),
        ),
        Patient(organization_id=other.id, cliniko_id="100", first_name="Olivia", last_name="Elsewhere"),
    ]
    db.session.add_all(rows)
    db.session.commit()
    page = client.get(f"/orgs/{org.id}/patients")
    html = page.get_data(as_text=True)
    assert "<html" in html and "31 found" in html and "Page 1 of 2" in html and "Zed" not in html
    frag = client.get(f"/orgs/{org.id}/patients?q=olivia o", headers=HX).get_data(as_text=True)
    assert "<html" not in frag and "1 found" in frag and "O&#39;Brien" in frag and "Elsewhere" not in frag
    assert "Recent and upcoming" in frag and ">2<" in frag
    assert "1 found" in client.get(f"/orgs/{org.id}/patients?q=LIV@CLINIC", headers=HX).get_data(as_text=True)
    assert "0 found" in client.get(f"/orgs/{org.id}/patients?q=%25", headers=HX).get_data(as_text=True)
    active = client.get(f"/orgs/{org.id}/patients?activity=active", headers=HX).get_data(as_text=True)
    assert "1 found" in active
    assert "Zed" in client.get(f"/orgs/{org.id}/patients?archived=1&q=zed", headers=HX).get_data(as_text=True)
    page2 = client.get(f"/orgs/{org.id}/patients?page=2", headers=HX).get_data(as_text=True)
    assert "Page 2 of 2" in page2 and page2.count('<td data-label="Name">') == 6
    assert client.get(f"/orgs/{org.id}/patients?activity=nope").status_code == 400


def test_appointments_range_status_and_zone(client):
    org = signed_in(client, role="viewer")
    db.session.add(Business(organization_id=org.id, cliniko_id="b1", time_zone_identifier="Europe/London"))
    db.session.add(Patient(organization_id=org.id, cliniko_id="p1", first_name="Ann", last_name="Lee"))
    now = utcnow()
    db.session.add_all(
        [
            Appointment(
                organization_id=org.id,
                cliniko_id="a1",
                patient_cliniko_id="p1",
                business_cliniko_id="b1",
                starts_at=now + timedelta(days=1),
            ),
            Appointment(
                organization_id=org.id,
                cliniko_id="a2",
                patient_cliniko_id="p1",
                starts_at=now + timedelta(days=2),
                cancelled_at=now,
            ),
            Appointment(
                organization_id=org.id,
                cliniko_id="a3",
                patient_cliniko_id="p9",
                patient_name="Gone Person",
                starts_at=now - timedelta(days=60),
            ),
        ]
    )
    db.session.commit()
    html = client.get(f"/orgs/{org.id}/appointments").get_data(as_text=True)
    assert "Ann Lee" in html and "Gone Person" not in html and ("GMT" in html or "BST" in html)
    cancelled = client.get(f"/orgs/{org.id}/appointments?status=cancelled", headers=HX).get_data(as_text=True)
    assert (
        "<html" not in cancelled
        and cancelled.count('<td data-label="Starts">') == 1
        and "cancelled" in cancelled
    )
    old = (now - timedelta(days=61)).date().isoformat()
    wide = client.get(f"/orgs/{org.id}/appointments?from={old}", headers=HX).get_data(as_text=True)
    assert "Gone Person" in wide and "3 from" in wide


def test_test_connection_inline_result(sync_app, sim_server):
    client = sync_app.test_client()
    org = make_org(api_key="abc123-au1")
    make_user(org=org, role="operator")
    login(client)
    html = client.post(f"/orgs/{org.id}/test-connection", headers=HX).get_data(as_text=True)
    assert 'id="connection-result"' in html and "healthy" in html and " ms" in html and "connected" in html
    none = make_org("org_nokey", name="No key", api_key=None)
    make_user("op2@example.com", org=none, role="operator")
    login(client, "op2@example.com")
    html = client.post(f"/orgs/{none.id}/test-connection", headers=HX).get_data(as_text=True)
    assert "no credentials" in html
