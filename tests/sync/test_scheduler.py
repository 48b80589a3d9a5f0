"""The periodic tick: idempotent registration, heartbeat, fan-out, stale cleanup, activity job.

Schedules, pause and the daily full pass: tests/sync/test_schedules.py.
"""

from datetime import timedelta

import pytest
from rq_scheduler import Scheduler
from sqlalchemy import select

from routiq_admin.extensions import db, get_queue
from routiq_admin.models import Appointment, Patient, SyncRun, utcnow
from routiq_admin.sync.schedule import (
    HEARTBEAT_KEY,
    TICK_FUNC,
    TICK_JOB_ID,
    beat,
    register,
    scheduler_active,
    unregister,
)
from routiq_admin.sync.tick import ACTIVITY_JOB_ID, refresh_idle_activity, tick
from tests.conftest import start_process, stop, subprocess_env, wait_for
from tests.factories import make_org, make_run

INTERVAL = timedelta(minutes=60)


@pytest.fixture
def scheduler(app, redis_conn):
    return Scheduler(queue_name=app.config["RQ_QUEUE"], connection=redis_conn)


def tick_jobs(scheduler):
    return [job for job in scheduler.get_jobs() if job.func_name == TICK_FUNC]


def test_registering_twice_gives_one_periodic_job(scheduler):
    first = register(scheduler, 60)
    second = register(scheduler, 60)
    (job,) = tick_jobs(scheduler)
    assert job.id == first.id == second.id == TICK_JOB_ID
    assert job.meta["interval"] == 3600
    assert len(list(scheduler.get_jobs())) == 1
    # a new interval replaces the registration, it does not add one
    register(scheduler, 15)
    (job,) = tick_jobs(scheduler)
    assert job.meta["interval"] == 900


def test_stale_tick_registrations_are_cancelled(scheduler):
    scheduler.schedule(scheduled_time=utcnow(), func=TICK_FUNC, interval=600, id="old-tick-id")
    register(scheduler, 60)
    assert [job.id for job in tick_jobs(scheduler)] == [TICK_JOB_ID]


def test_scheduler_active_needs_registration_and_a_recent_heartbeat(scheduler, redis_conn):
    assert scheduler_active() is False
    register(scheduler, 60)
    assert scheduler_active() is False  # registered, but no scheduler process seen
    beat(redis_conn, 30)
    assert scheduler_active() is True
    assert 0 < redis_conn.ttl(HEARTBEAT_KEY) <= 60
    redis_conn.delete(HEARTBEAT_KEY)
    assert scheduler_active() is False
    beat(redis_conn, 30)
    scheduler.cancel(TICK_JOB_ID)
    assert scheduler_active() is False  # seen, but nothing registered


def test_a_disabled_scheduler_drops_the_tick_but_keeps_notification_retries(
    app, base_config, scheduler, redis_conn
):
    from routiq_admin.notify.delivery import DELIVER_FUNC

    register(scheduler, 60)
    retry = scheduler.enqueue_in(timedelta(minutes=5), DELIVER_FUNC, 123)
    unregister(scheduler)
    assert tick_jobs(scheduler) == [] and [job.id for job in scheduler.get_jobs()] == [retry.id]
    # and so does the scheduler process started with ENABLE_SYNC_SCHEDULER=false
    register(scheduler, 60)
    env = subprocess_env(base_config, SCHEDULER_POLL_SECONDS=1, ENABLE_SYNC_SCHEDULER="false")
    proc = start_process(["-m", "workers.scheduler"], env)
    try:
        wait_for(lambda: redis_conn.exists(HEARTBEAT_KEY), timeout=20, message="the scheduler to start")
        wait_for(lambda: not tick_jobs(scheduler), timeout=20, message="the tick to be dropped")
    finally:
        stop(proc)
    assert [job.id for job in scheduler.get_jobs()] == [retry.id]


