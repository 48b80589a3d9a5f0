"""Browser fixtures: Debian's Chromium driven by Playwright, the app over real HTTP, a worker, a
slow Cliniko simulator, and htmx served from a local copy in place of the CDN."""

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import ROOT, serve_simulator, start_process, stop, subprocess_env

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HTMX_VERSION = "2.0.11"
HTMX_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_COPY = Path(__file__).parent / "vendor" / f"htmx-{HTMX_VERSION}.min.js"
SCREENSHOTS = Path(ROOT) / "docs" / "screenshots"
PASSWORD = "pw-123456"


def chromium_path():
    """Return the Chromium executable, or None when it is not installed."""
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    return found


def _integrity():
    base = (Path(ROOT) / "templates" / "base.html").read_text()
    assert HTMX_URL in base, "base.html must load htmx from the pinned CDN URL"
    return re.search(r'integrity="(sha384-[^"]+)"', base).group(1)


def _npm_pack(cache):
    """Fetch htmx from the npm registry into `cache` (used only when the vendored copy is missing)."""
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "pack", f"htmx.org@{HTMX_VERSION}", "--silent"], cwd=cache, check=True, timeout=120
    )
    with tarfile.open(cache / f"htmx.org-{HTMX_VERSION}.tgz") as tar:
        return tar.extractfile("package/dist/htmx.min.js").read()


@pytest.fixture(scope="session")
def htmx_js():
    """The exact htmx file the CDN serves, checked against base.html's integrity hash."""
    body = (
        HTMX_COPY.read_bytes()
        if HTMX_COPY.exists()
        else _npm_pack(Path(tempfile.gettempdir()) / "routiq-htmx")
    )
    digest = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
    assert digest == _integrity(), "the local htmx copy does not match base.html's integrity hash"
    return body


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (skipped when missing, failing under REQUIRE_BROWSER=1)."""
    path = chromium_path()
    if path is None:
        reason = f"Chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium`"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def browser_sim():
    """A Cliniko simulator for a whole module (its latency is set per test)."""
    yield from serve_simulator()


@pytest.fixture(scope="module")
def browser_worker(base_config, browser_sim, migrated):
    """One RQ worker process for a module, pointed at the module's simulator."""
    env = subprocess_env(base_config, CLINIKO_BASE_URL=browser_sim.base_url)
    proc = start_process(["-m", "workers.worker"], env)
    yield proc
    stop(proc)


class PathOnlyHandler(WSGIRequestHandler):
    """Log requests like gunicorn.conf.py does: the path without its query string."""

    def log_request(self, code="-", size="-"):
        logging.getLogger("routiq_admin.web.access").info(
            '"%s %s" %s', self.command, self.path.split("?", 1)[0], code
        )


@pytest.fixture
def site(make_app, browser_sim, browser_worker):
    """The app over real HTTP from a thread, wired to the module's simulator and worker."""
    app = make_app(CLINIKO_BASE_URL=browser_sim.base_url)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=PathOnlyHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    browser_sim.simulator.latency_ms = 0
    with app.app_context():
        yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class PageProblems(list):
    """Console errors and uncaught exceptions a page produced."""


@pytest.fixture
def open_page(browser, htmx_js):
    """Return a factory of pages that load htmx from the local copy and record console errors."""
    contexts, problems = [], PageProblems()

    def factory(base_url, **context_options):
        context = browser.new_context(base_url=base_url, **context_options)
        contexts.append(context)

        def serve_htmx(route):
            route.fulfill(
                status=200,
                body=htmx_js,
                headers={"Content-Type": "application/javascript", "Access-Control-Allow-Origin": "*"},
            )

        # Later routes win: everything off this machine is refused, except the CDN's htmx.
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
        context.route(HTMX_URL, serve_htmx)
        page = context.new_page()
        page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
        return page

    factory.problems = problems
    yield factory
    for context in contexts:
        context.close()


def sign_in(page, email, password=PASSWORD):
    """Log in through the form and land on the organizations page."""
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def screenshot(page, name):
    """Save a PNG under docs/screenshots/ (refreshed when ROUTIQ_SCREENSHOTS=1 or missing)."""
    path = SCREENSHOTS / f"{name}.png"
    if os.environ.get("ROUTIQ_SCREENSHOTS") == "1" or not path.exists():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
    return path
