"""The Notifications panel of the settings page, and the `notify` CLI: who may change what,
forms with their errors next to the field, the signing secret shown once, "Send test event"."""

import re

import pytest
from sqlalchemy import func, select

from routiq_admin.extensions import db
from routiq_admin.models import NotificationDelivery, NotificationEvent, NotificationTarget
from routiq_admin.notify import targets
from tests.factories import login, make_org, make_token, make_user
from tests.web.helpers import csrf_from

BASE = "/orgs/{}/settings/notifications"


def _count(model):
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar()


def _admin(client, org, email="staff@example.com"):
    make_user(email, org=org, role="admin")
    login(client, email)


def test_admin_adds_email_recipients_and_a_webhook_whose_secret_shows_once(client):
    org = make_org()
    _admin(client, org)
    page = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert 'id="notifications-title"' in page and "Nobody is notified yet." in page
    added = client.post(
        BASE.format(org.id) + "/email",
        data={
            "recipients": "ops@clinic.example, Boss@clinic.example",
            "events": ["sync.failed", "sync.paused"],
        },
    )
    assert added.status_code == 302
    email = db.session.execute(select(NotificationTarget)).scalar_one()
    assert email.recipients == ["ops@clinic.example", "boss@clinic.example"]
    assert email.events == ["sync.failed", "sync.paused"]
    response = client.post(
        BASE.format(org.id) + "/webhook", data={"url": "http://127.0.0.1:9/hook", "events": ["sync.failed"]}
    )
    html = response.get_data(as_text=True)
    secret = re.search(r'id="new-secret-value"[^>]*value="(whsec_[^"]+)"', html).group(1)
    hook = db.session.execute(select(NotificationTarget).filter_by(kind="webhook")).scalar_one()
    assert response.status_code == 200 and hook.secret == secret
    assert secret not in hook.secret_encrypted  # encrypted at rest
    later = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert secret not in later and "http://127.0.0.1:9/hook" in later and "Send test event" in later


def test_bad_input_is_refused_with_the_error_next_to_its_field(make_app):
    app = make_app(NOTIFY_ALLOW_PRIVATE_URLS=False)  # the production rule
    with app.app_context():
        org = make_org()
        client = app.test_client()
        _admin(client, org)
        cases = [
            ("/email", {"recipients": " , ", "events": ["sync.failed"]}, "notify-recipients", "at least one"),
            ("/email", {"recipients": "ops@clinic.example"}, None, "Pick at least one event"),
            ("/webhook", {"url": "ftp://example.com/x", "events": ["sync.failed"]}, "notify-url", "http"),
            (
                "/webhook",
                {"url": "http://169.254.169.254/", "events": ["sync.failed"]},
                "notify-url",
                "private",
            ),
            (
                "/webhook",
                {"url": "http://localhost:8080/", "events": ["sync.failed"]},
                "notify-url",
                "private",
            ),
        ]
        for path, data, field_id, message in cases:
            response = client.post(BASE.format(org.id) + path, data=data)
            html = response.get_data(as_text=True)
            assert response.status_code == 422, data
            if field_id:
                assert re.search(rf'<p class="field-error" id="{field_id}-error">[^<]*{message}', html), data
                assert f'aria-describedby="{field_id}-error"' in html
            else:
                assert message in html
        assert _count(NotificationTarget) == 0


def test_send_test_event_queues_a_signed_delivery_to_that_target_only(client, redis_conn):
    org = make_org()
    _admin(client, org)
    one, _ = targets.add_webhook(org, "http://127.0.0.1:9/one", ["sync.failed"])
    targets.add_email(org, "ops@clinic.example", ["sync.failed"])
    response = client.post(BASE.format(org.id) + f"/{one.id}/test")
    assert response.status_code == 302
    event = db.session.execute(select(NotificationEvent)).scalar_one()
    delivery = db.session.execute(select(NotificationDelivery)).scalar_one()
    assert event.type == "sync.test" and delivery.target_id == one.id
    from rq import Queue

    queue = Queue("routiq-test", connection=redis_conn)
    assert f"notify-{delivery.id}-1" in queue.job_ids  # its own RQ job, the row id its only argument
    assert queue.fetch_job(f"notify-{delivery.id}-1").args == (delivery.id,)
    page = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert "sync.test" in page and "waiting for a worker" in page


