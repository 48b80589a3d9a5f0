"""Issue 15 in Chromium: htmx errors shown where the person acted, network toasts, the patients
search racing its pager, and the layout points (run page at 1280 px, emails, logout, login)."""

import re
import threading

import pytest
from werkzeug.serving import make_server

from routiq_admin import create_app
from routiq_admin.errors import AppError
from routiq_admin.extensions import db
from routiq_admin.handlers import handle_app_error
from routiq_admin.models import Patient
from routiq_admin.sync.runs import active_run
from tests.conftest import wait_for
from tests.factories import make_org, make_run, make_user
from tests.web.conftest import SCREENSHOTS, screenshot, sign_in
from tests.web.helpers import HX

ERRORS = [
    ("database_error", "The database is unavailable", "Database error"),
    ("queue_unavailable", "The job queue (Redis) is unavailable; nothing was started", "Queue unavailable"),
    ("sync_already_running", "A sync is already running for org_test", "Sync already running"),
    ("rate_limit_exceeded", "Too many requests", "Rate limit exceeded"),
    ("internal_error", "Internal server error", "Internal error"),
]


def _error_response(app, error_type, message):
    """What the app itself answers an htmx request with for this error (status, headers, body)."""
    with app.test_request_context("/", headers=HX):
        body, status = handle_app_error(AppError(message, error_type=error_type))
    return status, body


def _idle(org_id):
    db.session.rollback()
    return active_run(org_id) is None


def _org_page(site, open_page):
    app, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="admin")
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}")
    page.wait_for_selector("#sync-panel[data-status=idle]")
    return app, org, page


