"""Who may call what: 401 for missing/invalid/revoked tokens, the tenant isolation matrix,
the check order 401 → 403 → 404 → 422, sessions and CSRF."""

import re
from datetime import timedelta

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import SyncRun, utcnow
from tests.api.conftest import CheckedClient
from tests.clerk_issuer import serve_issuer
from tests.factories import login, make_run, make_token, make_user

# Every endpoint, with {org} / {sync} placeholders; header endpoints take X-Organization-ID.
PATH_ENDPOINTS = [
    ("POST", "/api/v1/sync/start/{org}"),
    ("GET", "/api/v1/sync/history/{org}"),
    ("POST", "/api/v1/cliniko/sync/{org}"),
    ("GET", "/api/v1/cliniko/status/{org}"),
    ("GET", "/api/v1/cliniko/test-connection/{org}"),
    ("POST", "/api/v1/cliniko/import-patients/{org}"),
    ("GET", "/api/v1/organizations/{org}"),
]
HEADER_ENDPOINTS = [
    ("POST", "/api/v1/sync/trigger"),
    ("GET", "/api/v1/sync/scheduler/status"),
    ("POST", "/api/v1/sync/scheduler/trigger"),
    ("POST", "/api/v1/sync/cleanup"),
]
RUN_ENDPOINTS = [
    ("GET", "/api/v1/sync/progress/{sync}"),
    ("GET", "/api/v1/sync/runs/{sync}"),
    ("POST", "/api/v1/sync/cancel/{sync}"),
    ("POST", "/api/v1/sync/retry/{sync}"),
]
ALL = PATH_ENDPOINTS + HEADER_ENDPOINTS + RUN_ENDPOINTS + [("GET", "/api/v1/organizations")]
# Credentials scoped to organization A: one of our API tokens, a Clerk session token for A.
SCOPED_KINDS = ["api_token", "clerk"]
issuer = pytest.fixture(serve_issuer, name="issuer")


@pytest.fixture
def app(make_app, sim_server, issuer):
    """The API tests' app with Clerk session tokens accepted too (they must not change anything else)."""
    app = make_app(CLINIKO_BASE_URL=sim_server.base_url, **issuer.settings())
    with app.app_context():
        yield app


@pytest.fixture(params=SCOPED_KINDS)
def token_a(request, orgs, issuer):
    """A credential for organization A only, of each kind."""
    return orgs.token_a if request.param == "api_token" else issuer.mint("org_a", "admin")


def url(template, org="org_b", sync="x"):
    return template.replace("{org}", org).replace("{sync}", sync)


def error_type(response):
    return response.get_json()["details"]["error_type"]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer ",
        "Bearer rtq_not-a-real-token",
        "Basic dXNlcjpwdw==",
        "revoked",
        "clerk expired",
        "clerk forged",
    ],
)
def test_missing_invalid_or_revoked_token_is_401_everywhere(api, orgs, issuer, auth):
    if auth == "revoked":
        token, clear = make_token(orgs.a, name="soon revoked")
        token.revoked_at = utcnow()
        db.session.commit()
        auth = f"Bearer {clear}"
    elif auth == "clerk expired":
        auth = f"Bearer {issuer.mint('org_a', exp=int(utcnow().timestamp()) - 60)}"
    elif auth == "clerk forged":
        auth = f"Bearer {issuer.forge('HS256', 'org_a')}"
    headers = {"Authorization": auth} if auth else {}
    for method, template in ALL:
        response = api.open(method, url(template, "org_a"), headers=headers)
        assert response.status_code == 401, (method, template, auth)
        assert error_type(response) == "unauthorized"


