"""The guide's `safeTriggerSync` and `monitorSync`, verbatim, in Chromium on a front end's own origin
(listed in CORS_ORIGINS) calling our API with a Clerk-style session token."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from werkzeug.serving import make_server

from routiq_admin.extensions import db
from routiq_admin.models import ClerkUser, SyncRun
from tests.clerk_issuer import serve_issuer
from tests.factories import make_org
from tests.web.test_browser import GUIDE_COPY

issuer = pytest.fixture(serve_issuer, name="issuer")


class FrontEnd:
    """Another origin serving one page whose relative URLs (the guide's `/api/v1/…`) resolve to our API."""

    def __init__(self):
        self.api_url = None
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                body = (
                    f'<!doctype html><html><head><base href="{front.api_url}/"><title>Front end</title></head>'
                    "<body><p>A Clerk front end</p></body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front_ends():
    """Two front-end origins: the first is listed in CORS_ORIGINS and CLERK_AUTHORIZED_PARTIES."""
    listed, unlisted = FrontEnd(), FrontEnd()
    yield listed, unlisted
    listed.close()
    unlisted.close()


@pytest.fixture
def clerk_site(make_app, browser_sim, browser_worker, issuer, front_ends):
    """Our app over real HTTP, trusting the issuer and allowing the listed front end's origin."""
    listed, unlisted = front_ends
    app = make_app(
        CLINIKO_BASE_URL=browser_sim.base_url,
        CLERK_ISSUER=issuer.url,
        CLERK_AUTHORIZED_PARTIES=[listed.url, unlisted.url],
        CORS_ORIGINS=[listed.url],
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    listed.api_url = unlisted.api_url = f"http://127.0.0.1:{server.server_port}"
    browser_sim.simulator.latency_ms = 0
    with app.app_context():
        yield app
    server.shutdown()
    server.server_close()


@pytest.fixture
def open_front_end(browser):
    """Return a factory of pages on a front end, with the guide's examples and `token` loaded.

    No request routing here: Playwright answers CORS preflights of routed contexts itself, and
    the preflight is what this test is about.
    """
    contexts = []

    def factory(front, token):
        context = browser.new_context(base_url=front.url)
        contexts.append(context)
        page = context.new_page()
        logs = []
        page.on("console", lambda msg: logs.append((msg.type, msg.text)))
        page.on("pageerror", lambda exc: logs.append(("pageerror", str(exc))))
        page.goto("/")
        page.add_script_tag(content=f"var token = {json.dumps(token)};\n{GUIDE_COPY.read_text()}")
        return page, logs

    yield factory
    for context in contexts:
        context.close()


@pytest.mark.browser
def test_guide_examples_from_another_origin_with_a_clerk_token(
    clerk_site, issuer, front_ends, open_front_end
):
    listed, unlisted = front_ends
    org = make_org("org_2xwHiNrj68eaRUlX10anlXGvzX7", "Harbour Physio")
    token = issuer.mint(org.id, "admin", user="user_frontend", azp=listed.url)
    page, logs = open_front_end(listed, token)
    assert page.evaluate("location.origin") == listed.url != listed.api_url

    started = page.evaluate("orgId => safeTriggerSync(orgId)", org.id)
    assert started["success"] is True and started["sync_id"].startswith(f"sync_{org.id}_")
    refused = page.evaluate("orgId => safeTriggerSync(orgId).then(() => 'resolved', e => e.message)", org.id)
    assert refused.startswith("HTTP 409"), refused  # the error is readable across origins
    page.evaluate("syncId => monitorSync(syncId)", started["sync_id"])
    assert any(kind == "log" and text.startswith("Progress: ") for kind, text in logs), logs
    assert ("log", "Sync completed") in logs
    run = db.session.query(SyncRun).filter_by(sync_id=started["sync_id"]).one()
    assert run.triggered_by_label == "clerk:user_frontend" and run.status == "completed"
    assert (
        db.session.query(ClerkUser).filter_by(organization_id=org.id).one().clerk_user_id == "user_frontend"
    )

    # Over the limit, the 429's reason phrase crosses origins: safeTriggerSync takes its retry branch.
    clerk_site.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 1
    page.evaluate("orgId => { window.retrying = safeTriggerSync(orgId); }", org.id)
    deadline = time.monotonic() + 20
    while ("error", "Sync failed: HTTP 429: Rate limit exceeded") not in logs:
        assert time.monotonic() < deadline, logs
        page.wait_for_timeout(50)
    clerk_site.config["API_RATE_LIMIT_WORK_PER_MINUTE"] = 60

    # An origin that is not in CORS_ORIGINS cannot call us, even holding a valid token.
    other, other_logs = open_front_end(unlisted, issuer.mint(org.id, azp=unlisted.url))
    failed = other.evaluate("orgId => safeTriggerSync(orgId).then(() => 'resolved', e => e.message)", org.id)
    assert failed == "Failed to fetch", failed
    # Our preflight answer named no origin for it, so the browser never sent the POST.
    assert db.session.query(SyncRun).filter_by(organization_id=org.id).count() == 1
    assert any("CORS" in text for _, text in other_logs), other_logs
    assert not [entry for entry in logs if entry[0] == "pageerror"], logs
