"""The queue view in Chromium: its own script sends our CSRF token, so its requeue works, under
its CSP (no refused inline script)."""

import threading

import pytest
from werkzeug.serving import make_server

from tests.factories import make_user
from tests.ops.test_rq_dashboard import _failed_job
from tests.web.conftest import sign_in

pytestmark = pytest.mark.browser
REQUEUE = """(id) => new Promise((done) => $.post("/admin/rq/job/" + id + "/requeue")
    .done((body) => done(body.status)).fail((xhr) => done(xhr.status)))"""


def test_the_dashboards_requeue_button_call_passes_csrf(make_app, open_page):
    app = make_app(WTF_CSRF_ENABLED=True)
    with app.app_context():
        make_user("root@example.com", superuser=True)
        job = _failed_job(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = open_page(f"http://127.0.0.1:{server.server_port}")
        sign_in(page, "root@example.com")
        page.click("text=Queue")
        page.wait_for_url("**/admin/rq/")
        page.wait_for_function("window.jQuery !== undefined")
        assert page.evaluate(REQUEUE, job.id) == "OK"
        assert job.get_status(refresh=True) == "queued"
        refused = [p for p in open_page.problems if "Content Security Policy" in p]
        assert refused == []
    finally:
        server.shutdown()
