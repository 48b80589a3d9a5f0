"""Computed values are true: each flipped by a real cause and observed through the API."""

from datetime import timedelta

from rq_scheduler import Scheduler

from routiq_admin.extensions import db
from routiq_admin.models import Patient, SyncRun, utcnow
from routiq_admin.sync.schedule import HEARTBEAT_KEY, beat, register
from tests.factories import make_run


def scheduler_active(api, token):
    return api.get("/api/v1/sync/scheduler/status", token=token).get_json()["scheduler_active"]


def test_scheduler_active_needs_the_tick_registered_and_a_live_scheduler(api, orgs, app, redis_conn):
    assert scheduler_active(api, orgs.token_a) is False
    scheduler = Scheduler(queue_name=app.config["RQ_QUEUE"], connection=redis_conn)
    register(scheduler, 60)
    assert scheduler_active(api, orgs.token_a) is False  # registered, but no process seen
    beat(redis_conn, 1)
    assert scheduler_active(api, orgs.token_a) is True
    redis_conn.delete(HEARTBEAT_KEY)  # the scheduler process died; its heartbeat lapsed
    assert scheduler_active(api, orgs.token_a) is False
    beat(redis_conn, 1)
    for job in scheduler.get_jobs():
        scheduler.cancel(job)
    assert scheduler_active(api, orgs.token_a) is False  # alive, but the tick is not registered


def test_credentials_valid_follows_what_cliniko_answered(api, orgs, sim_server):
    def status():
        return api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()

    assert (status()["credentials_valid"], status()["cliniko_connected"]) == (False, False)  # never checked
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()
    assert (
        test["success"] is True
        and isinstance(test["response_time_ms"], int)
        and test["response_time_ms"] >= 0
    )
    assert (status()["credentials_valid"], status()["cliniko_connected"]) == (True, True)
    assert status()["credentials_checked_at"] is not None
    sim_server.simulator.revoke_key(orgs.a.api_key)
    assert api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()["success"] is False
    after = status()
    assert (after["credentials_valid"], after["cliniko_connected"], after["sync_status"]) == (
        False,
        False,
        "failing",
    )


def test_measured_response_time_reflects_cliniko_latency(api, orgs, sim_server):
    sim_server.simulator.latency_ms = 150
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()
    assert 150 <= test["response_time_ms"] < 5000


def test_sync_status_moves_through_its_values(api, orgs):
    def sync_status():
        return api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()["sync_status"]

    assert sync_status() == "never_synced"
    make_run("org_a", "failed", age=timedelta(minutes=20))
    assert sync_status() == "never_synced"  # no completed run yet
    make_run("org_a", "completed", age=timedelta(minutes=10))
    assert sync_status() == "degraded"  # a failure within 24 h
    for run in db.session.query(SyncRun).filter_by(status="failed"):  # the failure is now two days old
        run.created_at -= timedelta(days=2)
        run.completed_at -= timedelta(days=2)
    db.session.commit()
    assert sync_status() == "healthy"
    for age in (5, 4, 3):
        make_run("org_a", "failed", age=timedelta(minutes=age))
    assert sync_status() == "failing"  # the last three runs failed
    make_run("org_a", "completed", age=timedelta(minutes=1))
    assert sync_status() == "degraded"
    orgs.a.sync_enabled = False
    db.session.commit()
    assert sync_status() == "disabled"


def test_an_old_last_success_is_degraded(api, orgs):
    make_run("org_a", "completed", age=timedelta(minutes=3 * 60))  # older than twice the 60-minute interval
    assert api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()["sync_status"] == "degraded"


def test_sync_running_last_sync_time_and_total_patients(api, orgs):
    status = api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).get_json()
    assert (status["sync_running"], status["last_sync_time"]) == (False, None)
    done = make_run("org_a", "completed", age=timedelta(minutes=30), duration=90)
    running = make_run("org_a", "running", age=timedelta(minutes=1))
    status = api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).get_json()
    assert status["sync_running"] is True and status["current_sync_id"] == running.sync_id
    assert (
        status["last_sync_time"]
        == api.get(f"/api/v1/sync/runs/{done.sync_id}", token=orgs.token_a).get_json()["completed_at"]
    )
    db.session.add_all([Patient(organization_id="org_a", cliniko_id=str(i)) for i in range(4)])
    db.session.add(Patient(organization_id="org_a", cliniko_id="old", archived_at=utcnow()))
    db.session.add(Patient(organization_id="org_b", cliniko_id="other"))
    db.session.commit()
    assert api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()["total_patients"] == 4


