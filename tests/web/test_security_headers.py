"""Security headers on every response, no-store on authenticated ones, and pages the CSP
leaves whole in Chromium."""

import re
from pathlib import Path

import pytest

from routiq_admin.security import HTMX_URL
from tests.conftest import ROOT
from tests.factories import login, make_org, make_run, make_token, make_user
from tests.web.conftest import sign_in
from tests.web.helpers import HX
from tests.web.test_browser import _seed_pages

BASE = Path(ROOT) / "templates" / "base.html"


def _csp(response):
    return dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))


def test_csp_allows_the_htmx_url_base_html_loads():
    assert f'<script src="{HTMX_URL}"' in BASE.read_text()


def test_every_response_carries_the_security_headers(client):
    org = make_org()
    make_user(org=org, role="viewer")
    for response in (client.get("/login"), client.get("/static/css/app.css"), client.get("/api/v1/nope")):
        csp = _csp(response)
        assert csp["script-src"] == f"'self' {HTMX_URL}"
        assert csp["frame-ancestors"] == "'none'" and csp["style-src"] == "'self'"
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in response.headers


def test_hsts_in_production_only(make_app, base_config):
    app = make_app(APP_ENV="production", TRUSTED_PROXIES=0)
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_authenticated_pages_fragments_and_json_are_no_store(client):
    org = make_org()
    make_user(org=org, role="viewer")
    run = make_run(org.id, "running")
    _, clear = make_token(org)
    login(client)
    responses = {
        "page": client.get(f"/orgs/{org.id}/patients"),
        "fragment": client.get(f"/orgs/{org.id}/syncs/{run.sync_id}/progress", headers=HX),
        "org page": client.get(f"/orgs/{org.id}"),
        "json": client.get(f"/api/v1/cliniko/status/{org.id}", headers={"Authorization": f"Bearer {clear}"}),
    }
    for name, response in responses.items():
        assert response.status_code == 200, name
        assert response.headers["Cache-Control"] == "no-store", name


def test_templates_hold_no_inline_script_or_style():
    for path in (Path(ROOT) / "templates").rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<style|style=|<script(?![^>]*\bsrc=)|\bon[a-z]+=", text), path
        assert not re.search(r"hx-trigger=\"[^\"]*\[", text), f"{path}: trigger filters need eval"


CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.mark.browser
def test_no_page_type_breaks_the_csp_in_chromium(site, open_page):
    _, url = site
    org = make_org(name="Harbour Physio")
    make_user(org=org, role="admin")
    make_user("boss@example.com", superuser=True)
    running = _seed_pages(org)
    page = open_page(url, viewport={"width": 1280, "height": 900})
    page.add_init_script(CSP_WATCH)
    messages = []
    page.on("console", lambda msg: messages.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and messages.append(f"{r.status} {r.url}"))
    violations = []

    def visit(path, wait_ms=300):
        page.goto(path)
        page.wait_for_load_state("load")
        page.wait_for_timeout(wait_ms)
        violations.extend(f"{path}: {v}" for v in page.evaluate("window.__csp"))

    visit("/login")
    sign_in(page, "boss@example.com")
    visit("/")
    visit(f"/orgs/{org.id}", wait_ms=2500)  # the progress panel polls every second
    assert page.locator("#sync-panel .progress-fill").count() == 1
    width = page.evaluate("getComputedStyle(document.querySelector('#sync-panel .progress-fill')).width")
    assert width != "0px" and not width.startswith("100%"), width  # the pct- class sizes the bar
    visit(f"/orgs/{org.id}/syncs/{running.sync_id}", wait_ms=1500)
    visit(f"/orgs/{org.id}/patients")
    page.fill("#patient-q", "Charlotte1")
    page.wait_for_timeout(800)  # htmx swaps the table in
    violations.extend(f"patients search: {v}" for v in page.evaluate("window.__csp"))
    visit(f"/orgs/{org.id}/appointments")
    visit(f"/orgs/{org.id}/settings")
    visit("/admin/orgs/new")
    visit("/api/docs")
    csp_console = [m for m in messages if "Content Security Policy" in m or "Refused to" in m]
    assert violations == [] and csp_console == [], (violations, csp_console)
    styled = page.evaluate("getComputedStyle(document.querySelector('header')).borderBottomStyle")
    assert styled == "solid", "the API docs stylesheet did not load"
    assert open_page.problems == [], (open_page.problems, messages)
