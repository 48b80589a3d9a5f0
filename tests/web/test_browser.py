"""The dashboard in real headless Chromium: live progress, keyboard, cancel, narrow and dark
screens, and the guide's JavaScript examples run on our origin."""

import json
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Business, Patient, SyncRun, utcnow
from tests.factories import make_org, make_run, make_token, make_user
from tests.specs import SYNC_GUIDE, require_spec
from tests.web.conftest import screenshot, sign_in

GUIDE_COPY = Path(__file__).parent / "guide_examples.js"
FINISHED = ("completed", "failed", "cancelled")


def _operator_org(role="admin", **fields):
    org = make_org(name="Harbour Physio", **fields)
    make_user(org=org, role=role)
    return org


def _watch_panel(page, until=FINISHED, timeout=60, on_sample=None):
    """Sample the panel every 100 ms; return (aria-valuenow values, final status)."""
    values, status, deadline = [], None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = page.get_attribute("#sync-panel", "data-status")
        value = page.get_attribute("#sync-panel [role=progressbar]", "aria-valuenow")
        if value is not None:
            values.append(float(value))
        if on_sample:
            on_sample(status, values)
        if status in until:
            return values, status
        page.wait_for_timeout(100)
    pytest.fail(f"the panel did not reach {until} (last status {status}, values {values})")


def _no_horizontal_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.browser
def test_sync_now_shows_live_progress_until_done(site, browser_sim, open_page):
    _, url = site
    org = _operator_org()
    browser_sim.simulator.latency_ms = 1000
    page = open_page(url, viewport={"width": 1280, "height": 900})
    page.goto("/login")
    screenshot(page, "login")
    sign_in(page, "staff@example.com")
    page.click("text=Harbour Physio")
    page.wait_for_selector("#sync-panel[data-status=idle]")
    page.evaluate("window.__sameDocument = true")
    page.click("#sync-now")
    shots = set()

    def shoot(status, values):
        if status == "running" and values and 20 < values[-1] < 90 and "running" not in shots:
            shots.add("running")
            screenshot(page, "organization-sync-running")

    values, status = _watch_panel(page, on_sample=shoot)
    assert status == "completed" and values[-1] == 100.0
    between = sorted({v for v in values if 0 < v < 100})
    assert len(between) >= 3, f"the bar took too few values: {values}"
    assert values == sorted(values), "progress never goes down"
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    assert page.locator("#sync-panel [hx-trigger^='every']").count() == 0
    assert page.get_attribute("#sync-panel", "hx-trigger") is None or "every" not in page.get_attribute(
        "#sync-panel", "hx-trigger"
    )
    run = db.session.execute(db.select(SyncRun)).scalar_one()
    page.wait_for_selector(f'#history tr[data-sync-id="{run.sync_id}"] .status-completed')
    page.wait_for_selector("#org-summary >> text=651")  # freshness refreshed with the run
    assert page.locator("#sync-announcer").inner_text() == "Sync completed."
    screenshot(page, "organization")
    page.click(f'#history tr[data-sync-id="{run.sync_id}"] a')
    page.wait_for_selector("#run-details")
    screenshot(page, "sync-run")
    page.goto(f"/orgs/{org.id}/patients")
    page.fill("#patient-q", "smi")
    page.wait_for_function("document.querySelector('#patients-title').textContent.includes('found')")
    page.wait_for_url(re.compile(r"q=smi"))
    screenshot(page, "patients")
    page.goto(f"/orgs/{org.id}/appointments")
    screenshot(page, "appointments")
    page.goto("/")
    screenshot(page, "organizations")
    assert not open_page.problems, open_page.problems


@pytest.mark.browser
def test_keyboard_start_then_cancel_a_slow_run(site, browser_sim, open_page):
    _, url = site
    org = _operator_org(role="operator")
    browser_sim.simulator.latency_ms = 1500
    page = open_page(url)
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}")
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "sync-now":
            break
    else:
        pytest.fail("Tab never reached the Sync now button")
    page.keyboard.press("Enter")
    _watch_panel(page, until=("running",), timeout=30)
    page.wait_for_selector("#sync-panel-cancel")
    page.focus("#sync-panel-cancel")
    page.keyboard.press("Enter")
    values, status = _watch_panel(page, timeout=30)
    assert status == "cancelled" and values[-1] < 100
    assert page.locator("#sync-panel .status-word").inner_text() == "cancelled"
    run = db.session.execute(db.select(SyncRun)).scalar_one()
    db.session.refresh(run)
    assert run.status == "cancelled" and run.trigger == "manual"
    page.wait_for_selector(f'#history tr[data-sync-id="{run.sync_id}"] .status-cancelled')
    assert not open_page.problems, open_page.problems


