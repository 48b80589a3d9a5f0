"""End to end over real HTTP: a live server, a real RQ worker process, the Cliniko simulator.

The guide's own `RoutiqSyncClient` (its class text, only base_url changed) and its curl debug
commands run unchanged; our `RoutiqClient` starts, watches, cancels and imports.
"""

import json
import subprocess

import pytest
import requests

from routiq_admin.client import RoutiqClient, RoutiqError
from tests.api.conftest import check_response
from tests.api.guide import CLIENT_SOURCE, CURL_SOURCE

pytestmark = pytest.mark.slow
PROD = "https://routiq-backend-prod.up.railway.app"


def guide_client_class():
    """Execute the guide's client code up to its usage example (which would call production)."""
    namespace = {}
    exec(compile(CLIENT_SOURCE.split("# Usage")[0], "sync-management-guide.md", "exec"), namespace)
    return namespace["RoutiqSyncClient"]


def test_the_guides_python_client_works_unchanged(live_server, worker, orgs):
    client = guide_client_class()(orgs.token_a, "org_a")
    client.base_url = live_server
    result = client.trigger_sync()
    assert (
        result["success"] is True and result["message"] == "Comprehensive Cliniko sync started successfully"
    )
    print(f"Sync started: {result['message']}")
    final = client.wait_for_sync_completion(result["sync_id"], timeout=60)
    assert final["status"] == "completed", final["errors"]
    assert final["progress_percentage"] == 100.0 and final["completed_steps"] == final["total_steps"] == 4
    assert final["records_processed"] > 0 and final["errors"] == []
    status = client.get_sync_status()
    assert status["sync_running"] is False and status["last_sync_time"] == final["completed_at"]
    check_response("GET", "/api/v1/sync/scheduler/status", 200, status)


def test_the_guides_curl_commands_work_unchanged(live_server, orgs):
    env = {"TOKEN": orgs.token_a, "ORG_ID": "org_a", "PATH": "/usr/bin:/bin"}
    for command in CURL_SOURCE.replace(PROD, live_server).strip().split("\n\n"):
        command = command.replace("curl -X", "curl -sS -w '\\n%{http_code}' -X")
        out = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
        body, status = out.stdout.rsplit("\n", 1)
        assert status == "200", (command, out.stdout, out.stderr)
        method = "POST" if "-X POST" in command else "GET"
        path = command.split(live_server, 1)[1].split('"', 1)[0].replace("$ORG_ID", "org_a")
        check_response(method, path, 200, json.loads(body))


def test_routiq_client_starts_watches_and_imports(live_server, worker, orgs, sim_server):
    client = RoutiqClient(live_server, orgs.token_a, "org_a")
    started = client.start_sync("patients-only")
    assert started["sync_mode"] == "patients-only" and started["sync_id"].startswith("sync_org_a_")
    seen = []
    final = client.wait(started["sync_id"], timeout=60, poll_interval=0.2, on_progress=seen.append)
    assert final["status"] == "completed" and seen[-1] is not None and seen[-1]["status"] == "completed"
    percentages = [p["progress_percentage"] for p in seen]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    for body in seen:
        check_response("GET", "/api/v1/sync/progress/x", 200, body)
    run = client.run(started["sync_id"])
    assert run["entity_counts"]["patients"]["created"] == 651 and run["cliniko_requests"] >= 7
    assert run["duration_seconds"] > 0
    imported = client.import_patients()
    final = client.wait_for_sync_completion(imported["import_id"], timeout=60)
    assert final["status"] == "completed" and final["kind"] == "import"
    assert client.run(imported["import_id"])["entity_counts"]["patients"]["unchanged"] == 651
    history = client.history(limit=5)
    assert history["total_syncs"] == history["successful_syncs"] == 2
    assert [s["kind"] for s in history["recent_syncs"]] == ["import", "sync"]
    status = client.cliniko_status()
    live = sum(1 for i in sim_server.simulator.account(orgs.a.api_key).patient_ids(include_archived=False))
    assert (status["total_patients"], status["credentials_valid"], status["sync_status"]) == (
        live,
        True,
        "healthy",
    )


def test_routiq_client_cancels_a_running_sync(live_server, worker, orgs, sim_server):
    sim_server.simulator.latency_ms = 300  # a page every 0.3 s: the run lasts a few seconds
    client = RoutiqClient(live_server, orgs.token_a, "org_a")
    sync_id = client.trigger_manual_sync("patients-only")["sync_id"]
    with pytest.raises(RoutiqError) as conflict:
        client.trigger_sync()
    assert conflict.value.status == 409 and conflict.value.details["sync_id"] == sync_id
    cancelled = []

    def cancel_once(progress):
        # Once: a second cancel can race the run's own end and rightly answer 409.
        if not cancelled and progress["status"] == "running" and progress["records_processed"]:
            cancelled.append(client.cancel(sync_id))

    client.wait(sync_id, timeout=30, poll_interval=0.1, on_progress=cancel_once)
    assert len(cancelled) == 1
    final = client.progress(sync_id)
    assert final["status"] == "cancelled"
    assert 0 < final["records_processed"] < 651  # the pages written before the cancel are kept
    with pytest.raises(RoutiqError) as finished:
        client.cancel(sync_id)
    assert finished.value.status == 409 and finished.value.error_type == "sync_not_active"


def test_progress_is_visible_while_a_run_is_running(live_server, worker, orgs, sim_server):
    sim_server.simulator.latency_ms = 100
    headers = {"Authorization": f"Bearer {orgs.token_a}"}
    sync_id = requests.post(
        f"{live_server}/api/v1/sync/start/org_a?sync_mode=comprehensive", headers=headers, timeout=10
    ).json()["sync_id"]
    statuses = set()
    client = RoutiqClient(live_server, orgs.token_a)
    final = client.wait(
        sync_id,
        timeout=60,
        poll_interval=0.1,
        on_progress=lambda p: statuses.add(
            (p["status"], p["current_step"]) if p["status"] == "running" else p["status"]
        ),
    )
    assert final["status"] == "completed"
    assert ("running", "Processing patients") in statuses
    detail = client.run(sync_id)
    assert set(detail["entity_counts"]) >= {"patients", "appointments"}
    assert (
        detail["metadata"]["patients_processed"] == 651 and detail["metadata"]["appointments_processed"] > 0
    )
