"""A clinic whose Cliniko starts failing, end to end: scheduled runs through a real worker fail (one
signed sync.failed webhook each, then sync.paused, then sync.recovered at a real receiver),
the schedule pauses after AUTO_PAUSE_AFTER_FAILURES, the banner shows in Chromium, Resume
(pressed in Chromium) lets the next tick start it, and the success clears the failure count."""

import re
from datetime import timedelta

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Organization, SyncRun, utcnow
from routiq_admin.notify import targets as notify_targets
from routiq_admin.sync.tick import tick
from tests.conftest import wait_for
from tests.factories import make_org, make_user
from tests.notify.conftest import serve_receiver
from tests.web.conftest import screenshot, sign_in

FINISHED = ("completed", "failed", "cancelled")
receiver = pytest.fixture(serve_receiver, name="receiver")


def _events(receiver, count):
    """The event types the receiver got, signature verified, once `count` have arrived."""
    wait_for(lambda: len(receiver.delivered()) >= count, timeout=60, message=f"{count} webhook deliveries")
    return [r["body"]["type"] for r in receiver.delivered()]


def _finished(sync_id):
    def done():
        db.session.rollback()
        run = db.session.execute(db.select(SyncRun).filter_by(sync_id=sync_id)).scalar_one()
        return run if run.status in FINISHED else None

    return wait_for(done, timeout=60, message=f"{sync_id} to finish")


def _org(org_id):
    db.session.rollback()
    return db.session.get(Organization, org_id, populate_existing=True)


@pytest.mark.browser
def test_failing_clinic_pauses_and_resume_in_chromium_restarts_it(site, browser_sim, open_page, receiver):
    _, url = site
    org = make_org("org_failing", name="Harbour Physio", api_key="failing-clinic-key-au1")
    make_user(org=org, role="admin")  # admins operate too; the settings screenshot needs one
    # the operator's webhook: one signed sync.failed per failed run, sync.paused, then sync.recovered
    _, receiver.secret = notify_targets.add_webhook(
        org, receiver.url, "sync.failed,sync.paused,sync.recovered"
    )
    sim = browser_sim.simulator
    sim.inject("malformed_json", count=None, key="failing-clinic-key-au1")
    clock = utcnow()
    try:
        for n in range(1, 6):
            clock += timedelta(hours=1)  # a frozen clock, an hour per tick: always due
            (sync_id,) = tick(clock)["started"]
            run = _finished(sync_id)
            assert run.status == "failed" and run.errors[-1]["error_type"] == "invalid_data_format"
            # the worker records the outcome just after the run's final commit
            wait_for(
                lambda n=n: _org(org.id).consecutive_failures == n, timeout=30, message="the failure count"
            )
            assert (_org(org.id).paused_at is not None) == (n == 5)
        reason = _org(org.id).paused_reason
        assert reason.startswith("5 scheduled runs failed in a row") and "invalid_data_format" in reason
        clock += timedelta(hours=1)
        assert tick(clock)["started"] == []  # paused: no more scheduled starts
        assert sorted(_events(receiver, 6)) == ["sync.failed"] * 5 + ["sync.paused"]
        assert all(r["verified"] for r in receiver.requests)
    finally:
        sim.clear_faults()

    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.wait_for_selector(".paused-banner >> text=Scheduled syncs paused")  # on the list
    page.click("text=Harbour Physio")
    banner = page.wait_for_selector(".paused-banner")
    assert "5 scheduled runs failed in a row" in banner.inner_text()
    screenshot(page, "organization-paused")
    page.click(".paused-banner button:has-text('Resume')")
    page.wait_for_url(re.compile(rf"/orgs/{org.id}$"))
    page.wait_for_selector("text=Scheduled syncs resumed")
    assert page.locator(".paused-banner").count() == 0
    assert _org(org.id).paused_at is None

    clock += timedelta(minutes=1)
    (sync_id,) = tick(clock)["started"]  # the next tick starts it
    assert _finished(sync_id).status == "completed"
    wait_for(lambda: _org(org.id).consecutive_failures == 0, timeout=30, message="the recovery")
    assert _org(org.id).paused_at is None
    assert _events(receiver, 7)[-1] == "sync.recovered" and len(receiver.requests) == 7
    page.goto(f"/orgs/{org.id}/settings")
    page.fill("#schedule-cron", "0 */4 * * *")
    page.check("input[name=kind][value=cron]")
    page.select_option("#time-zone", "Australia/Sydney")
    # the preview follows the form: every 4 hours on the hour, in Sydney time
    page.wait_for_function(
        "() => [...document.querySelectorAll('#schedule-preview li')].filter("
        "li => / (00|04|08|12|16|20):00 AE[DS]T$/.test(li.textContent)).length === 5"
    )
    assert "(Australia/Sydney)" in page.inner_text("#schedule-preview")
    screenshot(page, "settings-schedule")
    assert not open_page.problems, open_page.problems
