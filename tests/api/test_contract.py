"""Every guide endpoint answers with the guide's keys and types (plus our additive fields)."""

import re
from datetime import timedelta

import jsonschema
import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Patient, utcnow
from tests.api.conftest import check_response
from tests.api.guide import RESPONSES, RESPONSES_TEXT
from tests.factories import make_run
from tests.specs import SYNC_GUIDE, require_spec

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def assert_like(guide, real, where="body"):
    """Assert `real` has every key of the guide's example, with the same JSON type, recursively."""
    if isinstance(guide, dict):
        assert isinstance(real, dict), f"{where}: expected an object, got {real!r}"
        missing = set(guide) - set(real)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, value in guide.items():
            assert_like(value, real[key], f"{where}.{key}")
    elif isinstance(guide, list):
        assert isinstance(real, list), f"{where}: expected a list"
        for item in real:
            for example in guide[:1]:
                assert_like(example, item, f"{where}[]")
    elif isinstance(guide, bool):
        assert isinstance(real, bool), f"{where}: expected a boolean, got {real!r}"
    elif isinstance(guide, int | float):
        assert isinstance(real, int | float) and not isinstance(real, bool), f"{where}: expected a number"
        if isinstance(guide, int):
            assert isinstance(real, int), f"{where}: expected an integer, got {real!r}"
    elif isinstance(guide, str):
        assert isinstance(real, str), f"{where}: expected a string, got {real!r}"
        if TIME.match(guide):
            assert TIME.match(real), f"{where}: {real!r} is not formatted like {guide!r}"


def test_guide_copy_is_verbatim():
    text = require_spec(SYNC_GUIDE).read_text(encoding="utf-8")
    for key, block in RESPONSES_TEXT.items():
        assert block in text, key
    from tests.api.guide import CLIENT_SOURCE, CURL_SOURCE

    assert CLIENT_SOURCE in text and CURL_SOURCE in text


@pytest.fixture
def rich(orgs):
    """Org A with finished runs, patients and a running run, so every guide field has a value."""
    for i in range(3):
        db.session.add(Patient(organization_id="org_a", cliniko_id=str(i), first_name=f"P{i}"))
    db.session.commit()
    make_run(
        "org_a",
        "completed",
        age=timedelta(minutes=90),
        duration=120,
        run_metadata={"sync_type": "comprehensive", "patients_processed": 651, "appointments_processed": 296},
    )
    make_run(
        "org_a",
        "failed",
        age=timedelta(minutes=30),
        records_processed=100,
        records_failed=5,
        errors=[
            {
                "error_type": "api_connection_failed",
                "error_code": "CLINIKO_API_TIMEOUT",
                "message": "Timed out",
                "entity": "patients",
                "at": "2025-06-30T12:00:00.000Z",
            }
        ],
    )
    running = make_run(
        "org_a",
        "running",
        age=timedelta(minutes=1),
        estimated_completion=utcnow(),
        progress_percentage=75.5,
        records_processed=490,
        records_total=650,
        completed_steps=3,
        current_step="Processing appointments",
        current_operation="Syncing patient appointments",
    )
    return running


def guide(method, path):
    return RESPONSES[(method, path)]


def test_read_endpoints_match_the_guide(api, orgs, rich):
    token = orgs.token_a
    cases = [
        ("GET", "/api/v1/sync/scheduler/status", "/api/v1/sync/scheduler/status"),
        ("GET", f"/api/v1/sync/progress/{rich.sync_id}", "/api/v1/sync/progress/{sync_id}"),
        (
            "GET",
            "/api/v1/sync/history/org_a?limit=10&status=completed",
            "/api/v1/sync/history/{organization_id}",
        ),
        ("GET", "/api/v1/cliniko/status/org_a", "/api/v1/cliniko/status/{organization_id}"),
        ("GET", "/api/v1/cliniko/test-connection/org_a", "/api/v1/cliniko/test-connection/{organization_id}"),
    ]
    for method, url, template in cases:
        response = api.open(method, url, token=token, org="org_a")
        assert response.status_code == 200, (url, response.get_json())
        assert_like(guide(method, template), response.get_json(), url)
    progress = api.get(f"/api/v1/sync/progress/{rich.sync_id}", token=token).get_json()
    assert progress["progress_percentage"] == 75.5 and progress["errors"] == []
    history = api.get("/api/v1/sync/history/org_a", token=token).get_json()
    failed = next(s for s in history["recent_syncs"] if s["status"] == "failed")
    assert failed["records_success"] == 95 and failed["records_failed"] == 5
    assert failed["metadata"] == {
        "sync_type": "comprehensive",
        "patients_processed": 0,
        "appointments_processed": 0,
    }
    done = next(s for s in history["recent_syncs"] if s["status"] == "completed")
    assert (
        done["metadata"]
        == guide("GET", "/api/v1/sync/history/{organization_id}")["recent_syncs"][0]["metadata"]
    )
    assert done["duration_seconds"] == 120.0
    assert set(done) >= {"sync_id", "kind", "trigger", "mode", "duration_seconds"}
    status = api.get("/api/v1/cliniko/status/org_a", token=token).get_json()
    assert status["api_region"] == "au4" and status["total_patients"] == 3 and status["sync_enabled"] is True
    test = api.get("/api/v1/cliniko/test-connection/org_a", token=token).get_json()
    assert test["success"] is True and test["connection_status"] == "healthy" and test["api_region"] == "au4"


