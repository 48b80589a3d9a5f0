"""Calling Cliniko through the API needs the operator role, as on the dashboard."""

import pytest

from routiq_admin.auth import CLINIKO_CALL_ROLE
from routiq_admin.extensions import db
from routiq_admin.models import Organization
from tests.factories import login, make_org, make_token, make_user

KEY = "role-test-key-au1"


@pytest.mark.parametrize("role, allowed", [("viewer", False), ("operator", True), ("admin", True)])
def test_test_connection_needs_the_operator_role(sync_app, sim_server, role, allowed):
    sim = sim_server.simulator
    org = make_org("org_role", api_key=KEY)
    make_user(org=org, role=role)
    client = sync_app.test_client()
    login(client)
    sim.reset_stats()
    before = (org.credentials_valid, org.credentials_checked_at, org.cliniko_user_id)
    response = client.get(f"/api/v1/cliniko/test-connection/{org.id}")
    db.session.expire_all()
    stored = db.session.get(Organization, org.id)
    after = (stored.credentials_valid, stored.credentials_checked_at, stored.cliniko_user_id)
    if allowed:
        assert response.status_code == 200 and response.get_json()["success"] is True
        assert len(sim.request_log) == 1 and after != before
    else:
        assert response.status_code == 403
        assert response.get_json()["details"]["error_code"] == "ROLE_REQUIRED"
        assert sim.request_log == [] and after == before


def test_tokens_keep_the_operator_role_the_rule_asks_for(sync_app, sim_server):
    assert CLINIKO_CALL_ROLE == "operator"
    org = make_org("org_role", api_key=KEY)
    _, clear = make_token(org)
    response = sync_app.test_client().get(
        f"/api/v1/cliniko/test-connection/{org.id}", headers={"Authorization": f"Bearer {clear}"}
    )
    assert response.status_code == 200 and len(sim_server.simulator.request_log) == 1