def test_tenant_isolation_matrix(api, orgs, token_a):
    b_run = make_run("org_b", "running", age=timedelta(minutes=1))
    for method, template in PATH_ENDPOINTS:
        assert api.open(method, url(template), token=token_a).status_code == 403, template
        # The path names A, but a header naming B is out of scope too.
        if "organizations" not in template:
            assert api.open(method, url(template, "org_a"), token=token_a, org="org_b").status_code == 403
    for method, template in HEADER_ENDPOINTS:
        response = api.open(method, template, token=token_a, org="org_b")
        assert response.status_code == 403 and error_type(response) == "forbidden", template
    for method, template in RUN_ENDPOINTS:
        response = api.open(method, url(template, sync=b_run.sync_id), token=token_a)
        assert response.status_code == 404 and error_type(response) == "not_found", template
        response = api.open(method, url(template, sync=b_run.sync_id), token=token_a, org="org_b")
        assert response.status_code == 403, template
    assert [
        o["organization_id"]
        for o in api.get("/api/v1/organizations", token=token_a).get_json()["organizations"]
    ] == ["org_a"]
    db.session.refresh(b_run)
    assert b_run.status == "running" and not b_run.cancel_requested
    assert db.session.query(SyncRun).filter_by(organization_id="org_b").count() == 1


def test_all_organizations_token_works_everywhere(api, orgs):
    b_run = make_run("org_b", "completed")
    for method, template in PATH_ENDPOINTS + HEADER_ENDPOINTS:
        response = api.open(method, url(template), token=orgs.token_all, org="org_b")
        assert response.status_code == 200, (template, response.get_json())
        started = response.get_json().get("sync_id")
        if method == "POST" and started:
            assert api.post(f"/api/v1/sync/cancel/{started}", token=orgs.token_all).status_code == 200
    for method, template in RUN_ENDPOINTS[:2]:
        assert api.open(method, url(template, sync=b_run.sync_id), token=orgs.token_all).status_code == 200
    response = api.post(f"/api/v1/sync/cancel/{b_run.sync_id}", token=orgs.token_all)
    assert response.status_code == 409 and error_type(response) == "sync_not_active"
    names = api.get("/api/v1/organizations", token=orgs.token_all).get_json()["organizations"]
    assert {o["organization_id"] for o in names} == {"org_a", "org_b"}


def test_unknown_organization_is_403_for_scoped_tokens_and_404_for_all_orgs(api, orgs, token_a):
    for method, template in PATH_ENDPOINTS:
        assert api.open(method, url(template, "org_nope"), token=token_a).status_code == 403
        assert api.open(method, url(template, "org_nope"), token=orgs.token_all).status_code == 404
    for method, template in HEADER_ENDPOINTS:
        assert api.open(method, template, token=orgs.token_all, org="org_nope").status_code == 404


def test_header_endpoints_need_an_organization_for_all_orgs_tokens(api, orgs, token_a):
    for method, template in HEADER_ENDPOINTS[:3]:
        response = api.open(method, template, token=orgs.token_all)
        assert response.status_code == 422, template
        assert response.get_json()["details"]["field"] == "X-Organization-ID"
    # An org-scoped token defaults to its organization.
    status = api.get("/api/v1/sync/scheduler/status", token=token_a).get_json()
    assert status["organization_id"] == "org_a"


def test_check_order_is_401_403_404_422(api, orgs, token_a):
    bad = "/api/v1/sync/start/{org}?sync_mode=turbo"
    assert api.post(url(bad, "org_b"), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.post(url(bad, "org_b"), token=token_a).status_code == 403
    assert api.post(url(bad, "org_nope"), token=orgs.token_all).status_code == 404
    response = api.post(url(bad, "org_a"), token=token_a)
    assert response.status_code == 422 and response.get_json()["details"]["field"] == "sync_mode"
    history = "/api/v1/sync/history/{org}?limit=0"
    assert api.get(url(history, "org_b"), token=token_a).status_code == 403
    assert api.get(url(history, "org_nope"), token=orgs.token_all).status_code == 404
    assert api.get(url(history, "org_a"), token=token_a).status_code == 422


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "limit=1.5",
        "limit=",
        "offset=-1",
        "offset=x",
        "status=done",
        "trigger=cron",
        "mode=turbo",
        "limit=%00",
    ],
)
def test_history_parameters_are_validated(api, orgs, query):
    response = api.get(f"/api/v1/sync/history/org_a?{query}", token=orgs.token_a)
    assert response.status_code == 422 and error_type(response) == "validation_error"
    assert response.get_json()["details"]["field"] == query.split("=")[0]


