"""Deliveries through a real RQ worker: email to a real SMTP sink, webhooks to a real receiver that
verifies the Standard Webhooks signature; retries, attempts recorded, endpoints disabled."""

import pytest
from sqlalchemy import select

from routiq_admin import notify
from routiq_admin.extensions import db
from routiq_admin.models import NotificationAttempt, NotificationDelivery, NotificationTarget, SyncRun
from routiq_admin.notify import targets
from routiq_admin.notify.delivery import deliver
from routiq_admin.sync.runs import start_sync
from tests.conftest import wait_for
from tests.factories import login, make_org, make_run, make_user
from tests.notify.conftest import FAST, GOOD_KEY, free_port

PUBLIC = "https://routiq.example.org"


@pytest.fixture
def notify_app(make_app, small_sim, smtp_sink):
    app = make_app(CLINIKO_BASE_URL=small_sim.base_url, SMTP_URL=smtp_sink.url, PUBLIC_URL=PUBLIC, **FAST)
    with app.app_context():
        yield app


def _fresh(model, key):
    db.session.expire_all()
    return db.session.get(model, key)


def _finished(run):
    return _fresh(SyncRun, run.id).status in ("completed", "failed", "cancelled")


def _run_to_the_end(org, n, smtp_sink, receiver):
    """Start a scheduled run; wait until it finished and its n-th email and webhook arrived."""
    run = start_sync(org, trigger="scheduled")
    wait_for(lambda: _finished(run), timeout=60, message="the run to finish")
    wait_for(
        lambda: len(smtp_sink.messages) >= n and len(receiver.delivered()) >= n,
        timeout=60,
        message=f"notification {n}",
    )
    return _fresh(SyncRun, run.id)


def test_each_failed_run_sends_one_email_and_one_signed_webhook_then_recovered(
    notify_app, smtp_sink, receiver, start_worker, small_sim
):
    org = make_org("org_failing", "Bondi Physio", api_key=GOOD_KEY)
    targets.add_email(org, "ops@clinic.example", ["sync.failed", "sync.recovered"])
    _, secret = targets.add_webhook(org, receiver.url, ["sync.failed", "sync.recovered"])
    receiver.secret = secret
    _, log = start_worker(PUBLIC_URL=PUBLIC)
    small_sim.simulator.inject("malformed_json", count=None)  # Cliniko starts failing
    runs = [_run_to_the_end(org, n, smtp_sink, receiver) for n in (1, 2)]
    assert [r.status for r in runs] == ["failed", "failed"]
    assert len(smtp_sink.messages) == 2 and len(receiver.requests) == 2
    for run, message, request in zip(runs, smtp_sink.messages, receiver.requests, strict=True):
        assert message["to"] == ["ops@clinic.example"]
        content = message["content"]
        assert message["subject"] == "[Routiq] Sync failed: Bondi Physio"
        assert run.sync_id in content and "invalid_data_format" in content
        assert f"{PUBLIC}/orgs/org_failing/syncs/{run.sync_id}" in content
        assert request["verified"], "the receiver verified the signature with the endpoint's secret"
        body = request["body"]
        assert body["type"] == "sync.failed" and request["headers"]["webhook-id"] == body["id"]
        assert body["data"]["sync_id"] == run.sync_id and body["data"]["status"] == "failed"
        assert body["data"]["error"]["error_type"] == "invalid_data_format"
        assert body["data"]["trigger"] == "scheduled" and body["data"]["organization_id"] == org.id
    assert receiver.requests[0]["body"]["id"] != receiver.requests[1]["body"]["id"]
    small_sim.simulator.clear_faults()  # fixed
    recovered = _run_to_the_end(org, 3, smtp_sink, receiver)
    assert recovered.status == "completed"
    assert smtp_sink.messages[2]["subject"] == "[Routiq] Sync recovered: Bondi Physio"
    assert receiver.requests[2]["body"]["type"] == "sync.recovered" and receiver.requests[2]["verified"]
    assert receiver.requests[2]["body"]["data"]["error"] is None
    assert len(smtp_sink.messages) == 3 and len(receiver.requests) == 3
    logged = log.read_text()
    assert "job notify-" in logged  # this is the worker that delivered
    assert secret not in logged and secret.removeprefix("whsec_") not in logged
    assert GOOD_KEY not in logged and all(GOOD_KEY not in m["raw"] for m in smtp_sink.messages)


def test_a_completed_run_notification_carries_no_patient_data(
    notify_app, smtp_sink, receiver, start_worker, small_sim
):
    org = make_org("org_ok", "Good Clinic", api_key=GOOD_KEY)
    targets.add_email(org, "ops@clinic.example", ["sync.completed"])
    _, receiver.secret = targets.add_webhook(org, receiver.url, ["sync.completed"])
    start_worker()
    run = start_sync(org)
    wait_for(lambda: len(smtp_sink.messages) == 1 and len(receiver.delivered()) == 1, timeout=60)
    assert _fresh(SyncRun, run.id).status == "completed"
    from routiq_admin.models import Patient

    patients = db.session.execute(select(Patient).where(Patient.organization_id == org.id)).scalars().all()
    assert patients
    sent = smtp_sink.messages[0]["content"] + str(receiver.requests[0]["body"])
    for patient in patients:
        for value in (patient.last_name, patient.email, patient.phone):
            if value and len(value) > 3:
                assert value not in sent


