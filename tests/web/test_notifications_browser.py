"""Notifications in real Chromium (tests/notify has the rest): the settings panel and the run page's
delivery notice, no console or CSP errors, no sideways scroll at 375 px, "Send test event" by mouse;
screenshots for the README."""

import re
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from routiq_admin import notify
from routiq_admin.extensions import db
from routiq_admin.models import NotificationDelivery, NotificationEvent
from routiq_admin.notify import targets
from routiq_admin.notify.delivery import deliver
from tests.factories import make_org, make_run, make_user
from tests.notify.conftest import free_port, serve_receiver
from tests.web.conftest import screenshot, sign_in


@pytest.fixture
def receiver():
    yield from serve_receiver()


@pytest.fixture
def notify_site(make_app):
    app = make_app(
        SMTP_URL=f"smtp://127.0.0.1:{free_port()}?starttls=0",  # nothing listens: SMTP is down
        NOTIFY_RETRY_INTERVALS=[1, 1],
        NOTIFY_TIMEOUT_SECONDS=2,
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with app.app_context():
        yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _try_until_settled(delivery_id):
    """Make every try of a delivery here, without waiting for the retry intervals."""
    for _ in range(5):
        status = deliver(delivery_id)
        if status != "retrying":
            return status
    return None


@pytest.mark.browser
def test_notifications_panel_and_run_notice_in_chromium(notify_site, receiver, open_page):
    app, url = notify_site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="admin")
    _, receiver.secret = targets.add_webhook(org, receiver.url, ["sync.failed", "sync.recovered"])
    targets.add_email(org, "ops@harbour.example, owner@harbour.example", ["sync.failed", "sync.paused"])
    receiver.script = [500, 500]
    run = make_run(
        org.id,
        "failed",
        errors=[
            {
                "error_type": "api_connection_failed",
                "error_code": "CLINIKO_UNAVAILABLE",
                "message": "Cliniko kept answering 503",
                "entity": "patients",
                "at": "2026-12-02T03:00:02.000Z",
            }
        ],
    )
    notify.run_finished(run)
    hook, mail = db.session.execute(select(NotificationDelivery).order_by(NotificationDelivery.id)).scalars()
    assert _try_until_settled(hook.id) == "delivered"
    app.config["NOTIFY_DISABLE_AFTER_HOURS"] = 0  # the email target has failed "for a day"
    assert _try_until_settled(mail.id) == "failed"
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}/settings")
    panel = page.locator("#notifications")
    assert "Notifications to ops@harbour.example, owner@harbour.example are off" in panel.inner_text()
    assert panel.locator("text=(HTTP 500)").count() == 2
    panel.scroll_into_view_if_needed()
    shot = screenshot(page, "notifications-settings")
    assert shot.exists()
    page.goto(f"/orgs/{org.id}/syncs/{run.sync_id}")
    notice = page.locator("#delivery-failed")
    assert (
        "Notification delivery failed" in notice.inner_text()
        and "ConnectionRefusedError" in notice.inner_text()
    )
    screenshot(page, "run-delivery-failed")
    page.goto(f"/orgs/{org.id}/settings")
    page.get_by_role("button", name=f"Send test event to {receiver.url}").click()
    page.wait_for_url(re.compile(r"/settings"))
    assert "Test event queued" in page.locator(".flash.info").inner_text()
    assert db.session.execute(select(NotificationEvent).filter_by(type="sync.test")).scalar_one()
    narrow = open_page(url, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(narrow, "staff@example.com")
    for path in (f"/orgs/{org.id}/settings", f"/orgs/{org.id}/syncs/{run.sync_id}"):
        narrow.goto(path)
        assert narrow.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    assert list(open_page.problems) == []
