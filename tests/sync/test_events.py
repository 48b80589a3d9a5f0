"""The log per run: what the engine records, its bound, its pruning, and that it holds no secrets."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from routiq_admin.cliniko import client as client_module
from routiq_admin.extensions import db
from routiq_admin.models import Patient, SyncRunEvent, utcnow
from routiq_admin.sync import events
from routiq_admin.sync.runs import cleanup_stale
from tests.factories import make_org, make_run

from .conftest import KEY, run_inline


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(client_module, "MAX_BACKOFF_SECONDS", 0.01)


def logged(run):
    db.session.rollback()
    return events.for_run(run)


def test_a_run_logs_steps_retries_waits_and_its_end(org, sim, fast_retries):
    sim.inject("server_error", count=1, path="/patients")
    sim.inject("rate_limit", count=1, path="/individual_appointments", reset_seconds=1)
    run = run_inline(org, "comprehensive")
    assert run.status == "completed"
    log = logged(run)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert log[0].type == "started" and log[0].data["mode"] == "comprehensive"
    assert log[-1].type == "finished" and log[-1].data["status"] == "completed"
    steps = [e.data["step"] for e in log if e.type == "step_started"]
    assert steps == [
        "Syncing reference data",
        "Processing patients",
        "Processing appointments",
        "Updating patient activity",
    ]
    finished = {e.data["step"]: e for e in log if e.type == "step_finished"}
    assert set(finished) == set(steps)
    assert finished["Processing patients"].data["counts"]["patients"]["fetched"] == 651
    assert "651 patients" in finished["Processing patients"].message
    (retry,) = [e for e in log if e.type == "retry"]
    assert retry.data["status"] == 500 and retry.data["attempt"] == 1
    assert retry.data["error_type"] == "api_connection_failed" and "Cliniko answered 500" in retry.message
    (wait,) = [e for e in log if e.type == "wait"]
    assert wait.data["reason"] == "rate_limited" and wait.data["seconds"] >= 1 and "429" in wait.message
    assert not [e for e in log if e.type == "error"]


def test_a_failed_run_logs_the_error_with_its_type(org, sim):
    sim.revoke_key(KEY)
    run = run_inline(org, "comprehensive")
    assert run.status == "failed"
    log = logged(run)
    assert [e.type for e in log] == ["started", "step_started", "error", "finished"]
    error = log[2]
    assert (error.data["error_type"], error.data["error_code"]) == (
        "invalid_credentials",
        "CLINIKO_UNAUTHORIZED",
    )
    assert error.message == run.errors[-1]["message"]
    assert log[-1].data["status"] == "failed"


def test_the_log_carries_no_key_and_no_patient_data(org, sim, fast_retries):
    sim.inject("server_error", count=1, path="/individual_appointments")
    run = run_inline(org, "comprehensive")
    text = json.dumps([[e.type, e.message, e.data] for e in logged(run)])
    assert KEY not in text and org.cliniko_key_last4 not in text
    patients = db.session.execute(select(Patient.first_name, Patient.last_name, Patient.email)).all()
    assert len(patients) == 651
    for first, last, email in patients:
        assert f"{first} {last}" not in text
        assert not email or email not in text


def test_the_log_is_bounded_and_keeps_room_for_the_end(app):
    org = make_org()
    run = make_run(org.id, "running")
    log = events.RunLog(run.id, org.id)
    kept = [log.record("wait", f"wait {i}", seconds=1) for i in range(600)]
    assert sum(kept) == events.MAX_EVENTS - events.RESERVED
    assert log.record("error", "it broke", error_type="internal_error")
    assert log.record("finished", "Run failed", status="failed")
    log.flush()
    db.session.commit()
    stored = events.for_run(run)
    assert len(stored) == events.MAX_EVENTS - events.RESERVED + 2 <= events.MAX_EVENTS
    assert [e.type for e in stored[-2:]] == ["error", "finished"] and log.dropped == 105


def _event(run, days_ago, seq):
    db.session.add(
        SyncRunEvent(
            organization_id=run.organization_id,
            run_id=run.id,
            seq=seq,
            at=utcnow() - timedelta(days=days_ago),
            type="started",
            message="Sync started",
            data={},
        )
    )


def test_cleanup_prunes_events_older_than_90_days(app):
    a, b = make_org("org_a", "A"), make_org("org_b", "B")
    old_a = make_run(a.id, "completed", age=timedelta(days=100))
    old_b = make_run(b.id, "completed", age=timedelta(days=100))
    new_a = make_run(a.id, "completed", age=timedelta(days=10))
    for run in (old_a, old_b):
        _event(run, 91, 1)
        _event(run, 89, 2)
    _event(new_a, 10, 1)
    db.session.commit()
    cleanup_stale([a.id])  # the API's cleanup: only the caller's organizations
    assert [e.seq for e in events.for_run(old_a)] == [2]
    assert [e.seq for e in events.for_run(old_b)] == [1, 2]
    cleanup_stale()  # the scheduler's tick: every organization
    assert [e.seq for e in events.for_run(old_b)] == [2]
    assert len(events.for_run(new_a)) == 1


def test_a_run_cleaned_up_as_stale_logs_why(app):
    org = make_org()
    run = make_run(org.id, "running", age=timedelta(hours=2), job_id="cli-gone")
    _event(run, 0, 1)
    db.session.commit()
    assert [r.sync_id for r in cleanup_stale()] == [run.sync_id]
    last = events.for_run(run)[-1]
    assert (last.seq, last.type, last.data["error_code"]) == (2, "error", "SYNC_STALE")
    assert "heartbeat" in last.message
    assert db.session.execute(select(func.count()).select_from(SyncRunEvent)).scalar() == 2
