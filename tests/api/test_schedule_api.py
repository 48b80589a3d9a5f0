"""Retry over the API, the scheduler status's schedule, the Cliniko status's pause fields,
and scheduler/trigger runs counting as scheduled for auto-pause."""

from datetime import timedelta

from routiq_admin.extensions import db
from routiq_admin.models import Organization, SyncRun, utcnow
from routiq_admin.sync.cadence import record_outcome
from tests.factories import login, make_run, make_user


def test_retry_starts_the_same_mode_and_full_flag(api, orgs):
    failed = make_run("org_a", "failed", mode="basic", full=True, trigger="scheduled")
    response = api.post(f"/api/v1/sync/retry/{failed.sync_id}", token=orgs.token_a)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["retry_of"] == failed.sync_id and body["sync_id"] != failed.sync_id
    new = db.session.execute(db.select(SyncRun).filter_by(sync_id=body["sync_id"])).scalar_one()
    assert (new.mode, new.full, new.kind, new.trigger, new.status) == (
        "basic",
        True,
        "sync",
        "api",
        "starting",
    )
    # the new run is running now: retrying it (or the old one again) is a 409
    again = api.post(f"/api/v1/sync/retry/{new.sync_id}", token=orgs.token_a)
    assert again.status_code == 409 and again.get_json()["details"]["error_type"] == "sync_already_running"
    busy = api.post(f"/api/v1/sync/retry/{failed.sync_id}", token=orgs.token_a)
    assert busy.status_code == 409 and busy.get_json()["details"]["sync_id"] == new.sync_id


def test_retry_of_imports_cancelled_runs_and_completed_runs(api, orgs):
    cancelled = make_run("org_a", "cancelled", kind="import", mode="import", full=True)
    response = api.post(f"/api/v1/sync/retry/{cancelled.sync_id}", token=orgs.token_a)
    assert response.status_code == 200 and response.get_json()["sync_mode"] == "import"
    done = make_run("org_b", "completed")
    response = api.post(f"/api/v1/sync/retry/{done.sync_id}", token=orgs.token_b)
    assert response.status_code == 409 and response.get_json()["details"]["error_code"] == "SYNC_COMPLETED"


def test_retry_needs_the_operator_role(api, orgs):
    make_user("viewer@example.com", org=orgs.a, role="viewer")
    login(api.client, "viewer@example.com")
    failed = make_run("org_a", "failed")
    response = api.post(f"/api/v1/sync/retry/{failed.sync_id}")
    assert response.status_code == 403
    assert db.session.query(SyncRun).count() == 1


def test_scheduler_status_shows_schedule_and_next_run(api, orgs):
    org = db.session.get(Organization, "org_a")
    org.schedule_cron, org.time_zone = "0 */2 * * *", "Australia/Sydney"
    org.quiet_start, org.quiet_end, org.quiet_weekdays_only = "08:00", "18:00", True
    org.next_run_at = utcnow() + timedelta(minutes=12)
    db.session.commit()
    body = api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).get_json()
    assert body["schedule"] == {
        "type": "cron",
        "every_minutes": None,
        "cron": "0 */2 * * *",
        "time_zone": "Australia/Sydney",
        "quiet_window": {"start": "08:00", "end": "18:00", "weekdays_only": True},
        "full_sync_at": "02:30",
    }
    assert body["next_run_at"].endswith("Z") and body["sync_interval_minutes"] == 60
    default = api.get("/api/v1/sync/scheduler/status", token=orgs.token_b).get_json()
    assert default["schedule"]["type"] == "interval" and default["schedule"]["every_minutes"] == 60
    assert default["schedule"]["time_zone"] == "UTC" and default["next_run_at"] is None


def test_cliniko_status_says_paused_and_why(api, orgs):
    body = api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()
    assert body["sync_paused"] is False and body["paused_reason"] is None
    org = db.session.get(Organization, "org_a")
    org.paused_at, org.paused_reason = utcnow(), "5 scheduled runs failed in a row"
    db.session.commit()
    body = api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()
    assert body["sync_paused"] is True and body["paused_reason"] == "5 scheduled runs failed in a row"


def test_scheduler_trigger_runs_count_as_scheduled(api, orgs, app):
    app.config["AUTO_PAUSE_AFTER_FAILURES"] = 2
    outcomes = []
    for _ in range(2):
        body = api.post("/api/v1/sync/scheduler/trigger", token=orgs.token_a).get_json()
        run = db.session.execute(db.select(SyncRun).filter_by(sync_id=body["sync_id"])).scalar_one()
        run.status, run.completed_at = "failed", utcnow()
        db.session.commit()
        outcomes.append(record_outcome(run))
        manual = api.post("/api/v1/sync/trigger", token=orgs.token_a).get_json()
        run = db.session.execute(db.select(SyncRun).filter_by(sync_id=manual["sync_id"])).scalar_one()
        run.status, run.completed_at = "failed", utcnow()
        db.session.commit()
        assert record_outcome(run) == "failed"  # an API start's failure does not count
    assert outcomes == ["failed", "paused"]
    assert db.session.get(Organization, "org_a").consecutive_failures == 2
