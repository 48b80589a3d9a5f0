"""Schedule form (cron validation, next-5 preview in the clinic's zone), the time-zone setting,
"next run in …", the pause banner with Resume, and Retry on run pages and history rows."""

import re
from datetime import timedelta
from html import unescape
from unittest import mock

from routiq_admin.extensions import db
from routiq_admin.models import Business, Organization, SyncRun, utcnow
from tests.factories import login, make_org, make_run, make_user
from tests.web.helpers import HX, csrf_from


def admin_of(client, role="admin", **fields):
    org = make_org(**fields)
    make_user(org=org, role=role)
    login(client)
    return org


def reload_org(org_id):
    db.session.rollback()
    return db.session.get(Organization, org_id, populate_existing=True)


SCHEDULE = {
    "sync_enabled": "1",
    "time_zone": "Australia/Sydney",
    "kind": "cron",
    "cron": "0 */6 * * *",
    "every_minutes": "",
    "quiet_start": "08:00",
    "quiet_end": "18:00",
    "quiet_weekdays_only": "1",
    "full_sync_at": "03:15",
}


def test_settings_save_a_cron_schedule_and_show_it(client):
    org = admin_of(client)
    response = client.post(f"/orgs/{org.id}/settings/sync", data=SCHEDULE)
    assert response.status_code == 302
    org = reload_org(org.id)
    assert (org.schedule_cron, org.schedule_every_minutes, org.time_zone) == (
        "0 */6 * * *",
        None,
        "Australia/Sydney",
    )
    assert (org.quiet_start, org.quiet_end, org.quiet_weekdays_only, org.full_sync_at) == (
        "08:00",
        "18:00",
        True,
        "03:15",
    )
    assert org.next_run_at > utcnow() and org.next_full_at > utcnow()
    html = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert "cron 0 */6 * * * · quiet 08:00–18:00 on weekdays · full pass 03:15 (Australia/Sydney)" in html
    assert html.count("<li>") >= 5 and ("AEDT" in html or "AEST" in html)
    assert '<option selected value="Australia/Sydney">' in html or 'value="Australia/Sydney" selected' in html
    # back to an interval
    client.post(f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "kind": "interval", "every_minutes": "30"})
    org = reload_org(org.id)
    assert (org.schedule_cron, org.schedule_every_minutes) == (None, 30)


def test_invalid_cron_is_refused_next_to_its_field(client):
    org = admin_of(client)
    for cron, message in (
        ("61 * * * *", "not a valid cron"),
        ("* * * * *", "the shortest is 15 min"),
        ("0 2 * *", "five fields"),
    ):
        response = client.post(f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "cron": cron})
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        error = re.search(r'<p class="field-error" id="schedule-cron-error">([^<]*)</p>', html)
        assert error and message in error.group(1), (cron, html[-3000:])
        assert 'aria-invalid="true"' in html
    bad = client.post(f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "quiet_end": ""})
    assert bad.status_code == 422 and "both ends of the quiet window" in bad.get_data(as_text=True)
    tz = client.post(f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "time_zone": "Mars/Base"})
    assert tz.status_code == 422 and "Unknown time zone" in tz.get_data(as_text=True)
    every = client.post(
        f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "kind": "interval", "every_minutes": "5"}
    )
    assert every.status_code == 422
    org = reload_org(org.id)
    assert org.schedule_cron is None and org.next_run_at is None  # nothing saved


def test_preview_shows_the_next_five_runs_in_the_chosen_zone(client):
    org = admin_of(client)
    html = client.get(
        f"/orgs/{org.id}/settings/schedule/preview", query_string=SCHEDULE, headers=HX
    ).get_data(as_text=True)
    runs = re.findall(r"<li>([^<]+)</li>", html)
    assert len(runs) == 5 and all(r.endswith(("AEDT", "AEST")) for r in runs)
    assert all(
        re.search(r" (00|06|18):00 ", r) for r in runs
    )  # 12:00 is in the weekday quiet window... or a weekend
    bad = client.get(
        f"/orgs/{org.id}/settings/schedule/preview", query_string={**SCHEDULE, "cron": "nope"}, headers=HX
    ).get_data(as_text=True)
    assert "five fields" in bad and "<li>" not in bad


def test_preview_and_schedule_need_an_admin_of_that_org(client):
    org = make_org()
    other = make_org("org_other", name="Other")
    make_user(org=org, role="operator")
    make_user("boss@example.com", org=other, role="admin")
    login(client)
    assert client.get(f"/orgs/{org.id}/settings/schedule/preview", headers=HX).status_code == 403
    assert client.post(f"/orgs/{org.id}/settings/sync", data=SCHEDULE).status_code == 403
    client.post("/logout")
    login(client, "boss@example.com")
    assert client.get(f"/orgs/{org.id}/settings/schedule/preview", headers=HX).status_code == 403
    assert client.post(f"/orgs/{org.id}/settings/sync", data=SCHEDULE).status_code == 403
    client.post("/logout")
    anonymous = client.get(f"/orgs/{org.id}/settings/schedule/preview")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert reload_org(org.id).schedule_cron is None