def test_history_aggregates_match_hand_counted_runs(api, orgs):
    durations = [60, 120, 180, 240, 300]
    for i, seconds in enumerate(durations):
        make_run(
            "org_a",
            "completed",
            age=timedelta(minutes=100 - i * 10),
            duration=seconds,
            records_processed=50 + i,
            records_failed=i,
        )
    make_run("org_a", "failed", age=timedelta(minutes=40))
    make_run("org_a", "failed", age=timedelta(minutes=30))
    make_run("org_a", "cancelled", age=timedelta(minutes=25))
    imported = make_run(
        "org_a",
        "completed",
        age=timedelta(minutes=20),
        duration=30,
        kind="import",
        mode="import",
        sync_id="import_org_a_x",
    )
    make_run("org_a", "running", age=timedelta(minutes=1))
    make_run("org_b", "completed", age=timedelta(minutes=5))  # another organization's run never counts
    body = api.get("/api/v1/sync/history/org_a?limit=3", token=orgs.token_a).get_json()
    assert body["total_syncs"] == 10
    assert body["successful_syncs"] == 6 and body["failed_syncs"] == 2
    assert body["cancelled_syncs"] == 1 and body["running_syncs"] == 1
    assert body["average_sync_duration_seconds"] == round((sum(durations) + 30) / 6, 1)
    assert (
        body["last_successful_sync_at"]
        == api.get(f"/api/v1/sync/runs/{imported.sync_id}", token=orgs.token_a).get_json()["completed_at"]
    )
    assert body["last_sync_at"] == body["last_successful_sync_at"]  # the import finished last
    assert [s["status"] for s in body["recent_syncs"]] == ["running", "completed", "cancelled"]
    assert body["recent_syncs"][1]["kind"] == "import" and body["total_matching"] == 10
    page2 = api.get("/api/v1/sync/history/org_a?limit=3&offset=3", token=orgs.token_a).get_json()
    assert [s["status"] for s in page2["recent_syncs"]] == ["failed", "failed", "completed"]
    done = api.get("/api/v1/sync/history/org_a?status=completed&limit=100", token=orgs.token_a).get_json()
    assert done["total_syncs"] == 10 and done["total_matching"] == 6 and len(done["recent_syncs"]) == 6
    oldest = done["recent_syncs"][-1]
    assert (oldest["records_processed"], oldest["records_failed"], oldest["records_success"]) == (50, 0, 50)
    assert done["recent_syncs"][-2]["records_success"] == 51 - 1
    assert oldest["duration_seconds"] == 60.0
    assert (
        api.get("/api/v1/sync/history/org_a?offset=50", token=orgs.token_a).get_json()["recent_syncs"] == []
    )
    assert len(api.get("/api/v1/sync/history/org_a", token=orgs.token_a).get_json()["recent_syncs"]) == 10


def test_cleanup_touches_only_the_callers_organizations(api, orgs):
    stale_a = make_run("org_a", "running", age=timedelta(minutes=60))
    stale_b = make_run("org_b", "running", age=timedelta(minutes=60))
    body = api.post("/api/v1/sync/cleanup", token=orgs.token_a).get_json()
    assert body["cleaned_syncs"] == 1 and body["sync_ids"] == [stale_a.sync_id]
    progress = api.get(f"/api/v1/sync/progress/{stale_a.sync_id}", token=orgs.token_a).get_json()
    assert progress["status"] == "failed" and progress["errors"][0]["error_code"] == "SYNC_STALE"
    assert (
        api.get(f"/api/v1/sync/progress/{stale_b.sync_id}", token=orgs.token_b).get_json()["status"]
        == "running"
    )
    body = api.post("/api/v1/sync/cleanup", token=orgs.token_all).get_json()
    assert body == {
        **body,
        "cleaned_syncs": 1,
        "sync_ids": [stale_b.sync_id],
        "message": "Cleaned up 1 stale sync",
    }
    assert (
        api.post("/api/v1/sync/cleanup", token=orgs.token_all).get_json()["message"]
        == "Cleaned up 0 stale syncs"
    )
