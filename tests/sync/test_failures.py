"""Failures end a run `failed` with the right error type, keep committed data, and leave no orphans."""

import pytest
from sqlalchemy import func, select

from routiq_admin import devredis
from routiq_admin.cliniko import client as client_module
from routiq_admin.cliniko.errors import CredentialsNotFound
from routiq_admin.errors import QueueUnavailable, ValidationError
from routiq_admin.extensions import db, get_queue
from routiq_admin.models import (
    Appointment,
    AppointmentType,
    Business,
    Organization,
    Patient,
    Practitioner,
    SyncRun,
)
from routiq_admin.sync.runs import active_run, start_sync
from routiq_admin.sync.status import sync_status
from tests.factories import make_org

from .conftest import KEY, ORG_ID, count, mark, requests, run_inline, synced_at


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the client's 4 retries but make their backoff milliseconds long."""
    monkeypatch.setattr(client_module, "MAX_BACKOFF_SECONDS", 0.01)


def reference_intact(account):
    for model, resource in (
        (Business, "businesses"),
        (Practitioner, "practitioners"),
        (AppointmentType, "appointment_types"),
    ):
        assert count(model) == account.count(resource), resource


@pytest.mark.parametrize("fault", ["malformed_json", "wrong_shape"])
def test_bad_page_fails_invalid_data_format_and_keeps_earlier_pages(org, account, sim, fault):
    sim.inject(fault, count=1, path="/patients", after=1)  # page 1 is fine, a later one is not
    run = run_inline(org, "comprehensive")
    assert run.status == "failed"
    error = run.errors[-1]
    assert error["error_type"] == "invalid_data_format"
    assert error["error_code"] == "CLINIKO_INVALID_DATA"
    assert error["entity"] == "patients"
    assert error["message"]
    reference_intact(account)
    stored = count(Patient)
    assert 100 <= stored < account.count("patients")
    assert stored == run.entity_counts["patients"]["created"]
    assert count(Appointment) == 0
    assert mark("patients") is None
    assert run.completed_at is not None and run.progress_percentage < 100
    assert active_run(ORG_ID) is None


def test_bad_page_in_a_later_run_deletes_nothing(org, account, sim):
    assert run_inline(org, "comprehensive").status == "completed"
    before = {"patients": synced_at(Patient), "appointments": synced_at(Appointment)}
    marks = (mark("patients"), mark("appointments"))
    sim.inject("malformed_json", count=1, path="/individual_appointments", after=1)
    run = run_inline(org, "comprehensive", full=True)
    assert run.status == "failed"
    assert run.errors[-1]["error_type"] == "invalid_data_format"
    assert run.errors[-1]["entity"] == "appointments"
    assert {"patients": synced_at(Patient), "appointments": synced_at(Appointment)} == before
    assert (mark("patients"), mark("appointments")) == marks


@pytest.mark.parametrize("outage", ["server_stopped", "persistent_5xx"])
def test_cliniko_down_fails_api_connection_failed(org, account, sim, sim_server, fast_retries, outage):
    if outage == "server_stopped":
        sim_server.stop()
    else:
        sim.inject("server_error", count=None, path="/patients")
    run = run_inline(org, "comprehensive")
    assert run.status == "failed"
    error = run.errors[-1]
    assert error["error_type"] == "api_connection_failed"
    assert error["error_code"] == "CLINIKO_API_UNAVAILABLE"
    assert "gave up after 5 attempts" in error["message"]
    if outage == "persistent_5xx":
        assert "Cliniko API unavailable" in error["message"]
        assert error["entity"] == "patients"
        reference_intact(account)
        patient_reqs = [r for r in requests(sim) if r.path == "/patients"]
        assert [r.status for r in patient_reqs] == [500] * 5  # retried, then gave up
    else:
        assert "Unable to connect" in error["message"]
    assert count(Patient) == 0
    assert active_run(ORG_ID) is None
    db.session.rollback()
    # a connection failure says nothing about the key
    assert db.session.get(Organization, ORG_ID).credentials_valid is None


def test_invalid_key_fails_invalid_credentials_and_marks_the_org(org, sim):
    sim.revoke_key(KEY)
    run = run_inline(org, "comprehensive")
    assert run.status == "failed"
    error = run.errors[-1]
    assert (error["error_type"], error["error_code"]) == ("invalid_credentials", "CLINIKO_UNAUTHORIZED")
    db.session.rollback()
    org = db.session.get(Organization, ORG_ID)
    assert org.credentials_valid is False and org.credentials_checked_at is not None
    assert sync_status(org) == "failing"
    assert count(Patient) == count(Business) == 0


def test_successful_run_marks_credentials_valid(org):
    assert org.credentials_valid is None
    assert run_inline(org, "patients-only").status == "completed"
    db.session.rollback()
    assert db.session.get(Organization, ORG_ID).credentials_valid is True


def test_redis_down_at_trigger_is_queue_unavailable_and_leaves_no_row(make_app, sim_server):
    down = make_app(
        REDIS_URL=f"redis://127.0.0.1:{devredis.free_port()}/0", CLINIKO_BASE_URL=sim_server.base_url
    )
    with down.app_context():
        org = make_org(ORG_ID, api_key=KEY)
        with pytest.raises(QueueUnavailable) as info:
            start_sync(org, "comprehensive", "api")
        assert info.value.error_type == "queue_unavailable" and info.value.http_status == 503
        db.session.rollback()
        assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar() == 0
        assert active_run(ORG_ID) is None
    # the slot is free for the next trigger once Redis is back
    up = make_app(CLINIKO_BASE_URL=sim_server.base_url)
    with up.app_context():
        run = start_sync(db.session.get(Organization, ORG_ID), "comprehensive", "api")
        assert run.status == "starting"
        assert get_queue().job_ids == [run.job_id]


def test_no_key_and_unknown_mode_start_nothing(sync_app):
    keyless = make_org("org_keyless", api_key=None)
    with pytest.raises(CredentialsNotFound):
        start_sync(keyless, "comprehensive", "manual")
    org = make_org(ORG_ID, api_key=KEY)
    with pytest.raises(ValidationError):
        start_sync(org, "everything", "manual")
    assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar() == 0
    assert get_queue().count == 0
