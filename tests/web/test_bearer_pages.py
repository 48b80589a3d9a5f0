"""API tokens open the JSON API only: every dashboard page refuses a bearer request."""

import re

from routiq_admin.extensions import db
from routiq_admin.models import Patient, utcnow
from tests.factories import make_org, make_run, make_token
from tests.web.helpers import HX

SECRET_NAME = "Zebediah"


def _bearer_setup():
    org = make_org()
    db.session.add(
        Patient(
            organization_id=org.id,
            cliniko_id="9001",
            first_name=SECRET_NAME,
            last_name="Quill",
            email="zebediah@example.com",
            synced_at=utcnow(),
        )
    )
    db.session.commit()
    run = make_run(org.id, "completed")
    _, clear = make_token(all_orgs=True)
    return org, run, {"Authorization": f"Bearer {clear}"}


def _dashboard_get_paths(app, org_id, sync_id):
    """Every GET route outside /api/ and static, its path parameters filled with real ids."""
    values = {"org_id": org_id, "sync_id": sync_id, "token": "not-a-real-invitation"}
    # The queue view's (rq-dashboard's) parameters.
    values.update(instance_number="0", queue_name="routiq-test", registry_name="failed", per_page="8")
    values.update(order="asc", page="1", job_id="no-such-job", filename="css/main.css")
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or rule.rule.startswith("/api/"):
            continue
        yield re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


def test_no_dashboard_route_serves_a_page_to_a_bearer_token(app, client):
    org, run, bearer = _bearer_setup()
    paths = list(_dashboard_get_paths(app, org.id, run.sync_id))
    assert f"/orgs/{org.id}/patients" in paths and len(paths) > 10
    for path in paths:
        for headers in (bearer, {**bearer, **HX}):
            response = client.get(path, headers=headers)
            body = response.get_data(as_text=True)
            served = response.status_code == 200 and "text/html" in response.content_type
            assert not served or path == "/login", (path, headers, response.status_code)
            assert SECRET_NAME not in body, path


def test_patients_and_appointments_refuse_a_bearer_token(client):
    org, _, bearer = _bearer_setup()
    for page in ("patients", "appointments"):
        response = client.get(f"/orgs/{org.id}/{page}", headers=bearer)
        assert response.status_code in (302, 401), page
        assert SECRET_NAME not in response.get_data(as_text=True)


def test_the_same_token_still_reads_the_json_api(client):
    org, _, bearer = _bearer_setup()
    response = client.get(f"/api/v1/cliniko/status/{org.id}", headers=bearer)
    assert response.status_code == 200 and response.get_json()["organization_id"] == org.id
