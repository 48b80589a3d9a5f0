"""The fleet view and a run's timeline in real Chromium: search as you type, filter, page, no console errors."""

import re
import time

import pytest

from routiq_admin.extensions import db
from routiq_admin.sync import events
from tests.factories import make_run
from tests.web import fleet_data
from tests.web.conftest import screenshot, sign_in


def _row_ids(page):
    return page.eval_on_selector_all("#fleet tr[data-org-id]", "rows => rows.map(r => r.dataset.orgId)")


def _rows_become(page, want, timeout=20):
    """Wait until the fleet table shows exactly `want` (htmx swaps it); our CSP forbids eval'd predicates."""
    deadline = time.monotonic() + timeout
    while _row_ids(page) != want:
        if time.monotonic() > deadline:
            pytest.fail(f"rows stayed {_row_ids(page)[:5]}…, wanted {want[:5]}…")
        page.wait_for_timeout(100)


@pytest.mark.browser
def test_fleet_search_filter_and_paging_in_the_browser(site, open_page):
    _, url = site
    fleet_data.build()
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "member@example.com", fleet_data.PASSWORD)
    assert page.inner_text("[data-count=all]") == "666"
    assert len(_row_ids(page)) == 50
    screenshot(page, "fleet")
    page.fill("#fleet-q", "Clinic 012")
    _rows_become(page, [fleet_data.org_id(i) for i in range(120, 130) if fleet_data.is_member(i)])
    assert "q=Clinic%20012" in page.url
    page.fill("#fleet-q", "")
    page.select_option("#fleet-state", "stale")
    page.wait_for_url(re.compile(r"state=stale"))
    page.wait_for_function(
        "[...document.querySelectorAll('#fleet tr[data-org-id]')].every(r => r.dataset.states.includes('stale'))"
    )
    want = sorted(
        fleet_data.org_id(i) for i in range(fleet_data.SIZE) if fleet_data.is_member(i) and i % 10 == 2
    )
    assert _row_ids(page) == want[:50]
    page.click("#fleet a[rel=next]")
    page.wait_for_selector("text=Page 2 of 2")
    assert _row_ids(page) == want[50:100]
    assert not open_page.problems, open_page.problems


@pytest.mark.browser
def test_run_timeline_in_the_browser(site, open_page):
    _, url = site
    fleet_data.build(10)
    run = make_run(fleet_data.org_id(1), "failed", errors=[])
    log = events.RunLog(run.id, run.organization_id)
    for type_, message, data in (
        ("started", "Sync started: comprehensive", {"mode": "comprehensive"}),
        ("step_started", "Syncing reference data", {}),
        (
            "step_finished",
            "Syncing reference data: done (2 businesses, 5 practitioners, 6 appointment types)",
            {},
        ),
        ("step_started", "Processing patients", {}),
        ("retry", "Cliniko answered 503; retry 1 of 4 in 0.4 s", {"status": 503}),
        (
            "wait",
            "Cliniko answered 429 (rate limit): waiting 12 s",
            {"reason": "rate_limited", "seconds": 11.6},
        ),
        (
            "error",
            "Cliniko API unavailable (503 on /v1/patients); gave up after 5 attempts",
            {"error_type": "api_connection_failed", "error_code": "CLINIKO_API_UNAVAILABLE"},
        ),
        ("finished", "Run failed after 42.0 s", {"status": "failed"}),
    ):
        log.record(type_, message, **data)
    log.flush()
    db.session.commit()
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "member@example.com", fleet_data.PASSWORD)
    page.goto(f"/orgs/{run.organization_id}/syncs/{run.sync_id}")
    assert page.locator("#run-timeline li").count() == 8
    assert "CLINIKO_API_UNAVAILABLE" in page.inner_text("#run-timeline")
    screenshot(page, "run-timeline")
    assert not open_page.problems, open_page.problems