def test_scheduler_process_registers_once_across_restarts(app, base_config, scheduler, redis_conn):
    env = subprocess_env(base_config, SCHEDULER_POLL_SECONDS=1, SYNC_INTERVAL_MINUTES=60)
    for _ in range(2):
        proc = start_process(["-m", "workers.scheduler"], env)
        try:
            wait_for(
                lambda: scheduler_active(), timeout=20, message="the scheduler process to register and beat"
            )
            assert [job.id for job in tick_jobs(scheduler)] == [TICK_JOB_ID]
        finally:
            stop(proc)
        redis_conn.delete(HEARTBEAT_KEY)
    assert [job.id for job in tick_jobs(scheduler)] == [TICK_JOB_ID]
    assert scheduler_active() is False


def new_runs(org_id):
    db.session.rollback()
    return (
        db.session.execute(
            select(SyncRun).where(SyncRun.organization_id == org_id, SyncRun.status == "starting")
        )
        .scalars()
        .all()
    )


def test_tick_fans_out_to_every_eligible_org_and_skips_the_rest(app):
    eligible = [make_org("org_a", api_key="key-a-au1"), make_org("org_e", api_key="key-e-au1")]
    busy = make_org("org_busy", api_key="key-b-au1")
    running = make_run(busy.id, "running", trigger="manual", age=timedelta(0))
    make_org("org_disabled", api_key="key-c-au1", sync_enabled=False)
    make_org("org_keyless", api_key=None)

    summary = tick()

    started = {org.id: new_runs(org.id) for org in eligible}
    for org_id, runs in started.items():
        assert len(runs) == 1, org_id
        (run,) = runs
        assert (run.trigger, run.mode, run.kind, run.full) == ("scheduled", "comprehensive", "sync", False)
        assert run.sync_id in summary["started"]
    assert len(summary["started"]) == 2
    assert ("org_busy", "running") in summary["skipped"]
    db.session.rollback()
    assert db.session.get(SyncRun, running.id).status == "running"
    assert new_runs("org_disabled") == [] and new_runs("org_keyless") == []
    others = db.session.execute(
        select(SyncRun.organization_id).where(SyncRun.organization_id.in_(["org_disabled", "org_keyless"]))
    ).all()
    assert others == []
    queued = [job_id for job_id in get_queue().job_ids if job_id != ACTIVITY_JOB_ID]
    assert sorted(queued) == sorted(run.job_id for runs in started.values() for run in runs)
    # a second tick starts nothing: the started ones are not due again yet, the busy one still runs
    again = tick()
    assert again["started"] == []
    assert {org_id for org_id, why in again["skipped"] if why == "running"} == {"org_busy"}


def test_tick_cleans_stale_runs_then_restarts_the_org(app):
    org = make_org("org_stale", api_key="key-s-au1")
    stale = make_run(org.id, "running", age=timedelta(hours=1))
    summary = tick()
    assert summary["cleaned"] == 1
    db.session.rollback()
    assert db.session.get(SyncRun, stale.id).status == "failed"
    assert len(new_runs(org.id)) == 1


def test_tick_leaves_activity_to_its_own_job(app, redis_conn):
    org = make_org("org_off", api_key=None, sync_enabled=False)
    db.session.add(Patient(organization_id=org.id, cliniko_id="1", activity_status="inactive"))
    db.session.add(
        Appointment(
            organization_id=org.id, cliniko_id="9", patient_cliniko_id="1", starts_at=utcnow() + INTERVAL
        )
    )
    db.session.commit()
    first, second = tick(), tick()
    assert first["activity_refresh"] is True and second["activity_refresh"] is False  # at most one per period
    assert ACTIVITY_JOB_ID in get_queue().job_ids
    db.session.rollback()
    patient = db.session.execute(select(Patient).where(Patient.organization_id == org.id)).scalar_one()
    assert patient.activity_status == "inactive"  # the tick itself did not touch it
    assert refresh_idle_activity() == 1
    db.session.rollback()
    patient = db.session.execute(select(Patient).where(Patient.organization_id == org.id)).scalar_one()
    assert patient.activity_status == "upcoming_only" and patient.upcoming_appointment_count == 1
