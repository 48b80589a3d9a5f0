"""Roles, CSRF, sessions, login throttling and the admin pages."""

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import ApiToken, Membership, Organization, SyncRun, User
from tests.factories import login, make_org, make_run, make_token, make_user
from tests.web.helpers import HX, csrf_from

OPERATOR_BUTTONS = ("Sync now", "Import patients", "Test connection")


def _posts(org_id, sync_id):
    return {
        "start": (f"/orgs/{org_id}/syncs", {"kind": "sync"}),
        "cancel": (f"/orgs/{org_id}/syncs/{sync_id}/cancel", {}),
        "test": (f"/orgs/{org_id}/test-connection", {}),
        "key": (f"/orgs/{org_id}/settings/cliniko", {"api_key": "new-key-au2"}),
        "sync": (f"/orgs/{org_id}/settings/sync", {"sync_enabled": "1", "time_zone": "UTC"}),
        "token": (f"/orgs/{org_id}/settings/tokens", {"name": "x"}),
        "retry": (f"/orgs/{org_id}/syncs/{sync_id}/retry", {}),
        "resume": (f"/orgs/{org_id}/resume", {}),
        "member": (
            f"/orgs/{org_id}/settings/members",
            {"email": "x@example.com", "role": "viewer"},
        ),
    }


@pytest.mark.parametrize(
    "role, allowed",
    [
        ("viewer", set()),
        ("operator", {"start", "cancel", "test", "retry", "resume"}),
        ("admin", {"start", "cancel", "test", "key", "sync", "token", "member", "retry", "resume"}),
        ("outsider", set()),
    ],
)
def test_role_matrix(client, monkeypatch, role, allowed):
    from routiq_admin.web import orgs as org_pages

    monkeypatch.setattr(
        org_pages,
        "check_connection",
        lambda org: {"success": True, "connection_status": "healthy", "response_time_ms": 5, "message": "ok"},
    )
    org = make_org()
    other = make_org("org_other", name="Other")
    make_user(org=other if role == "outsider" else org, role="viewer" if role == "outsider" else role)
    login(client)
    page = client.get(f"/orgs/{org.id}")
    if role == "outsider":
        assert page.status_code == 403
        for path in ("patients", "appointments", "syncs", "settings", "syncs/panel", "summary", "status"):
            assert client.get(f"/orgs/{org.id}/{path}", headers=HX).status_code == 403, path
    else:
        html = page.get_data(as_text=True)
        for label in OPERATOR_BUTTONS:
            assert (label in html) == (role != "viewer"), label
        assert ("Settings" in html) == (role == "admin")
        assert client.get(f"/orgs/{org.id}/settings").status_code == (200 if role == "admin" else 403)
    for name in _posts(org.id, "x"):
        db.session.execute(db.delete(SyncRun))
        db.session.commit()
        path, data = _posts(org.id, make_run(org.id, "running").sync_id)[name]
        if name == "start":
            db.session.execute(db.delete(SyncRun))
            db.session.commit()
        status = client.post(path, data=data, headers=HX).status_code
        assert status < 400 if name in allowed else status == 403, (name, status)


def test_viewer_panel_has_no_cancel_button(client):
    org = make_org()
    make_user(org=org, role="viewer")
    login(client)
    make_run(org.id, "running")
    html = client.get(f"/orgs/{org.id}/syncs/panel", headers=HX).get_data(as_text=True)
    assert "Cancel" not in html and "every 1s" in html


def test_token_cannot_use_settings_or_read_pages(client):
    org = make_org()
    _, clear = make_token(org)
    bearer = {"Authorization": f"Bearer {clear}"}
    assert client.get(f"/orgs/{org.id}/settings", headers=bearer).status_code in (302, 401)
    assert client.get(f"/orgs/{org.id}", headers=bearer).status_code in (302, 401)


