"""Revocable sessions, login timing, CSRF rotation and the network throttle (issue 11 items 3, 4, 11)."""

import statistics
import time

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Membership
from tests.factories import login, make_org, make_user
from tests.web.helpers import csrf_from


def _captured(app, org):
    """Log in on one client and return a second client holding a copy of its session cookie."""
    client = app.test_client()
    assert login(client).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    assert thief.get(f"/orgs/{org.id}").status_code == 200
    return client, thief


def _works(thief, org):
    return thief.get(f"/orgs/{org.id}").status_code == 200


def test_captured_cookie_dies_at_logout(client, app):
    org = make_org()
    make_user(org=org, role="admin")
    owner, thief = _captured(app, org)
    owner.post("/logout")
    assert not _works(thief, org)


def test_captured_cookie_dies_at_password_change(app):
    org = make_org()
    user = make_user(org=org, role="admin")
    owner, thief = _captured(app, org)
    wrong = owner.post(
        "/account/password", data={"current": "nope", "password": "x" * 12, "confirm": "x" * 12}
    )
    assert "not your current password" in wrong.get_data(as_text=True) and _works(thief, org)
    changed = owner.post(
        "/account/password",
        data={"current": "pw-123456", "password": "a-new-password", "confirm": "a-new-password"},
    )
    assert changed.status_code == 302 and _works(owner, org)  # this session goes on
    assert not _works(thief, org)
    db.session.refresh(user)
    assert user.check_password("a-new-password")


def test_captured_cookie_dies_when_the_membership_is_removed_or_signed_out(app):
    org = make_org()
    make_user("boss@example.com", org=org, role="admin")
    other = make_org("org_other", name="Other")
    member = make_user(org=org, role="viewer")
    db.session.add(Membership(user_id=member.id, organization_id=other.id, role="viewer"))
    db.session.commit()
    for action in ("sign-out", "remove"):
        _, thief = _captured(app, org)
        admin = app.test_client()
        login(admin, "boss@example.com")
        membership = db.session.execute(
            db.select(Membership).filter_by(user_id=member.id, organization_id=org.id)
        ).scalar_one()
        suffix = "/sign-out" if action == "sign-out" else "/remove"
        admin.post(f"/orgs/{org.id}/settings/members/{membership.id}{suffix}")
        assert thief.get(f"/orgs/{other.id}").status_code != 200, action


def test_sign_out_everywhere_from_own_account_page(app):
    org = make_org()
    make_user(org=org, role="viewer")
    owner, thief = _captured(app, org)
    assert "Sign out everywhere" in owner.get("/account/password").get_data(as_text=True)
    owner.post("/account/sign-out-everywhere")
    assert not _works(thief, org) and not _works(owner, org)


def test_absolute_lifetime_and_idle_timeout(make_app):
    app = make_app(SESSION_LIFETIME_HOURS=1.5 / 3600)
    with app.app_context():
        org = make_org()
        make_user(org=org, role="viewer")
        _, thief = _captured(app, org)
        for _ in range(4):  # activity does not extend the absolute lifetime
            time.sleep(0.4)
            thief.get("/")
        assert not _works(thief, org)
    app = make_app(SESSION_IDLE_MINUTES=1.5 / 60)
    with app.app_context():
        org = make_org("org_idle", name="Idle")
        make_user("idle@example.com", org=org, role="viewer")
        client = app.test_client()
        login(client, "idle@example.com")
        for _ in range(3):  # requests closer together than the idle limit keep it alive
            time.sleep(0.3)
            assert _works(client, org)
        time.sleep(2.0)
        assert not _works(client, org)


def test_csrf_token_rotates_at_login_and_logout(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_user(org=org, role="viewer")
        client = app.test_client()
        before = csrf_from(client.get("/login").get_data(as_text=True))
        client.post(
            "/login", data={"email": "staff@example.com", "password": "pw-123456", "csrf_token": before}
        )
        after = csrf_from(client.get(f"/orgs/{org.id}").get_data(as_text=True))
        assert after != before
        # the pre-login token is dead: a fixated token cannot be used after login
        assert client.post("/logout", data={"csrf_token": before}).status_code == 403
        client.post("/logout", data={"csrf_token": after})
        again = csrf_from(client.get("/login").get_data(as_text=True))
        assert again not in (before, after)


def test_network_throttle_says_so_even_for_the_right_password(make_app):
    app = make_app(LOGIN_MAX_FAILURES_PER_ADDRESS=3, LOGIN_MAX_FAILURES=100)
    with app.app_context():
        org = make_org()
        make_user(org=org, role="viewer")
        client = app.test_client()
        for n in range(3):
            assert login(client, f"someone{n}@example.com", password="wrong").status_code == 401
        blocked = login(client)
        text = blocked.get_data(as_text=True)
        assert blocked.status_code == 429
        assert "Too many attempts from this network, try again in 15 minutes" in text


def _median_login_seconds(client, email):
    started = time.perf_counter()
    assert login(client, email, password="wrong-password").status_code == 401
    return time.perf_counter() - started


def _medians(client):
    known, unknown = [], []
    for n in range(20):  # interleaved so load affects both kinds alike
        known.append(_median_login_seconds(client, f"known{n % 2}@example.com"))
        unknown.append(_median_login_seconds(client, f"nobody{n}@example.com"))
    return statistics.median(known), statistics.median(unknown)


def test_login_timing_does_not_tell_which_emails_exist(make_app):
    app = make_app(LOGIN_MAX_FAILURES=1000, LOGIN_MAX_FAILURES_PER_ADDRESS=1000)
    with app.app_context():
        make_user("known0@example.com")
        make_user("known1@example.com")
        client = app.test_client()
        for _ in range(2):  # one retry: a loaded machine can skew a single measurement
            known, unknown = _medians(client)
            if abs(known - unknown) <= 0.2 * max(known, unknown):
                break
        else:
            pytest.fail(f"medians differ: known {known:.3f}s, unknown {unknown:.3f}s")
