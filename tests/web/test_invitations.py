"""Invitations (issue 11 items 1 and 6): no org admin ever sets or learns a password."""

import re
from datetime import timedelta

from routiq_admin.extensions import db
from routiq_admin.models import Invitation, Membership, User
from tests.factories import login, make_org, make_user

NEW = "new.physio@clinic-b.example"


def _invite(client, org, email=NEW, role="viewer", **extra):
    response = client.post(
        f"/orgs/{org.id}/settings/members",
        data={"email": email, "role": role, **extra},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    match = re.search(r"/invitations/([A-Za-z0-9_-]+)", html)
    return response, html, match.group(1) if match else None


def _logout(client):
    client.post("/logout")


def test_takeover_sequence_fails_at_its_first_step(client):
    org_a, org_b = make_org("org_a", name="A"), make_org("org_b", name="B")
    make_user("admin.a@clinic-a.example", org=org_a, role="admin")
    make_user("admin.b@clinic-b.example", org=org_b, role="admin")
    login(client, "admin.a@clinic-a.example")
    response, html, token = _invite(client, org_a, password="chosen-by-admin-a")
    assert response.status_code == 200 and token
    assert 'name="password"' not in client.get(f"/orgs/{org_a.id}/settings").get_data(as_text=True)
    # The account does not exist until the person accepts; A's admin holds no credentials.
    assert db.session.execute(db.select(User).filter_by(email=NEW)).scalar_one_or_none() is None
    _logout(client)
    assert login(client, NEW, password="chosen-by-admin-a").status_code == 401


def test_same_answer_for_existing_and_unknown_email(client):
    org = make_org()
    make_user(org=org, role="admin")
    make_user("exists@example.com")
    other = make_org("org_other", name="Other")
    member = make_user("member@example.com", org=other, role="viewer")
    login(client)
    bodies = []
    for email in ("exists@example.com", "unknown@example.com"):
        response, html, token = _invite(client, org, email=email)
        assert response.status_code == 200
        bodies.append(html.replace(token, "TOKEN").replace(email, "EMAIL"))
    # the pending list lists both; compare the answers without it
    cut = [b.split("Pending invitations")[0] for b in bodies]
    assert cut[0] == cut[1]
    # an existing membership elsewhere is unchanged and no membership here is created
    assert member.role_in(other.id) == "viewer"
    assert db.session.execute(db.select(Membership).filter_by(organization_id=org.id)).scalars().all()[
        0
    ].user.email == ("staff@example.com")


def test_new_person_sets_own_password_and_token_is_single_use(client):
    org = make_org()
    make_user(org=org, role="admin")
    login(client)
    _, _, token = _invite(client, org, role="operator")
    stored = db.session.execute(db.select(Invitation)).scalar_one()
    assert token not in stored.token_hash and len(stored.token_hash) == 64
    _logout(client)
    page = client.get(f"/invitations/{token}")
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    short = client.post(f"/invitations/{token}", data={"password": "short", "confirm": "short"})
    assert (
        short.status_code == 200 and db.session.execute(db.select(User).filter_by(email=NEW)).first() is None
    )
    done = client.post(
        f"/invitations/{token}", data={"password": "a-long-password", "confirm": "a-long-password"}
    )
    assert done.status_code == 302
    user = db.session.execute(db.select(User).filter_by(email=NEW)).scalar_one()
    assert user.role_in(org.id) == "operator" and user.check_password("a-long-password")
    assert client.get(f"/orgs/{org.id}").status_code == 200  # logged in
    _logout(client)
    again = client.get(f"/invitations/{token}")
    assert again.status_code == 404 and "no longer valid" in again.get_data(as_text=True)


def test_existing_account_must_be_signed_in_as_itself(client):
    org = make_org()
    make_user(org=org, role="admin")
    invitee = make_user("invitee@example.com")
    make_user("someone.else@example.com")
    login(client)
    _, _, token = _invite(client, org, email="Invitee@Example.com")
    _logout(client)
    assert client.get(f"/invitations/{token}").status_code == 302  # to the login page
    login(client, "someone.else@example.com")
    refused = client.post(f"/invitations/{token}")
    assert refused.status_code == 403 and "another account" in refused.get_data(as_text=True)
    assert invitee.role_in(org.id) is None
    _logout(client)
    login(client, "invitee@example.com")
    assert "Accept" in client.get(f"/invitations/{token}").get_data(as_text=True)
    assert client.post(f"/invitations/{token}").status_code == 302
    db.session.refresh(invitee)
    assert invitee.role_in(org.id) == "viewer"
    assert client.get(f"/invitations/{token}").status_code == 404


def test_expired_revoked_replaced_and_unknown_tokens(client):
    org = make_org()
    make_user(org=org, role="admin")
    login(client)
    _, _, first = _invite(client, org)
    _, _, second = _invite(client, org, role="operator")  # replaces the first
    assert db.session.execute(db.select(Invitation)).scalars().all()[0].role == "operator"
    assert client.get(f"/invitations/{first}").status_code == 404
    assert client.get(f"/invitations/{second}").status_code == 200
    invitation = db.session.execute(db.select(Invitation)).scalar_one()
    invitation.expires_at = invitation.created_at - timedelta(seconds=1)
    db.session.commit()
    assert client.get(f"/invitations/{second}").status_code == 404
    _, _, third = _invite(client, org)
    invitation = db.session.execute(db.select(Invitation)).scalar_one()
    client.post(f"/orgs/{org.id}/settings/invitations/{invitation.id}/revoke")
    assert client.get(f"/invitations/{third}").status_code == 404
    assert client.get("/invitations/not-a-token").status_code == 404


def test_token_of_one_org_cannot_grant_another(client):
    org_a, org_b = make_org("org_a", name="A"), make_org("org_b", name="B")
    make_user(org=org_a, role="admin")
    login(client)
    _, _, token = _invite(client, org_a)
    # the revoke route of org B cannot reach A's invitation either
    invitation = db.session.execute(db.select(Invitation)).scalar_one()
    assert client.post(f"/orgs/{org_b.id}/settings/invitations/{invitation.id}/revoke").status_code == 403
    _logout(client)
    client.post(f"/invitations/{token}", data={"password": "a-long-password", "confirm": "a-long-password"})
    user = db.session.execute(db.select(User).filter_by(email=NEW)).scalar_one()
    assert user.role_in(org_a.id) == "viewer" and user.role_in(org_b.id) is None


def test_gunicorn_access_log_drops_the_invitation_token(base_config, migrated, tmp_path):
    import socket
    import urllib.error
    import urllib.request

    from tests.conftest import start_process, subprocess_env, wait_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "access.log"
    env = subprocess_env(base_config, PORT=port, WEB_CONCURRENCY=1)
    proc = start_process(
        ["-m", "gunicorn", "-c", "gunicorn.conf.py", "--access-logfile", str(log), "wsgi:app"], env
    )
    try:
        token = "secret-invitation-token-abc123"

        def hit():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/invitations/{token}", timeout=2)
            except urllib.error.HTTPError as exc:
                return exc.code == 404
            except OSError:
                return False

        wait_for(hit, timeout=30, message="gunicorn")
        text = wait_for(lambda: log.exists() and "/invitations/" in log.read_text() and log.read_text())
        assert token not in text and "/invitations/[token]" in text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _Sink:
    """A real SMTP server's handler that keeps what it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_invitation_is_emailed_when_smtp_is_set(make_app):
    from aiosmtpd.controller import Controller

    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port, SMTP_STARTTLS=False)
        with app.app_context():
            org = make_org()
            make_user(org=org, role="admin")
            client = app.test_client()
            login(client)
            response = client.post(
                f"/orgs/{org.id}/settings/members",
                data={"email": NEW, "role": "viewer"},
                follow_redirects=True,
            )
            html = response.get_data(as_text=True)
            assert response.status_code == 200 and "sent by email" in html
            [(recipients, content)] = sink.messages
            assert recipients == [NEW]
            token = re.search(r"/invitations/([A-Za-z0-9_-]{20,})", content).group(1)
            assert token not in html  # the admin never sees the link
            _logout(client)
            assert client.get(f"/invitations/{token}").status_code == 200
    finally:
        controller.stop()


def test_invitation_link_is_shown_when_the_email_cannot_be_sent(make_app):
    app = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=_free_port(), SMTP_STARTTLS=False)  # nothing listens
    with app.app_context():
        org = make_org()
        make_user(org=org, role="admin")
        client = app.test_client()
        login(client)
        response, html, token = _invite(client, org)
        assert response.status_code == 200 and "could not be sent" in html and token
        assert db.session.execute(db.select(Invitation).filter_by(email=NEW)).scalar_one().accepted_at is None