def test_remove_deletes_the_target_and_its_deliveries(client):
    org = make_org()
    _admin(client, org)
    target = targets.add_email(org, "ops@clinic.example", ["sync.paused"])
    from routiq_admin import notify

    notify.emit(org.id, "sync.paused")
    assert client.post(BASE.format(org.id) + f"/{target.id}/remove").status_code == 302
    assert _count(NotificationTarget) == 0 and _count(NotificationDelivery) == 0


def test_nobody_but_this_orgs_admins_can_touch_its_notifications(client):
    org, other = make_org(), make_org("org_other", name="Other")
    target = targets.add_email(org, "ops@clinic.example", ["sync.failed"])
    theirs = targets.add_email(other, "theirs@other.example", ["sync.failed"])
    make_user("viewer@example.com", org=org, role="viewer")
    make_user("operator@example.com", org=org, role="operator")
    make_user("admin.other@example.com", org=other, role="admin")
    _, clear = make_token(org)
    posts = [
        ("/email", {"recipients": "evil@example.com", "events": ["sync.failed"]}),
        ("/webhook", {"url": "http://127.0.0.1:9/evil", "events": ["sync.failed"]}),
        (f"/{target.id}/test", {}),
        (f"/{target.id}/remove", {}),
        (f"/{target.id}/enable", {}),
    ]

    def tries(expected, headers=None):
        for path, data in posts:
            response = client.post(BASE.format(org.id) + path, data=data, headers=headers or {})
            assert response.status_code in expected, (path, response.status_code)

    tries((302,))  # anonymous: to the login page
    assert "/login" in client.post(BASE.format(org.id) + "/email").headers["Location"]
    tries((302, 401), headers={"Authorization": f"Bearer {clear}"})  # a token never opens a page
    for email in ("viewer@example.com", "operator@example.com", "admin.other@example.com"):
        login(client, email)
        tries((403, 404))
        client.post("/logout")
    assert _count(NotificationTarget) == 2 and _count(NotificationEvent) == 0
    # this org's admin cannot reach another org's target through their own org's URLs
    _admin(client, org, "admin@example.com")
    client.post(BASE.format(org.id) + f"/{theirs.id}/remove")
    client.post(BASE.format(org.id) + f"/{theirs.id}/test")
    assert db.session.get(NotificationTarget, theirs.id) is not None and _count(NotificationEvent) == 0
    assert "theirs@other.example" not in client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)


def test_csrf_is_required(make_app):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        org = make_org()
        make_user(org=org, role="admin")
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        client.post(
            "/login", data={"email": "staff@example.com", "password": "pw-123456", "csrf_token": token}
        )
        page = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
        data = {"recipients": "ops@clinic.example", "events": ["sync.failed"]}
        assert client.post(BASE.format(org.id) + "/email", data=data).status_code == 403
        assert _count(NotificationTarget) == 0
        ok = client.post(BASE.format(org.id) + "/email", data={**data, "csrf_token": csrf_from(page)})
        assert ok.status_code == 302 and _count(NotificationTarget) == 1


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_cli_add_and_list(app, runner):
    make_org("org_cli", name="CLI Clinic")
    added = runner.invoke(
        args=[
            "notify",
            "add",
            "org_cli",
            "--email",
            "ops@clinic.example",
            "--events",
            "sync.failed,sync.paused",
        ]
    )
    assert added.exit_code == 0, added.output
    hook = runner.invoke(args=["notify", "add", "org_cli", "--webhook", "http://127.0.0.1:9/hook"])
    assert hook.exit_code == 0, hook.output
    secret = hook.output.strip().splitlines()[-1]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/=]{40,}", secret)
    target = db.session.execute(select(NotificationTarget).filter_by(kind="webhook")).scalar_one()
    assert target.secret == secret and "sync.completed" not in target.events
    listed = runner.invoke(args=["notify", "list", "org_cli"])
    assert listed.exit_code == 0
    assert "ops@clinic.example" in listed.output and "http://127.0.0.1:9/hook" in listed.output
    assert "sync.failed,sync.paused" in listed.output and secret not in listed.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--email", " "], "at least one"),
        ([], "give --email ADDRESS or --webhook URL"),
        (["--webhook", "ftp://example.com/x"], "http"),
        (["--email", "ops@clinic.example", "--events", "sync.nope"], "Unknown event"),
    ],
)
def test_cli_refuses_bad_input(app, runner, args, message):
    make_org("org_cli", name="CLI Clinic")
    result = runner.invoke(args=["notify", "add", "org_cli", *args])
    assert result.exit_code != 0 and message in result.output
    assert _count(NotificationTarget) == 0
    assert runner.invoke(args=["notify", "list", "org_nope"]).exit_code != 0