def test_csrf_is_required_for_forms_and_htmx(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_user(org=org, role="admin")
        client = app.test_client()
        assert login(client).status_code in (400, 403)  # no token in the login form
        token = csrf_from(client.get("/login").get_data(as_text=True))
        ok = client.post(
            "/login", data={"email": "staff@example.com", "password": "pw-123456", "csrf_token": token}
        )
        assert ok.status_code == 302
        page = client.get(f"/orgs/{org.id}").get_data(as_text=True)
        header = csrf_from(page)
        # the page's htmx requests carry the token (and the page's zone, issue 15 item 10)
        assert f'hx-headers=\'{{"X-CSRFToken": "{header}", "X-Page-Zone": "UTC"}}\'' in page
        refused = client.post(f"/orgs/{org.id}/syncs", data={"kind": "sync"}, headers=HX)
        assert refused.status_code == 403
        assert db.session.execute(db.select(SyncRun)).first() is None
        for path in ("settings/tokens", "settings/cliniko", "test-connection"):
            assert client.post(f"/orgs/{org.id}/{path}", data={}).status_code == 403, path
        assert client.post("/logout").status_code == 403
        started = client.post(
            f"/orgs/{org.id}/syncs", data={"kind": "sync"}, headers={**HX, "X-CSRFToken": header}
        )
        assert started.status_code == 200 and started.headers["HX-Trigger"] == "sync-started"
        form = client.post(f"/orgs/{org.id}/settings/sync", data={"csrf_token": header, "time_zone": "UTC"})
        assert form.status_code == 302
        assert page.count(f'name="csrf_token" value="{header}"') >= 2  # every form carries it


def test_expired_session_on_htmx_gets_hx_redirect(client):
    org = make_org()
    for path in (f"/orgs/{org.id}/syncs/panel", f"/orgs/{org.id}/patients"):
        response = client.get(path, headers=HX)
        assert response.status_code == 401 and response.headers["HX-Redirect"] == "/login"
    response = client.get(f"/orgs/{org.id}/patients?q=secret")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/orgs/org_test", "/orgs/org_test"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\nSet-Cookie: x", "/"),
    ],
)
def test_login_next_is_same_site_only(client, target, expected):
    make_user()
    response = client.post(
        "/login", query_string={"next": target}, data={"email": "staff@example.com", "password": "pw-123456"}
    )
    assert response.status_code == 302 and response.headers["Location"] == expected


def test_failed_logins_are_throttled(make_app):
    app = make_app(LOGIN_MAX_FAILURES=3, LOGIN_THROTTLE_SECONDS=600)
    with app.app_context():
        make_user()
        client = app.test_client()
        for _ in range(3):
            assert login(client, password="wrong").status_code == 401
        blocked = login(client)  # even the right password waits
        assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(as_text=True)
        assert 0 < int(blocked.headers["Retry-After"]) <= 600
        other = make_user("other@example.com")
        assert login(client, "other@example.com").status_code == 302  # other accounts unaffected
        assert other.last_login_at is not None


def test_successful_login_clears_failures(make_app):
    app = make_app(LOGIN_MAX_FAILURES=3)
    with app.app_context():
        make_user()
        client = app.test_client()
        for _ in range(2):
            login(client, password="wrong")
        assert login(client).status_code == 302
        client.post("/logout")
        for _ in range(2):
            assert login(client, password="wrong").status_code == 401
        assert login(client).status_code == 302