def _seed_pages(org):
    now = utcnow()
    db.session.add(
        Business(
            organization_id=org.id,
            cliniko_id="b1",
            business_name="Harbour",
            time_zone_identifier="Australia/Sydney",
        )
    )
    for i in range(30):
        db.session.add(
            Patient(
                organization_id=org.id,
                cliniko_id=str(i),
                first_name=f"Charlotte{i}",
                last_name="Papadopoulos-Fernández",
                email=f"charlotte.papadopoulos{i}@example.com",
                activity_status="active" if i % 3 else "inactive",
                recent_appointment_count=i % 4,
                upcoming_appointment_count=1,
                total_appointment_count=i,
                last_appointment_at=now - timedelta(days=3),
                next_appointment_at=now + timedelta(days=4),
            )
        )
        db.session.add(
            Appointment(
                organization_id=org.id,
                cliniko_id=f"a{i}",
                patient_cliniko_id=str(i),
                business_cliniko_id="b1",
                starts_at=now + timedelta(hours=5 * i),
                cancelled_at=now if i % 7 == 0 else None,
            )
        )
    db.session.commit()
    for i in range(12):
        make_run(
            org.id,
            ("completed", "failed", "cancelled")[i % 3],
            age=timedelta(minutes=60 * i + 5),
            duration=30 + 10 * i,
            records_processed=900 + i,
            trigger=("manual", "scheduled", "api")[i % 3],
        )
    return make_run(
        org.id,
        "running",
        progress_percentage=61.5,
        records_processed=580,
        records_total=947,
        current_operation="Syncing patient appointments",
        cliniko_requests=12,
        estimated_completion=utcnow() + timedelta(seconds=40),
    )


