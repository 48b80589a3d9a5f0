"""The periodic tick: idempotent registration, heartbeat, fan-out, backoff, the daily full pass."""

from datetime import timedelta

import pytest
from rq_scheduler import Scheduler
from sqlalchemy import select

from routiq_admin.extensions import db, get_queue
from routiq_admin.models import Appointment, Patient, SyncRun, utcnow
from routiq_admin.sync.schedule import HEARTBEAT_KEY, TICK_FUNC, TICK_JOB_ID, beat, register, scheduler_active
from routiq_admin.sync.tick import MAX_BACKOFF_TICKS, backing_off, needs_full_pass, tick
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
    assert sorted(get_queue().job_ids) == sorted(run.job_id for runs in started.values() for run in runs)
    # a second tick finds them all busy and starts nothing
    again = tick()
    assert again["started"] == []
    assert {org_id for org_id, why in again["skipped"] if why == "running"} == {"org_a", "org_e", "org_busy"}


def test_tick_cleans_stale_runs_then_restarts_the_org(app):
    org = make_org("org_stale", api_key="key-s-au1")
    stale = make_run(org.id, "running", age=timedelta(hours=1))
    summary = tick()
    assert summary["cleaned"] == 1
    db.session.rollback()
    assert db.session.get(SyncRun, stale.id).status == "failed"
    assert len(new_runs(org.id)) == 1


def test_tick_refreshes_activity_for_every_org(app):
    org = make_org("org_off", api_key=None, sync_enabled=False)
    db.session.add(Patient(organization_id=org.id, cliniko_id="1", activity_status="inactive"))
    db.session.add(
        Appointment(
            organization_id=org.id, cliniko_id="9", patient_cliniko_id="1", starts_at=utcnow() + INTERVAL
        )
    )
    db.session.commit()
    tick()
    db.session.rollback()
    patient = db.session.execute(select(Patient).where(Patient.organization_id == org.id)).scalar_one()
    assert patient.activity_status == "upcoming_only" and patient.upcoming_appointment_count == 1


def test_backoff_after_repeated_scheduled_failures(app):
    org = make_org("org_flaky", api_key="key-f-au1")
    make_run(org.id, "failed", age=timedelta(minutes=5))
    assert backing_off(org.id, INTERVAL) is False  # one failure: the next tick retries
    make_run(org.id, "failed", age=timedelta(minutes=1))
    assert backing_off(org.id, INTERVAL) is True
    summary = tick()
    assert summary["started"] == [] and (org.id, "backoff") in summary["skipped"]
    # manual failures do not count, a scheduled success resets the streak
    other = make_org("org_recovered", api_key="key-r-au1")
    make_run(other.id, "failed", age=timedelta(minutes=30))
    make_run(other.id, "failed", age=timedelta(minutes=20))
    make_run(other.id, "completed", age=timedelta(minutes=10))
    make_run(other.id, "failed", age=timedelta(minutes=5), trigger="manual")
    assert backing_off(other.id, INTERVAL) is False


@pytest.mark.parametrize(
    ("failures", "last_age_intervals", "skipped"),
    [
        (2, 1, True),  # two failures: skip one tick
        (2, 2, False),
        (4, 7, True),  # four failures: skip 8 ticks
        (4, 8, False),
        (MAX_BACKOFF_TICKS + 2, MAX_BACKOFF_TICKS - 1, True),  # capped
        (MAX_BACKOFF_TICKS + 2, MAX_BACKOFF_TICKS, False),
    ],
)
def test_backoff_grows_and_is_capped(app, failures, last_age_intervals, skipped):
    org = make_org("org_backoff", api_key="key-x-au1")
    for k in range(failures, 0, -1):
        make_run(org.id, "failed", age=INTERVAL * (last_age_intervals + k - 1))
    assert backing_off(org.id, INTERVAL) is skipped


def test_daily_full_pass(app):
    make_org("org_never", api_key="key-n-au1")
    incremental_only = make_org("org_incr", api_key="key-i-au1")
    make_run(incremental_only.id, "completed", age=timedelta(hours=2))
    fresh_full = make_org("org_fresh", api_key="key-h-au1")
    make_run(fresh_full.id, "completed", age=timedelta(hours=1), full=True)
    old_full = make_org("org_old", api_key="key-o-au1")
    make_run(old_full.id, "completed", age=timedelta(hours=25), full=True)
    make_run(old_full.id, "completed", age=timedelta(hours=1))
    basic_full = make_org("org_basic", api_key="key-k-au1")
    make_run(basic_full.id, "completed", age=timedelta(hours=1), full=True, mode="basic")

    assert needs_full_pass(fresh_full.id) is False
    assert needs_full_pass(old_full.id) is True
    tick()
    full = {
        org_id: new_runs(org_id)[0].full
        for org_id in ("org_never", "org_incr", "org_fresh", "org_old", "org_basic")
    }
    assert full == {
        "org_never": False,  # a first sync reads everything anyway
        "org_incr": True,
        "org_fresh": False,
        "org_old": True,
        "org_basic": True,  # only a full comprehensive pass reconciles everything
    }