def test_throttle_works_without_redis(make_app):
    app = make_app(LOGIN_MAX_FAILURES=2, REDIS_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        make_user("noredis@example.com")
        client = app.test_client()
        for _ in range(2):
            assert login(client, "noredis@example.com", password="wrong").status_code == 401
        assert login(client, "noredis@example.com").status_code == 429


def test_settings_key_sync_members_tokens(client):
    org = make_org()
    me = make_user(org=org, role="admin")
    viewer = make_user("viewer@example.com", org=org, role="viewer")
    login(client)
    html = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert "••••" in html and 'type="password" id="api-key"' in html and "test-key-au1" not in html
    client.post(f"/orgs/{org.id}/settings/cliniko", data={"api_key": "secretvalue9876-uk1"})
    db.session.refresh(org)
    assert org.api_key == "secretvalue9876-uk1" and org.cliniko_shard == "uk1"
    html = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert "••••9876" in html and "secretvalue" not in html
    client.post(f"/orgs/{org.id}/settings/sync", data={"time_zone": "Australia/Perth"})
    db.session.refresh(org)
    assert org.sync_enabled is False and org.time_zone == "Australia/Perth"
    bad = client.post(
        f"/orgs/{org.id}/settings/sync",
        data={"sync_enabled": "1", "time_zone": "Mars/Base"},
        follow_redirects=True,
    )
    assert "Unknown time zone" in bad.get_data(as_text=True)
    # members
    membership = db.session.execute(db.select(Membership).filter_by(user_id=viewer.id)).scalar_one()
    client.post(f"/orgs/{org.id}/settings/members/{membership.id}", data={"role": "operator"})
    assert db.session.get(Membership, membership.id).role == "operator"
    mine = db.session.execute(db.select(Membership).filter_by(user_id=me.id)).scalar_one()
    own = client.post(
        f"/orgs/{org.id}/settings/members/{mine.id}", data={"role": "viewer"}, follow_redirects=True
    )
    assert (
        "cannot change your own" in own.get_data(as_text=True)
        and db.session.get(Membership, mine.id).role == "admin"
    )
    # members are invited (issue 11 item 1): a password posted to the form is ignored
    invited = client.post(
        f"/orgs/{org.id}/settings/members",
        data={"email": "New@Example.com", "role": "operator", "password": "longpassword"},
        follow_redirects=True,  # issue 15 item 11: post/redirect/get
    )
    assert "/invitations/" in invited.get_data(as_text=True)
    assert db.session.execute(db.select(User).filter_by(email="new@example.com")).scalar_one_or_none() is None
    client.post(f"/orgs/{org.id}/settings/members/{membership.id}/remove")
    assert db.session.get(Membership, membership.id) is None
    # tokens: shown once, stored hashed, revocable
    # issue 15 item 11: the POST redirects and the token is shown once on the page it lands on
    created = client.post(
        f"/orgs/{org.id}/settings/tokens", data={"name": "reporting"}, follow_redirects=True
    )
    html = created.get_data(as_text=True)
    assert created.status_code == 200 and "no-store" in created.headers["Cache-Control"]
    clear = html.split('id="new-token-value" class="mono" type="text" readonly value="')[1].split('"')[0]
    token = db.session.execute(db.select(ApiToken).filter_by(name="reporting")).scalar_one()
    assert (
        clear.startswith("rtq_")
        and token.organization_id == org.id
        and clear not in client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    )
    assert (
        client.get("/api/v1/organizations", headers={"Authorization": f"Bearer {clear}"}).status_code == 200
    )
    client.post(f"/orgs/{org.id}/settings/tokens/{token.id}/revoke")
    db.session.refresh(token)
    assert token.revoked_at is not None
    assert (
        client.get("/api/v1/organizations", headers={"Authorization": f"Bearer {clear}"}).status_code == 401
    )
    other = make_org("org_other", name="Other")
    foreign, _ = make_token(other)
    client.post(f"/orgs/{org.id}/settings/tokens/{foreign.id}/revoke")
    db.session.refresh(foreign)
    assert foreign.revoked_at is None  # another org's token is out of reach


def test_superuser_creates_organizations(client):
    make_user("boss@example.com", superuser=True)
    make_user("staff@example.com")
    login(client)
    assert client.get("/admin/orgs/new").status_code == 403
    assert client.post("/admin/orgs/new", data={"name": "X"}).status_code == 403
    login(client, "boss@example.com")
    page = client.get("/admin/orgs/new")
    assert page.status_code == 200 and "New organization" in page.get_data(as_text=True)
    made = client.post(
        "/admin/orgs/new",
        data={"name": "Harbour Physio", "api_key": "k" * 20 + "-au3", "time_zone": "Australia/Sydney"},
    )
    org = db.session.execute(db.select(Organization).filter_by(name="Harbour Physio")).scalar_one()
    assert made.status_code == 302 and made.headers["Location"].endswith(f"/orgs/{org.id}")
    assert org.id.startswith("org_") and org.cliniko_shard == "au3" and org.time_zone == "Australia/Sydney"
    dup = client.post("/admin/orgs/new", data={"name": "Again", "id": org.id})
    assert dup.status_code == 422 and "exists" in dup.get_data(as_text=True)
    assert client.post("/admin/orgs/new", data={"name": "", "id": "bad id!"}).status_code == 422
    assert "Harbour Physio" in client.get("/").get_data(as_text=True)
