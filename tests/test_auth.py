"""Sessions, bearer tokens and role checks on real routes."""

import logging

from routiq_admin.extensions import db
from routiq_admin.models import utcnow
from tests.conftest import assert_logs_clean
from tests.factories import login, make_org, make_token, make_user


def test_api_without_credentials_is_json_401(client):
    response = client.get("/api/v1/organizations")
    assert response.status_code == 401
    body = response.get_json()
    assert body["success"] is False
    assert body["details"]["error_type"] == "unauthorized"
    assert body["details"]["error_code"] == "AUTH_REQUIRED"
    assert body["timestamp"].endswith("Z")


def test_browser_without_session_is_redirected_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_htmx_without_session_gets_hx_redirect(client):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_login_page_renders_and_logs_in(client):
    org = make_org()
    make_user(org=org, role="viewer")
    page = client.get("/login")
    assert page.status_code == 200 and b"Log in" in page.data
    assert b"htmx.org@2.0.11" in page.data and b'integrity="sha384-' in page.data
    assert login(client, password="wrong").status_code == 401
    response = login(client)
    assert response.status_code == 302
    orgs = client.get("/")
    assert orgs.status_code == 200
    assert b"Test Clinic" in orgs.data
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_org_list_shows_only_memberships(client):
    mine = make_org("org_mine", name="Mine Clinic")
    make_org("org_theirs", name="Theirs Clinic")
    make_user(org=mine, role="operator")
    login(client)
    page = client.get("/").data
    assert b"Mine Clinic" in page and b"Theirs Clinic" not in page
    api = client.get("/api/v1/organizations").get_json()
    assert [o["organization_id"] for o in api["organizations"]] == ["org_mine"]
    assert client.get("/api/v1/organizations/org_theirs").status_code == 403


def test_superuser_sees_every_org_and_unknown_is_404(client):
    make_org("org_a", name="A")
    make_org("org_b", name="B")
    make_user(superuser=True)
    login(client)
    api = client.get("/api/v1/organizations").get_json()
    assert {o["organization_id"] for o in api["organizations"]} == {"org_a", "org_b"}
    assert client.get("/api/v1/organizations/org_missing").status_code == 404


def test_bearer_token_scope(client):
    a = make_org("org_a", name="A")
    make_org("org_b", name="B")
    token, clear = make_token(a)
    headers = {"Authorization": f"Bearer {clear}"}
    assert client.get("/api/v1/organizations/org_a", headers=headers).status_code == 200
    forbidden = client.get("/api/v1/organizations/org_b", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.get_json()["details"]["error_type"] == "forbidden"
    assert client.get("/api/v1/organizations/org_nope", headers=headers).status_code == 403
    db.session.refresh(token)
    assert token.last_used_at is not None


def test_all_orgs_token_and_revocation(client):
    make_org("org_a", name="A")
    make_org("org_b", name="B")
    token, clear = make_token(all_orgs=True)
    headers = {"Authorization": f"Bearer {clear}"}
    assert client.get("/api/v1/organizations/org_b", headers=headers).status_code == 200
    assert client.get("/api/v1/organizations/org_zzz", headers=headers).status_code == 404
    token.revoked_at = utcnow()
    db.session.commit()
    revoked = client.get("/api/v1/organizations/org_b", headers=headers)
    assert revoked.status_code == 401
    assert client.get("/api/v1/organizations", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_unknown_api_route_and_wrong_method_use_the_envelope(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.get_json()["details"]["error_type"] == "not_found"
    wrong = client.delete("/api/v1/organizations")
    assert wrong.status_code == 405
    assert wrong.get_json()["details"]["error_code"] == "METHOD_NOT_ALLOWED"


def test_csrf_protects_session_posts_but_not_bearer(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_org()
        make_user()
        client = app.test_client()
        refused = client.post("/login", data={"email": "staff@example.com", "password": "pw-123456"})
        assert refused.status_code == 403
        _, clear = make_token(all_orgs=True)
        bearer = client.post("/api/v1/organizations", headers={"Authorization": f"Bearer {clear}"})
        assert bearer.status_code == 405  # past CSRF: the route itself answers


def test_clear_key_never_logged(client, caplog, log_format):
    caplog.set_level(logging.DEBUG)
    secret = "SUPERSECRETKEY998877-au2"
    org = make_org(api_key=secret)
    make_user(superuser=True)
    login(client)
    client.get("/")
    body = client.get(f"/api/v1/organizations/{org.id}").get_data(as_text=True)
    assert secret not in body and "998877" not in body
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert_logs_clean(caplog, log_format, secret, "pw-123456")
    assert secret not in repr(org)
