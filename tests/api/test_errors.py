"""Every documented error type, produced by a real cause, in the guide's envelope."""

from routiq_admin import devredis
from routiq_admin.extensions import db
from routiq_admin.models import SyncRun
from routiq_admin.sync.engine import SyncEngine
from tests.api.conftest import CheckedClient
from tests.factories import make_org, make_run, make_token

START_URLS = [
    "/api/v1/sync/trigger",
    "/api/v1/sync/scheduler/trigger",
    "/api/v1/sync/start/{org}",
    "/api/v1/cliniko/sync/{org}",
    "/api/v1/cliniko/import-patients/{org}",
]


def details(response):
    return response.get_json()["details"]


def run_engine(sync_id):
    """Execute a started run's job here, in-process, against the simulator over HTTP."""
    run = db.session.execute(db.select(SyncRun).filter_by(sync_id=sync_id)).scalar_one()
    SyncEngine(run.id, run.job_id).run()
    db.session.expire_all()


def test_no_key_is_credentials_not_found(api, orgs):
    org = make_org("org_nokey", "No Key", api_key=None)
    _, token = make_token(org)
    for template in START_URLS:
        response = api.post(template.replace("{org}", org.id), token=token)
        assert response.status_code == 400, template
        assert details(response)["error_type"] == "credentials_not_found"
        assert details(response)["error_code"] == "CLINIKO_CREDENTIALS_NOT_FOUND"
    test = api.get(f"/api/v1/cliniko/test-connection/{org.id}", token=token).get_json()
    assert (test["success"], test["connection_status"], test["response_time_ms"]) == (
        False,
        "no_credentials",
        None,
    )
    status = api.get(f"/api/v1/cliniko/status/{org.id}", token=token).get_json()
    assert status["credentials_valid"] is False and status["api_region"] is None
    assert db.session.query(SyncRun).count() == 0


def test_bad_key_at_the_simulator(api, orgs, sim_server):
    sim_server.simulator.revoke_key(orgs.a.api_key)
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()
    assert (test["success"], test["connection_status"]) == (False, "invalid_credentials")
    sync_id = api.post("/api/v1/cliniko/sync/org_a", token=orgs.token_a).get_json()["sync_id"]
    run_engine(sync_id)
    progress = api.get(f"/api/v1/sync/progress/{sync_id}", token=orgs.token_a).get_json()
    assert progress["status"] == "failed"
    assert [e["error_type"] for e in progress["errors"]] == ["invalid_credentials"]
    assert progress["errors"][0]["error_code"] == "CLINIKO_UNAUTHORIZED"


def test_simulator_down_is_unreachable(api, orgs, sim_server):
    sim_server.stop()
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()
    assert (test["success"], test["connection_status"], test["api_region"]) == (False, "unreachable", "au4")
    status = api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a).get_json()
    assert status["credentials_valid"] is False  # never confirmed, and unreachable does not confirm it


def test_cliniko_429_storm(api, orgs, sim_server):
    sim = sim_server.simulator
    sim.inject("rate_limit", count=None, reset_seconds=30)
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).get_json()
    assert (test["success"], test["connection_status"]) == (False, "rate_limited")
    assert isinstance(test["retry_after"], int) and test["retry_after"] >= 1
    sim.clear_faults()
    # Inside a sync, 429s are waited out and counted on the run.
    sim.inject("rate_limit", count=1, reset_seconds=1, path="/patients")
    sync_id = api.post("/api/v1/sync/start/org_a?sync_mode=patients-only", token=orgs.token_a).get_json()[
        "sync_id"
    ]
    run_engine(sync_id)
    run = api.get(f"/api/v1/sync/runs/{sync_id}", token=orgs.token_a).get_json()
    assert run["status"] == "completed", run["errors"]
    assert run["rate_limit_waits"] >= 1 and run["rate_limit_wait_seconds"] > 0
    assert run["cliniko_requests"] >= 8  # /user and 7 pages of patients at least
    assert run["entity_counts"]["patients"]["fetched"] == 651
    assert run["entity_counts"]["patients"]["created"] == 651
    assert run["metadata"]["patients_processed"] == 651