def test_receiver_failing_twice_gets_it_once_with_three_attempts_recorded(notify_app, receiver, start_worker):
    client = notify_app.test_client()
    org = make_org(api_key=GOOD_KEY)
    make_user(org=org, role="admin")
    _, receiver.secret = targets.add_webhook(org, receiver.url, ["sync.failed"])
    receiver.script = [500, 500]
    run = make_run(org.id, "failed")
    start_worker()
    event = notify.emit(org.id, "sync.failed", run)
    delivery = db.session.execute(select(NotificationDelivery)).scalar_one()
    wait_for(lambda: _fresh(NotificationDelivery, delivery.id).status != "pending", timeout=60)
    delivery = _fresh(NotificationDelivery, delivery.id)
    assert delivery.status == "delivered" and delivery.attempts == 3
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert all(r["verified"] for r in receiver.requests)
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {event.id}  # one message, retried
    attempts = db.session.execute(select(NotificationAttempt).order_by(NotificationAttempt.number)).scalars()
    assert [(a.number, a.status_code, a.ok) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert deliver(delivery.id) == "delivered" and len(receiver.requests) == 3  # idempotent
    login(client)
    page = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert page.count("(HTTP 500)") == 2 and "(HTTP 200)" in page and ">delivered<" in page
    assert _fresh(NotificationTarget, delivery.target_id).failing_since is None


def test_receiver_that_never_answers_stops_retries_disables_the_endpoint_not_the_sync(
    notify_app, receiver, start_worker
):
    client = notify_app.test_client()
    org = make_org(api_key=GOOD_KEY)
    make_user(org=org, role="admin")
    target, receiver.secret = targets.add_webhook(org, receiver.url, ["sync.completed"])
    receiver.hang = True
    # "Failing for a day" shrunk to under 2 s so the test sees it.
    start_worker(NOTIFY_DISABLE_AFTER_HOURS="0.0005")
    run = start_sync(org)
    wait_for(lambda: db.session.execute(select(NotificationDelivery)).first() is not None, timeout=60)
    delivery = db.session.execute(select(NotificationDelivery)).scalar_one()
    wait_for(lambda: _fresh(NotificationDelivery, delivery.id).status != "pending", timeout=60)
    delivery = _fresh(NotificationDelivery, delivery.id)
    target = _fresh(NotificationTarget, target.id)
    assert delivery.status == "failed" and 2 <= delivery.attempts <= 3
    assert len(receiver.requests) == delivery.attempts  # retries stopped
    assert not target.enabled and "ReadTimeout" in target.disabled_reason
    assert _fresh(SyncRun, run.id).status == "completed"
    assert notify.emit(org.id, "sync.completed", make_run(org.id, "completed")) is None  # disabled: skipped
    again = start_sync(org)
    wait_for(lambda: _finished(again), timeout=60)
    assert _fresh(SyncRun, again.id).status == "completed"
    login(client)
    page = client.get(f"/orgs/{org.id}/settings").get_data(as_text=True)
    assert f"Notifications to {receiver.url} are off" in page and "Turn back on" in page
    client.post(f"/orgs/{org.id}/settings/notifications/{target.id}/enable")
    assert _fresh(NotificationTarget, target.id).enabled


def test_smtp_down_shows_on_the_run_page_and_breaks_nothing(make_app):
    app = make_app(SMTP_URL=f"smtp://127.0.0.1:{free_port()}?starttls=0", NOTIFY_RETRY_INTERVALS=[])
    with app.app_context():
        org = make_org()
        make_user(org=org, role="admin")
        targets.add_email(org, "ops@clinic.example", ["sync.failed"])
        run = make_run(org.id, "failed")
        notify.run_finished(run)
        delivery = db.session.execute(select(NotificationDelivery)).scalar_one()
        assert deliver(delivery.id) == "failed"  # the job's body: one try, nothing listens
        assert _fresh(SyncRun, run.id).status == "failed"
        client = app.test_client()
        login(client)
        page = client.get(f"/orgs/{org.id}/syncs/{run.sync_id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "Notification delivery failed" in html
        assert "ConnectionRefusedError" in html and "gave up after 1 try" in html
        assert client.get(f"/orgs/{org.id}").status_code == 200
        assert client.get(f"/orgs/{org.id}/settings").status_code == 200
        other = make_run(org.id, "completed")
        assert "Notification delivery failed" not in client.get(
            f"/orgs/{org.id}/syncs/{other.sync_id}"
        ).get_data(as_text=True)
