"""LOG_FORMAT=json over real processes: gunicorn and an RQ worker write one JSON object per line,
every line of a sync carries its sync_id, and no line holds a key, token, password or patient data."""

import json
import re

import requests

from routiq_admin.cliniko.simulator import Simulator, SimulatorServer
from tests.conftest import start_process, stop, subprocess_env, wait_for
from tests.factories import make_org, make_token, make_user
from tests.ops.conftest import gunicorn
from tests.web.helpers import csrf_from

GOOD_KEY = "MS0xLWxpdmUtY2xpbmlrby1zZWNyZXQ-au1"
REVOKED_KEY = "MS0xLXJldm9rZWQtY2xpbmlrby1rZXk-au1"
PASSWORD, WRONG_PASSWORD = "correct-horse-battery-9", "wrong-password-4711"
PATIENT = {"first_name": "Zebulon", "last_name": "Quixotica", "email": "zebulon.quixotica@example.com"}


def _lines(path):
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return lines, parsed


def _finish(web, token, sync_id):
    def done():
        body = requests.get(f"{web}/api/v1/sync/progress/{sync_id}", headers=token, timeout=10).json()
        return body["status"] in ("completed", "failed", "cancelled") and body["status"]

    return wait_for(done, timeout=120, interval=0.2, message=sync_id)


def test_json_logs_name_each_sync_and_hold_no_secret_or_patient(make_app, base_config, tmp_path):
    web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
    with SimulatorServer(Simulator(patients=150, appointments=20, keys=[GOOD_KEY])) as sim:
        sim.simulator.account(GOOD_KEY).add_patient(**PATIENT)
        with make_app().app_context():
            make_org("org_a", api_key=GOOD_KEY), make_org("org_b", api_key=REVOKED_KEY)
            make_user("ops@example.com", PASSWORD, superuser=True)
            _, api_token = make_token(all_orgs=True)
        env = {"LOG_FORMAT": "json", "CLINIKO_BASE_URL": sim.base_url}
        with worker_log.open("w") as wlog, web_log.open("w") as log:
            worker = start_process(
                ["-m", "workers.worker"], subprocess_env(base_config, **env), stdout=wlog, stderr=wlog
            )
            try:
                with gunicorn(base_config, log=log, **env) as web:
                    bearer = {"Authorization": f"Bearer {api_token}"}
                    started = requests.post(
                        f"{web}/api/v1/cliniko/sync/org_a?mode=patients-only", headers=bearer, timeout=10
                    )
                    good = started.json()["sync_id"]
                    assert _finish(web, bearer, good) == "completed"
                    bad = requests.post(
                        f"{web}/api/v1/cliniko/sync/org_b?mode=patients-only", headers=bearer, timeout=10
                    )
                    assert _finish(web, bearer, bad.json()["sync_id"]) == "failed"
                    assert (
                        requests.get(
                            f"{web}/api/v1/organizations",
                            headers={"Authorization": "Bearer nope-123"},
                            timeout=10,
                        ).status_code
                        == 401
                    )

                    browser = requests.Session()
                    form = {
                        "email": "ops@example.com",
                        "csrf_token": csrf_from(browser.get(f"{web}/login", timeout=10).text),
                    }
                    browser.post(f"{web}/login", data={**form, "password": WRONG_PASSWORD}, timeout=10)
                    assert (
                        browser.post(
                            f"{web}/login",
                            data={**form, "password": PASSWORD},
                            timeout=10,
                            allow_redirects=False,
                        ).status_code
                        == 302
                    )
                    found = browser.get(
                        f"{web}/orgs/org_a/patients", params={"q": PATIENT["last_name"]}, timeout=10
                    )
                    # emails are cut into unbreakable pieces that wrap at '@' and '.' (issue 15 item 14)
                    shown = re.sub(r"<[^>]+>", "", found.text)
                    assert PATIENT["email"] in shown and found.headers["X-Request-ID"]
            finally:
                stop(worker)

    web_lines, web_json = _lines(web_log)
    worker_lines, worker_json = _lines(worker_log)
    # Every line of the sync names it: the worker's, its work horse's and RQ's own.
    named = [line for line in worker_json if line.get("sync_id") == good]
    assert {line["logger"] for line in named} >= {"rq.worker", "routiq_admin.sync.engine"}
    for line in worker_json:
        if good in line["event"] or line["logger"].startswith("routiq_admin.sync"):
            assert "sync_id" in line and "organization_id" in line, line
    assert all(line["job_id"] == good for line in named if line["logger"] == "routiq_admin.sync.engine")
    start_line = next(
        line for line in web_json if good in line["event"] and line["logger"] != "gunicorn.access"
    )
    assert start_line["sync_id"] == good and start_line["organization_id"] == "org_a"
    assert re.fullmatch(r"[0-9a-f]{32}", start_line["request_id"])
    assert any(line["logger"] == "gunicorn.access" for line in web_json)
    # Nothing secret and no patient data, in any line of any process.
    text = "\n".join(web_lines + worker_lines)
    for secret in (GOOD_KEY, REVOKED_KEY, api_token, "nope-123", PASSWORD, WRONG_PASSWORD, *PATIENT.values()):
        assert secret not in text, secret
    for secret in (base_config["ENCRYPTION_KEY"], base_config["SECRET_KEY"]):
        assert secret not in text