def test_an_explicit_zone_wins_over_clinikos_and_the_form_says_which_is_used(client):
    org = admin_of(client)
    db.session.add(Business(organization_id=org.id, cliniko_id="b1", time_zone_identifier="Australia/Sydney"))
    db.session.commit()
    make_run(org.id, "completed")
    html = unescape(client.get(f"/orgs/{org.id}/settings").get_data(as_text=True))
    assert (
        "Pages and schedules use <strong>Australia/Sydney</strong> (the zone Cliniko gives the clinic's business)"
        in html
    )
    assert "Cliniko's business zone (automatic)" in html and '<option value="Europe/London">' in html
    saved = client.post(f"/orgs/{org.id}/settings/sync", data={**SCHEDULE, "time_zone": "Europe/London"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[-2000:]
    history = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    assert ("GMT" in history or "BST" in history) and "AEDT" not in history and "AEST" not in history
    html = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert "Pages and schedules use <strong>Europe/London</strong> (set here)" in html


def test_next_run_in_minutes_on_the_org_page_and_the_list(client, redis_conn):
    from routiq_admin.sync.schedule import HEARTBEAT_KEY, TICK_JOB_ID

    org = admin_of(client, next_run_at=utcnow() + timedelta(minutes=12, seconds=30))
    redis_conn.set(HEARTBEAT_KEY, "x", ex=60)
    redis_conn.zadd(
        "rq:scheduler:scheduled_jobs", {TICK_JOB_ID: (utcnow() + timedelta(seconds=30)).timestamp()}
    )
    with mock.patch("routiq_admin.sync.schedule.scheduler_active", return_value=True):
        listing = client.get("/").get_data(as_text=True)
        page = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert "next run <time" in listing and "in 12 min" in listing
    assert "in 12 min" in page and "Schedule: every 1 h · full pass 02:30 (UTC)" in page


def test_paused_banner_with_resume_for_operators_only(client):
    since = utcnow() - timedelta(hours=2)
    org = admin_of(client, role="operator", paused_at=since, paused_reason="5 scheduled runs failed in a row")
    make_user("viewer@example.com", org=org, role="viewer")
    for path in ("/", f"/orgs/{org.id}"):
        html = client.get(path).get_data(as_text=True)
        assert "Scheduled syncs paused" in html and "5 scheduled runs failed in a row" in html
        assert f'action="/orgs/{org.id}/resume"' in html
    response = client.post(f"/orgs/{org.id}/resume", data={"back": "list"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/")
    org = reload_org(org.id)
    assert org.paused_at is None and org.next_run_at <= utcnow()
    assert "Scheduled syncs paused" not in client.get(f"/orgs/{org.id}").get_data(as_text=True)
    # a viewer sees the banner without the button and cannot resume
    org.paused_at, org.paused_reason = since, "Cliniko rejected the API key"
    db.session.commit()
    client.post("/logout")
    login(client, "viewer@example.com")
    html = client.get(f"/orgs/{org.id}").get_data(as_text=True)
    assert "Cliniko rejected the API key" in html and "/resume" not in html
    assert client.post(f"/orgs/{org.id}/resume").status_code == 403
    assert reload_org(org.id).paused_at is not None


def test_resume_needs_csrf(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org(paused_at=utcnow(), paused_reason="x")
        make_user(org=org, role="operator")
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        client.post(
            "/login", data={"email": "staff@example.com", "password": "pw-123456", "csrf_token": token}
        )
        assert client.post(f"/orgs/{org.id}/resume").status_code in (400, 403)
        assert reload_org(org.id).paused_at is not None
        token = csrf_from(client.get(f"/orgs/{org.id}").get_data(as_text=True))
        assert client.post(f"/orgs/{org.id}/resume", data={"csrf_token": token}).status_code == 302
        assert reload_org(org.id).paused_at is None


def test_retry_from_the_run_page_and_the_history_row(client):
    org = admin_of(client, role="operator")
    failed = make_run(org.id, "failed", mode="active", full=True)
    done = make_run(org.id, "completed")
    page = client.get(f"/orgs/{org.id}/syncs/{failed.sync_id}").get_data(as_text=True)
    assert f'action="/orgs/{org.id}/syncs/{failed.sync_id}/retry"' in page
    assert "/retry" not in client.get(f"/orgs/{org.id}/syncs/{done.sync_id}").get_data(as_text=True)
    history = client.get(f"/orgs/{org.id}/syncs", headers=HX).get_data(as_text=True)
    row = re.search(rf'<tr data-sync-id="{failed.sync_id}">.*?</tr>', history, re.S).group(0)
    assert "Retry" in row
    response = client.post(f"/orgs/{org.id}/syncs/{failed.sync_id}/retry")
    assert response.status_code == 302
    new = db.session.execute(db.select(SyncRun).filter_by(status="starting")).scalar_one()
    assert response.headers["Location"].endswith(f"/syncs/{new.sync_id}")
    assert (new.mode, new.full, new.trigger) == ("active", True, "manual")
    # while it runs, a second retry shows the running one and starts nothing
    again = client.post(f"/orgs/{org.id}/syncs/{failed.sync_id}/retry")
    assert again.headers["Location"].endswith(f"/syncs/{new.sync_id}")
    assert db.session.execute(db.select(db.func.count()).select_from(SyncRun)).scalar() == 3
    # a completed run is not retried
    refused = client.post(f"/orgs/{org.id}/syncs/{done.sync_id}/retry", follow_redirects=True)
    assert "only failed or cancelled runs are retried" in refused.get_data(as_text=True)


def test_viewer_and_other_orgs_get_no_retry(client):
    org = make_org()
    other = make_org("org_other", name="Other")
    make_user(org=org, role="viewer")
    make_user("op@example.com", org=other, role="operator")
    failed = make_run(org.id, "failed")
    login(client)
    assert "/retry" not in client.get(f"/orgs/{org.id}/syncs/{failed.sync_id}").get_data(as_text=True)
    assert client.post(f"/orgs/{org.id}/syncs/{failed.sync_id}/retry").status_code == 403
    client.post("/logout")
    login(client, "op@example.com")
    assert client.post(f"/orgs/{org.id}/syncs/{failed.sync_id}/retry").status_code == 403
    assert client.post(f"/orgs/{other.id}/syncs/{failed.sync_id}/retry").status_code == 404
    assert db.session.execute(db.select(db.func.count()).select_from(SyncRun)).scalar() == 1