def test_progress_lists_run_errors_as_objects(api, orgs, rich):
    error = {
        "error_type": "invalid_credentials",
        "error_code": "CLINIKO_UNAUTHORIZED",
        "message": "Rejected",
        "entity": None,
        "at": "2025-06-30T12:00:00.000Z",
    }
    run = make_run("org_b", "failed", errors=[error])
    body = api.get(f"/api/v1/sync/progress/{run.sync_id}", token=orgs.token_b).get_json()
    assert body["errors"] == [error]
    assert isinstance(body["total_steps"], int) and isinstance(body["completed_steps"], int)


def test_start_endpoints_match_the_guide_and_add_sync_id(api, orgs):
    cases = [
        ("/api/v1/sync/trigger", "/api/v1/sync/trigger", "comprehensive", "api"),
        ("/api/v1/sync/scheduler/trigger", "/api/v1/sync/scheduler/trigger", "comprehensive", "scheduled"),
        (
            "/api/v1/sync/start/org_a?sync_mode=comprehensive",
            "/api/v1/sync/start/{organization_id}",
            "comprehensive",
            "api",
        ),
        ("/api/v1/sync/start/org_a", "/api/v1/sync/start/{organization_id}", "active", "api"),
        (
            "/api/v1/cliniko/sync/org_a?mode=comprehensive",
            "/api/v1/cliniko/sync/{organization_id}",
            "comprehensive",
            "api",
        ),
        ("/api/v1/cliniko/sync/org_a", "/api/v1/cliniko/sync/{organization_id}", "comprehensive", "api"),
        (
            "/api/v1/cliniko/sync/org_a?mode=patients-only&full=true",
            "/api/v1/cliniko/sync/{organization_id}",
            "patients-only",
            "api",
        ),
        (
            "/api/v1/cliniko/import-patients/org_a",
            "/api/v1/cliniko/import-patients/{organization_id}",
            "import",
            "api",
        ),
    ]
    for url, template, mode, trigger in cases:
        response = api.post(url, token=orgs.token_a, org="org_a")
        assert response.status_code == 200, (url, response.get_json())
        body = response.get_json()
        assert_like(guide("POST", template), body, url)
        run_id = body.get("import_id") or body["sync_id"]
        detail = api.get(f"/api/v1/sync/runs/{run_id}", token=orgs.token_a).get_json()
        assert (detail["sync_mode"], detail["trigger"], detail["status"]) == (mode, trigger, "starting")
        assert detail["full"] is ("full=true" in url or mode == "import")
        assert (
            api.post(f"/api/v1/sync/cancel/{run_id}", token=orgs.token_a).get_json()["status"] == "cancelled"
        )
    assert body["import_id"].startswith("import_org_a_") and body["sync_id"] == body["import_id"]


def test_messages_follow_the_guide(api, orgs):
    start = api.post("/api/v1/sync/start/org_a?sync_mode=comprehensive", token=orgs.token_a).get_json()
    assert start["message"] == "Sync started successfully in comprehensive mode"
    api.post(f"/api/v1/sync/cancel/{start['sync_id']}", token=orgs.token_a)
    cliniko = api.post("/api/v1/cliniko/sync/org_a", token=orgs.token_a).get_json()
    assert cliniko["message"] == "Comprehensive Cliniko sync started successfully"
    assert cliniko["success"] is True and cliniko["sync_mode"] == "comprehensive"


def test_cleanup_matches_the_guide(api, orgs):
    make_run("org_a", "running", age=timedelta(minutes=120))
    body = api.post("/api/v1/sync/cleanup", token=orgs.token_a).get_json()
    assert_like(guide("POST", "/api/v1/sync/cleanup"), body)
    assert body["cleaned_syncs"] == 1 and body["message"] == "Cleaned up 1 stale sync"


def test_error_envelope_matches_the_guide(api, orgs):
    body = api.get("/api/v1/sync/progress/nope", token=orgs.token_a).get_json()
    assert_like(guide("ERROR", "envelope"), {**body, "details": {**body["details"], "retry_after": 0}})
    assert body["success"] is False and body["error"] == "Not found"
    assert body["details"]["error_type"] == "not_found" and body["details"]["error_code"] == "NOT_FOUND"


def test_check_response_refuses_drift():
    with pytest.raises(AssertionError):
        check_response("GET", "/api/v1/sync/progress/x", 418, {})
    with pytest.raises(jsonschema.ValidationError):
        check_response("GET", "/api/v1/sync/progress/x", 200, {"sync_id": "x"})