@pytest.mark.browser
@pytest.mark.parametrize("error_type, message, title", ERRORS)
def test_a_failed_sync_now_shows_its_error_beside_the_button(site, open_page, error_type, message, title):
    app, org, page = _org_page(site, open_page)
    status, body = _error_response(app, error_type, message)
    assert status in (409, 429, 500, 503)

    def answer(route):
        if route.request.method == "POST":
            route.fulfill(status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8"})
        else:
            route.continue_()

    page.route(f"**/orgs/{org.id}/syncs", answer)
    page.click("#sync-now")
    alert = page.locator("form.controls .htmx-error[role=alert]")
    alert.wait_for()
    text = alert.inner_text()
    assert title in text and message in text, text
    assert len(alert.locator(".hint").inner_text().strip()) > 10, "says what to do"
    if error_type == "queue_unavailable":
        screenshot(page, "sync-now-error")
    assert page.locator("form.controls .htmx-error").count() == 1
    page.click("#sync-now")  # a second failure replaces the message, it does not stack
    page.wait_for_timeout(300)
    assert page.locator("form.controls .htmx-error").count() == 1
    page.unroute(f"**/orgs/{org.id}/syncs")
    page.click("#sync-now")  # success clears it
    page.wait_for_selector("#sync-panel:not([data-status=idle])")
    page.wait_for_selector("form.controls .htmx-error", state="detached")
    # the real sync it started finishes before the tables are emptied (else its writes and the
    # teardown's TRUNCATE deadlock on PostgreSQL)
    wait_for(lambda: _idle(org.id), timeout=60, message="the started sync to finish")


@pytest.mark.browser
def test_a_request_that_never_reaches_the_server_raises_a_toast(site, open_page):
    _, org, page = _org_page(site, open_page)
    page.route(f"**/orgs/{org.id}/syncs", lambda route: route.abort("connectionrefused"))
    page.click("#sync-now")
    toast = page.locator("#toasts .toast[role=alert]")
    toast.wait_for()
    assert "Could not reach Routiq Admin" in toast.inner_text()
    toast.locator("button").click()
    assert page.locator("#toasts .toast").count() == 0


@pytest.fixture
def file_site(base_config, tmp_path):
    """The app on its own SQLite file over real HTTP, so a test can take the database away."""
    path = tmp_path / "instance" / "routiq.db"
    path.parent.mkdir()
    app = create_app(
        {**base_config, "INSTANCE_PATH": str(path.parent), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"}
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with app.app_context():
        db.create_all()
        yield app, f"http://127.0.0.1:{server.server_port}", path
        db.engine.dispose()
    server.shutdown()
    server.server_close()


@pytest.mark.browser
def test_sync_now_with_the_database_gone_says_so_beside_the_button(file_site, open_page):
    app, url, path = file_site
    page = _org_page((app, url), open_page)[2]
    path.unlink()
    page.click("#sync-now")
    alert = page.locator("form.controls .htmx-error[role=alert]")
    alert.wait_for()
    assert "Database error" in alert.inner_text() and "The database is unavailable" in alert.inner_text()


def _patients(org, names, n):
    db.session.add_all(
        Patient(organization_id=org.id, cliniko_id=f"{name}{i}", first_name=f"{name}{i:02d}", last_name=name)
        for name in names
        for i in range(n)
    )
    db.session.commit()


@pytest.mark.browser
def test_typing_then_next_leaves_url_box_and_table_agreeing(site, open_page):
    app, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="viewer")
    _patients(org, ["Lee", "Ng"], 40)  # 80 patients: 4 pages; "lee" alone: 40, 2 pages
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}/patients")
    requests = []
    page.on(
        "request", lambda r: "/patients" in r.url and r.headers.get("hx-request") and requests.append(r.url)
    )
    page.fill("#patient-q", "lee")
    page.click("#patients-table a[rel=next]")  # before the search's 300 ms delay ends
    page.wait_for_load_state("networkidle")
    page.wait_for_selector(".htmx-request", state="detached")
    page.wait_for_timeout(500)  # let a trailing delayed request land, if any
    page.wait_for_load_state("networkidle")
    shown_url = page.url
    assert "q=lee" in shown_url, shown_url
    assert page.input_value("#patient-q") == "lee"
    html = page.inner_html("#patients-table")
    label = re.search(r"Page (\d+) of (\d+)", html)
    expected_page = re.search(r"[?&]page=(\d+)", shown_url)
    assert label and label.group(2) == "2", html[:300]
    assert label.group(1) == (expected_page.group(1) if expected_page else "1"), (shown_url, label.group(0))
    assert "Ng" not in page.inner_text("#patients-table tbody")
    assert len(requests) <= 2, requests  # the link, then at most the search's own request


@pytest.mark.browser
def test_next_carries_the_search_and_the_address_follows_the_response(site, open_page):
    _, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="viewer")
    _patients(org, ["Lee", "Ng"], 40)
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}/patients?q=lee")
    page.click("#patients-table a[rel=next]")
    page.wait_for_selector("#patients-table >> text=Page 2 of 2")
    assert re.search(r"q=lee", page.url) and re.search(r"page=2", page.url), page.url
    page.goto(f"/orgs/{org.id}/patients?q=lee&page=99")
    assert "Page 2 of 2" in page.inner_text("#patients-table")


# Where a line of an element's text wraps: the characters after which the next one sits lower.
WRAPS = """el => {
  const text = el.textContent, breaks = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  let node, last = null, seen = "";
  while ((node = walker.nextNode())) {
    for (let i = 0; i < node.length; i++) {
      const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
      const box = r.getBoundingClientRect();
      if (box.width === 0) { seen += node.data[i]; continue; }
      if (last !== null && box.top > last + 2) breaks.push(seen);
      last = box.top; seen += node.data[i];
    }
  }
  return breaks;
}"""

LONG_EMAIL = "margaret.oconnor-abernethy@harbourphysiotherapy.example.com"


