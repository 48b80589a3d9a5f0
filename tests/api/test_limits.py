"""Our own API limits (per token or session, in Redis, failing open) and CORS."""

import requests

from routiq_admin import devredis
from tests.api.conftest import CheckedClient
from tests.factories import login, make_user


def test_work_requests_are_limited_per_token_with_retry_after(api, app, orgs):
    app.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 3
    for _ in range(3):
        assert api.post("/api/v1/sync/cleanup", token=orgs.token_a).status_code == 200
    response = api.post("/api/v1/sync/cleanup", token=orgs.token_a)
    assert response.status == "429 Rate limit exceeded"
    body = response.get_json()
    assert body["details"]["error_type"] == "rate_limit_exceeded"
    assert body["details"]["error_code"] == "API_RATE_LIMITED"
    assert body["details"]["retry_after"] in (59, 60)  # when the first of the three leaves the window
    assert response.headers["Retry-After"] == str(body["details"]["retry_after"])
    # test-connection costs a Cliniko request, so it draws from the same budget.
    assert api.get("/api/v1/cliniko/test-connection/org_a", token=orgs.token_a).status_code == 429
    # Reads have their own budget; other tokens have their own counters.
    assert api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).status_code == 200
    assert api.post("/api/v1/sync/cleanup", token=orgs.token_b).status_code == 200


def test_reads_have_a_large_budget_and_refusals_do_not_count(api, app, orgs):
    for _ in range(200):  # a tight polling loop is never refused at the default 3,000 a minute
        assert api.get("/api/v1/sync/scheduler/status", token=orgs.token_a).status_code == 200
    app.config["API_RATE_LIMIT_READ_PER_MINUTE"] = 205
    statuses = [api.get("/api/v1/sync/history/org_a", token=orgs.token_a).status_code for _ in range(10)]
    assert statuses == [200] * 5 + [429] * 5
    app.config["API_RATE_LIMIT_READ_PER_MINUTE"] = 206
    assert api.get("/api/v1/sync/history/org_a", token=orgs.token_a).status_code == 200


def test_sessions_are_limited_per_person(api, app, orgs):
    app.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 1
    make_user(org=orgs.a, role="operator")
    login(api.client)
    assert api.post("/api/v1/sync/cleanup").status_code == 200
    assert api.post("/api/v1/sync/cleanup").status_code == 429
    assert api.post("/api/v1/sync/cleanup", token=orgs.token_a).status_code == 200


def test_limits_fail_open_when_redis_is_down(make_app, orgs, sim_server):
    down = make_app(
        REDIS_URL=f"redis://127.0.0.1:{devredis.free_port()}/0",
        CLINIKO_BASE_URL=sim_server.base_url,
        API_RATE_LIMIT_READ_PER_MINUTE=1,
    )
    api = CheckedClient(down.test_client())
    for _ in range(5):
        assert api.get("/api/v1/sync/history/org_a", token=orgs.token_a).status_code == 200


def test_429_reason_phrase_reaches_http_clients(live_server, app, orgs):
    app.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 1
    headers = {"Authorization": f"Bearer {orgs.token_a}"}
    assert requests.post(f"{live_server}/api/v1/sync/cleanup", headers=headers, timeout=10).status_code == 200
    response = requests.post(f"{live_server}/api/v1/sync/cleanup", headers=headers, timeout=10)
    assert (response.status_code, response.reason) == (429, "Rate limit exceeded")
    assert int(response.headers["Retry-After"]) >= 1


def test_cors_is_off_by_default(api, orgs):
    response = api.get(
        "/api/v1/sync/scheduler/status", token=orgs.token_a, headers={"Origin": "https://app.example.com"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_the_configured_origins(make_app, orgs, sim_server):
    app = make_app(CORS_ORIGINS=["https://app.example.com"], CLINIKO_BASE_URL=sim_server.base_url)
    client = app.test_client()
    preflight = client.options(
        "/api/v1/cliniko/sync/org_a",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "x-organization-id" in allowed and "content-type" in allowed
    response = client.get(
        "/api/v1/sync/scheduler/status",
        headers={"Origin": "https://app.example.com", "Authorization": f"Bearer {orgs.token_a}"},
    )
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in response.headers["Vary"]
    # Errors carry the header too, so the browser app can read the envelope.
    denied = client.get("/api/v1/sync/scheduler/status", headers={"Origin": "https://app.example.com"})
    assert (
        denied.status_code == 401
        and denied.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    )
    other = client.get("/api/v1/sync/scheduler/status", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