@pytest.mark.browser
def test_narrow_screen_and_dark_theme(site, open_page):
    _, url = site
    org = _operator_org()
    make_user("boss@example.com", superuser=True)
    running = _seed_pages(org)
    page = open_page(url, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(page, "staff@example.com")
    paths = [
        "/",
        f"/orgs/{org.id}",
        f"/orgs/{org.id}/patients",
        f"/orgs/{org.id}/appointments",
        f"/orgs/{org.id}/syncs",
        f"/orgs/{org.id}/syncs/{running.sync_id}",
        f"/orgs/{org.id}/settings",
    ]
    for path in paths:
        page.goto(path)
        assert _no_horizontal_scroll(page), f"{path} scrolls sideways at 375 px"
    page.goto(f"/orgs/{org.id}")
    screenshot(page, "mobile-organization")
    page.goto(f"/orgs/{org.id}/settings")
    screenshot(page, "settings")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    dark_page = open_page(url, color_scheme="dark", viewport={"width": 1280, "height": 900})
    sign_in(dark_page, "boss@example.com")
    dark_page.goto(f"/orgs/{org.id}")
    dark = dark_page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(247, 248, 250)" and dark == "rgb(15, 20, 26)"
    assert (
        dark_page.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
        == "rgb(23, 29, 37)"
    )
    screenshot(dark_page, "organization-dark")
    dark_page.goto("/admin/orgs/new")
    assert _no_horizontal_scroll(dark_page)
    # The run is still "running" (no worker owns it): the panel polls until we finish it here.
    dark_page.goto(f"/orgs/{org.id}")
    assert dark_page.get_attribute("#sync-panel", "hx-trigger") == "every 1s"
    running.status, running.completed_at, running.progress_percentage = "failed", utcnow(), 61.5
    running.errors = [
        {
            "error_type": "api_connection_failed",
            "error_code": "CLINIKO_API_TIMEOUT",
            "message": "Unable to connect to Cliniko API",
        }
    ]
    db.session.commit()
    dark_page.wait_for_selector("#sync-panel[data-status=failed]", timeout=5000)
    assert "every" not in (dark_page.get_attribute("#sync-panel", "hx-trigger") or "")
    assert dark_page.get_attribute("#sync-panel [role=progressbar]", "aria-valuenow") == "61.5"
    assert not open_page.problems, open_page.problems


def test_guide_examples_are_a_verbatim_copy():
    guide = require_spec(SYNC_GUIDE)
    blocks = re.findall(r"```javascript\n(.*?)```", guide.read_text(), re.S)
    wanted = [b for b in blocks if re.search(r"function (monitorSync|safeTriggerSync|checkSyncHealth)\(", b)]
    assert len(wanted) == 3
    copy = GUIDE_COPY.read_text()
    for block in wanted:
        assert block in copy


@pytest.mark.browser
def test_guide_javascript_examples_on_our_origin(site, browser_sim, open_page):
    app, url = site
    org = _operator_org(role="operator")
    _, token = make_token(org, name="guide examples")
    browser_sim.simulator.latency_ms = 200
    page = open_page(url, bypass_csp=True)  # the examples run as an inline script; our CSP forbids those
    logs = []
    page.on("console", lambda msg: logs.append((msg.type, msg.text)))
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}/patients")  # any page of ours; no polling on it
    page.add_script_tag(content=f"var token = {json.dumps(token)};\n{GUIDE_COPY.read_text()}")

    started = page.evaluate("orgId => safeTriggerSync(orgId)", org.id)
    assert started["success"] is True and started["sync_id"].startswith(f"sync_{org.id}_")
    refused = page.evaluate("orgId => safeTriggerSync(orgId).then(() => 'resolved', e => e.message)", org.id)
    assert refused.startswith("HTTP 409"), refused  # not a rate limit: thrown, not retried
    page.evaluate("syncId => monitorSync(syncId)", started["sync_id"])
    progress = [text for kind, text in logs if kind == "log" and text.startswith("Progress: ")]
    assert progress and re.match(r"Progress: [\d.]+% - ", progress[0])
    assert ("log", "Sync completed") in logs

    # Our own API limit answers 429 with the reason phrase safeTriggerSync looks for; it waits
    # 60 s (a fake clock here) and tries again.
    app.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 1
    clocked = open_page(url, bypass_csp=True)
    clocked.clock.install()
    clocked_logs = []
    clocked.on("console", lambda msg: clocked_logs.append((msg.type, msg.text)))
    sign_in(clocked, "staff@example.com")
    clocked.goto(f"/orgs/{org.id}/patients")
    clocked.add_script_tag(content=f"var token = {json.dumps(token)};\n{GUIDE_COPY.read_text()}")
    clocked.evaluate(
        "orgId => { window.retried = safeTriggerSync(orgId).then(r => window.outcome = r); }", org.id
    )
    deadline = time.monotonic() + 10
    while ("error", "Sync failed: HTTP 429: Rate limit exceeded") not in clocked_logs:
        assert time.monotonic() < deadline, clocked_logs
        clocked.wait_for_timeout(50)
    app.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 60
    clocked.clock.run_for(60_000)
    clocked.wait_for_function("window.outcome !== undefined", timeout=10_000)
    again = clocked.evaluate("window.outcome")
    assert again["success"] is True and again["sync_id"] != started["sync_id"]
    page.evaluate("syncId => monitorSync(syncId)", again["sync_id"])  # let the worker finish it

    # checkSyncHealth with the session only: the guide's two alerts.
    for minutes in (10, 20, 30):
        make_run(org.id, "failed", age=timedelta(minutes=minutes))
    for minutes in (300, 400):
        make_run(org.id, "completed", age=timedelta(minutes=minutes), duration=3600)
    logs.clear()
    page.evaluate("orgId => checkSyncHealth(orgId)", org.id)
    warnings = [text for kind, text in logs if kind == "warning"]
    assert "High failure rate: 3 failures in last 24h" in warnings
    assert any(re.match(r"Slow sync performance: [\d.]+s average", w) for w in warnings), warnings
    expected = ("status of 409", "status of 429", "Sync failed: HTTP 4")
    assert all(any(e in p for e in expected) for p in open_page.problems), open_page.problems


@pytest.mark.browser
def test_test_server_access_log_drops_query_strings(site, open_page, caplog):
    _, url = site
    org = _operator_org()
    page = open_page(url)
    sign_in(page, "staff@example.com")
    with caplog.at_level("INFO", logger="routiq_admin.web.access"):
        page.goto(f"/orgs/{org.id}/patients?q=olivia-secret-term")
    assert any("/patients" in r.getMessage() for r in caplog.records)
    assert not any("olivia-secret-term" in r.getMessage() for r in caplog.records)