@pytest.mark.browser
def test_run_page_per_entity_table_fits_at_1280_and_emails_wrap_between_words(site, open_page):
    _, url = site
    org = make_org(name="Harbour Physio")
    make_user(LONG_EMAIL, org=org, role="admin")
    make_user(org=org, role="viewer")
    counts = {"fetched": 123456, "created": 120000, "updated": 3456, "unchanged": 0, "failed": 12}
    run = make_run(
        org.id,
        "completed",
        trigger="manual",
        triggered_by_label=LONG_EMAIL,
        entity_counts={e: counts for e in ("businesses", "practitioners", "appointment_types", "patients")},
    )
    db.session.add_all(
        Patient(
            organization_id=org.id, cliniko_id=str(i), first_name="Ann", last_name="Lee", email=LONG_EMAIL
        )
        for i in range(3)
    )
    db.session.commit()
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, LONG_EMAIL)
    page.goto(f"/orgs/{org.id}/syncs/{run.sync_id}")
    wrap = page.locator("table.counts").locator("xpath=..")
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), "the Per entity table is cut off"
    last = page.locator("table.counts thead th").last
    assert last.is_visible() and last.inner_text().strip() == "failed"
    for path, selector in (
        (f"/orgs/{org.id}/syncs/{run.sync_id}", "#run-details dd"),
        (f"/orgs/{org.id}/patients", "#patients-table .email"),
        (f"/orgs/{org.id}/settings", "table.members .email"),
        (f"/orgs/{org.id}/syncs", "#history td[data-label=Trigger]"),
    ):
        page.goto(path)
        for el in page.locator(selector).element_handles():
            for before in el.evaluate(WRAPS):
                assert before.endswith(("@", " ", ",")) or el.evaluate(
                    "(el, n) => el.textContent[n] === '.'", len(before)
                ), f"{path}: an email wraps mid-word after {before!r}"


@pytest.mark.browser
def test_logout_says_so_and_login_redirects_carry_no_trailing_question_mark(site, open_page):
    _, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="viewer")
    page = open_page(url, viewport={"width": 1280, "height": 900})
    page.goto(f"/orgs/{org.id}")
    assert page.url.endswith("/login?next=/orgs/org_test"), page.url
    page.goto(f"/orgs/{org.id}/patients?q=x")
    assert page.url.endswith("/login?next=/orgs/org_test/patients?q%3Dx"), page.url
    sign_in(page, "staff@example.com")
    page.click("text=Log out")
    page.wait_for_url(re.compile(r"/login$"))
    assert "You are logged out." in page.inner_text(".flash")


@pytest.mark.browser
def test_members_table_when_you_are_alone_or_not_a_member(site, open_page):
    _, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="admin")
    make_user("boss@example.com", superuser=True)
    page = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(page, "staff@example.com")
    page.goto(f"/orgs/{org.id}/settings")
    assert "You are the only member" in page.inner_text("#members-title >> xpath=..")
    assert page.locator("table.members tbody tr").count() == 1
    other = make_org("org_empty", name="Empty Clinic")
    boss = open_page(url, viewport={"width": 1280, "height": 900})
    sign_in(boss, "boss@example.com")
    boss.goto(f"/orgs/{other.id}/settings")
    section = boss.inner_text("#members-title >> xpath=..")
    assert "Nobody is a member" in section and boss.locator("table.members").count() == 0


@pytest.mark.browser
def test_api_docs_render_markdown_and_follow_the_dark_theme(site, open_page):
    _, url = site
    for scheme, background in (("light", "rgb(255, 255, 255)"), ("dark", "rgb(15, 20, 26)")):
        page = open_page(url, color_scheme=scheme, viewport={"width": 1280, "height": 900})
        page.goto("/api/docs")
        text = page.inner_text("main")
        assert "**" not in text and "`" not in text, "raw Markdown on the page"
        assert page.locator("main code").count() > 10 and page.locator("main .intro p").count() >= 1
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background, scheme
        if scheme == "dark":
            page.set_viewport_size({"width": 1280, "height": 1200})
            page.screenshot(path=str(SCREENSHOTS / "api-docs-dark.png"))