def test_malformed_page_is_invalid_data_format(api, orgs, sim_server):
    sim_server.simulator.inject("malformed_json", count=None, path="/patients")
    sync_id = api.post("/api/v1/sync/start/org_a?sync_mode=patients-only", token=orgs.token_a).get_json()[
        "sync_id"
    ]
    run_engine(sync_id)
    progress = api.get(f"/api/v1/sync/progress/{sync_id}", token=orgs.token_a).get_json()
    assert progress["status"] == "failed"
    assert progress["errors"][0]["error_type"] == "invalid_data_format"
    history = api.get("/api/v1/sync/history/org_a?status=failed", token=orgs.token_a).get_json()
    assert history["failed_syncs"] == 1 and history["recent_syncs"][0]["sync_id"] == sync_id


def test_redis_stopped_is_queue_unavailable_and_leaves_no_row(make_app, orgs, sim_server):
    down = make_app(
        REDIS_URL=f"redis://127.0.0.1:{devredis.free_port()}/0", CLINIKO_BASE_URL=sim_server.base_url
    )
    api = CheckedClient(down.test_client())
    for template in START_URLS:
        response = api.post(template.replace("{org}", "org_a"), token=orgs.token_a)
        assert response.status_code == 503, template
        assert details(response)["error_type"] == "queue_unavailable"
        assert details(response)["error_code"] == "QUEUE_UNAVAILABLE"
    with down.app_context():
        assert db.session.query(SyncRun).count() == 0
        # Reads still work: the API limiter fails open, and the scheduler is honestly inactive.
        status = api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).get_json()
        assert status["scheduler_active"] is False and status["sync_running"] is False


def test_second_trigger_while_running_is_409_with_the_running_id(api, orgs):
    first = api.post("/api/v1/sync/trigger", token=orgs.token_a).get_json()["sync_id"]
    for template in START_URLS:
        response = api.post(template.replace("{org}", "org_a"), token=orgs.token_a)
        assert response.status_code == 409, template
        assert details(response)["error_type"] == "sync_already_running"
        assert details(response)["sync_id"] == first
    assert api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).get_json()["current_sync_id"] == first
    assert db.session.query(SyncRun).count() == 1


def test_cancel_of_a_finished_run_is_409(api, orgs):
    run = make_run("org_a", "failed")
    response = api.post(f"/api/v1/sync/cancel/{run.sync_id}", token=orgs.token_a)
    assert response.status_code == 409 and details(response) | {"status": "failed"} == details(response)


def test_wrong_method_and_unknown_path_use_the_envelope(app, orgs):
    client = app.test_client()
    response = client.get("/api/v1/sync/trigger", headers={"Authorization": f"Bearer {orgs.token_a}"})
    assert (
        response.status_code == 405 and response.get_json()["details"]["error_type"] == "method_not_allowed"
    )
    assert "POST" in response.headers["Allow"]
    response = client.post("/api/v1/sync/progress/x")
    assert response.status_code == 405 and response.is_json
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.get_json()["details"]["error_type"] == "not_found"


def test_a_bug_is_a_500_envelope_without_a_stack_trace(api, orgs, monkeypatch):
    from routiq_admin.sync import status as run_status

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(run_status, "history", broken)
    response = api.get("/api/v1/sync/history/org_a", token=orgs.token_a)
    assert response.status_code == 500
    assert details(response)["error_type"] == "internal_error"
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(
        as_text=True
    )


def test_database_down_is_503_database_error(make_app, orgs, tmp_path):
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite")
    api = CheckedClient(broken.test_client())
    response = api.get("/api/v1/cliniko/status/org_a", token=orgs.token_a)
    assert response.status_code == 503
    assert details(response)["error_type"] == "database_error"
