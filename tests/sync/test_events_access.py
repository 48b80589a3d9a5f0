"""The log per run through the API (checked against the OpenAPI document) and the run page's timeline:
tenant isolation, roles, anonymous callers, tokens on pages."""

from types import SimpleNamespace

import pytest

from routiq_admin.extensions import db
from routiq_admin.sync import events
from tests.api.conftest import CheckedClient
from tests.factories import login, make_org, make_run, make_token, make_user
from tests.web.helpers import HX


@pytest.fixture
def two(app):
    a, b = make_org("org_a", "Clinic A"), make_org("org_b", "Clinic B")
    run_a = make_run(a.id, "completed")
    log = events.RunLog(run_a.id, a.id)
    log.record("started", "Sync started: comprehensive", mode="comprehensive")
    log.record("retry", "Cliniko answered 503; retry 1 of 4 in 0.4 s", status=503, attempt=1)
    log.record("finished", "Run completed after 60.0 s", status="completed")
    log.flush()
    db.session.commit()
    run_b = make_run(b.id, "running")
    _, token_a = make_token(a, name="a")
    _, token_b = make_token(b, name="b")
    _, token_all = make_token(all_orgs=True, name="all")
    return SimpleNamespace(
        a=a, b=b, run_a=run_a, run_b=run_b, token_a=token_a, token_b=token_b, token_all=token_all
    )


def test_events_endpoint_returns_the_log_in_order(app, two):
    api = CheckedClient(app.test_client())
    for token in (two.token_a, two.token_all):
        body = api.get(f"/api/v1/sync/runs/{two.run_a.sync_id}/events", token=token).get_json()
        assert body["sync_id"] == two.run_a.sync_id and body["organization_id"] == "org_a"
        assert [e["type"] for e in body["events"]] == ["started", "retry", "finished"]
        assert body["events"][1]["data"] == {"status": 503, "attempt": 1}
        assert body["events"][0]["at"].endswith("Z") and set(body["events"][0]) == {
            "seq",
            "at",
            "type",
            "message",
            "data",
        }
    empty = api.get(f"/api/v1/sync/runs/{two.run_b.sync_id}/events", token=two.token_b).get_json()
    assert empty["events"] == []


def test_events_endpoint_keeps_tenants_apart(app, two):
    api = CheckedClient(app.test_client())
    path = f"/api/v1/sync/runs/{two.run_a.sync_id}/events"
    assert api.get(path).status_code == 401
    assert api.get(path, token="rtq_wrong").status_code == 401
    other = api.get(path, token=two.token_b)
    assert other.status_code == 404 and "Cliniko answered" not in other.get_data(as_text=True)
    assert api.get(path, token=two.token_a, org="org_b").status_code == 403
    assert api.get(path, token=two.token_all, org="org_b").status_code == 404
    assert api.get("/api/v1/sync/runs/sync_nope/events", token=two.token_a).status_code == 404
    # a person's session: a viewer of A reads A's log, not B's
    make_user("viewer@example.com", org=two.a, role="viewer")
    login(api.client, "viewer@example.com")
    assert api.get(path).status_code == 200
    assert api.get(f"/api/v1/sync/runs/{two.run_b.sync_id}/events").status_code == 404


def test_run_page_shows_the_timeline_and_polls_it_only_while_running(client, two):
    make_user("ops@example.com", org=two.a, role="viewer")
    make_user("b@example.com", org=two.b, role="viewer")
    login(client, "ops@example.com")
    html = client.get(f"/orgs/org_a/syncs/{two.run_a.sync_id}").get_data(as_text=True)
    assert 'id="run-timeline"' in html and "Cliniko answered 503; retry 1 of 4" in html
    assert html.index("Sync started") < html.index("Run completed")
    fragment = client.get(f"/orgs/org_a/syncs/{two.run_a.sync_id}/timeline", headers=HX).get_data(
        as_text=True
    )
    assert fragment.lstrip().startswith('<section id="run-timeline"') and "every 2s" not in fragment
    assert client.get(f"/orgs/org_a/syncs/{two.run_a.sync_id}/timeline").status_code == 302
    # another organization's run: refused whether named under its own org or under ours
    assert client.get(f"/orgs/org_b/syncs/{two.run_b.sync_id}/timeline", headers=HX).status_code == 403
    assert client.get(f"/orgs/org_a/syncs/{two.run_b.sync_id}/timeline", headers=HX).status_code == 404
    client.post("/logout")
    login(client, "b@example.com")
    running = client.get(f"/orgs/org_b/syncs/{two.run_b.sync_id}/timeline", headers=HX).get_data(as_text=True)
    assert "every 2s" in running and "Nothing recorded yet." in running


def test_timeline_refuses_anonymous_and_tokens(client, two):
    path = f"/orgs/org_a/syncs/{two.run_a.sync_id}/timeline"
    assert client.get(path, headers=HX).status_code in (401, 302)
    page = client.get(f"/orgs/org_a/syncs/{two.run_a.sync_id}")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    with_token = client.get(path, headers={**HX, "Authorization": f"Bearer {two.token_a}"})
    assert with_token.status_code in (401, 302) and "Cliniko answered" not in with_token.get_data(
        as_text=True
    )