@pytest.mark.parametrize(
    "endpoint",
    [
        "/api/v1/sync/start/org_a?sync_mode=",
        "/api/v1/sync/start/org_a?sync_mode=ACTIVE",
        "/api/v1/cliniko/sync/org_a?mode=full",
        "/api/v1/sync/trigger?sync_mode=x",
        "/api/v1/sync/start/org_a?full=maybe",
        "/api/v1/cliniko/sync/org_a?full=",
    ],
)
def test_start_parameters_are_validated_and_nothing_starts(api, orgs, endpoint):
    response = api.post(endpoint, token=orgs.token_a)
    assert response.status_code == 422 and error_type(response) == "validation_error"
    assert db.session.query(SyncRun).count() == 0


def test_control_characters_in_ids_are_not_found_not_database_errors(api, orgs):
    assert api.get("/api/v1/sync/progress/a%00b", token=orgs.token_a).status_code == 404
    assert api.get("/api/v1/sync/history/org%00a", token=orgs.token_all).status_code == 404
    assert api.get("/api/v1/sync/history/org%00a", token=orgs.token_a).status_code == 403
    assert api.get("/api/v1/sync/scheduler/status", token=orgs.token_all, org="org\x01").status_code == 404


def test_a_session_may_call_the_api_with_its_role(api, orgs):
    make_user("viewer@example.com", org=orgs.a, role="viewer")
    make_user("operator@example.com", org=orgs.a, role="operator")
    login(api.client, "viewer@example.com")
    assert api.get("/api/v1/sync/scheduler/status").status_code == 200  # the person's only organization
    assert api.get("/api/v1/sync/history/org_a").status_code == 200
    assert api.get("/api/v1/sync/history/org_b").status_code == 403
    response = api.post("/api/v1/sync/start/org_a")
    assert response.status_code == 403 and response.get_json()["details"]["error_code"] == "ROLE_REQUIRED"
    assert api.post("/api/v1/sync/cleanup").status_code == 403
    run = make_run("org_a", "running", age=timedelta(minutes=1))
    assert api.post(f"/api/v1/sync/cancel/{run.sync_id}").status_code == 403
    api.client.post("/logout")
    login(api.client, "operator@example.com")
    response = api.post("/api/v1/cliniko/sync/org_a")
    assert response.status_code == 409  # the running row above holds the slot
    assert response.get_json()["details"]["sync_id"] == run.sync_id
    assert api.post(f"/api/v1/sync/cancel/{run.sync_id}").get_json()["status"] == "running"
    db.session.refresh(run)
    assert run.cancel_requested is True


def test_csrf_applies_to_sessions_only(make_app, sim_server):
    app = make_app(WTF_CSRF_ENABLED=True, CLINIKO_BASE_URL=sim_server.base_url)
    with app.app_context():
        from tests.factories import make_org

        org = make_org("org_a", api_key="csrf-key-au1")
        make_user(org=org, role="operator")
        _, clear = make_token(org)
        api = CheckedClient(app.test_client())
        # Nobody signed in: the answer is 401, not a CSRF 403.
        assert api.post("/api/v1/sync/cleanup").status_code == 401
        page = api.client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        assert (
            api.client.post(
                "/login", data={"email": "staff@example.com", "password": "pw-123456", "csrf_token": csrf}
            ).status_code
            == 302
        )
        response = api.post("/api/v1/sync/cleanup")
        assert response.status_code == 403 and response.get_json()["details"]["error_code"] == "CSRF_FAILED"
        # The token rotates at login: the one from the login page no longer works, the new one does.
        stale = api.post("/api/v1/sync/cleanup", headers={"X-CSRFToken": csrf})
        assert stale.status_code == 403 and stale.get_json()["details"]["error_code"] == "CSRF_FAILED"
        page = api.client.get("/").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        assert api.post("/api/v1/sync/cleanup", headers={"X-CSRFToken": csrf}).status_code == 200
        # Bearer requests are exempt: no cookie a browser could be tricked into sending.
        bearer = CheckedClient(app.test_client())
        r = bearer.post("/api/v1/sync/cleanup", token=clear)
        assert r.status_code == 200, r.get_json()
