"""Per-clinic schedules: interval, cron, quiet window, DST in Australia/Sydney (frozen clock), the
spread of starts over ticks, the daily full pass, auto-pause and retry backoff."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from routiq_admin.extensions import db
from routiq_admin.models import Organization, SyncRun, utcnow
from routiq_admin.sync import cadence
from routiq_admin.sync.cadence import Schedule, cron_error, next_full, next_run, preview, record_outcome
from routiq_admin.sync.engine import error_entry
from routiq_admin.sync.runs import cleanup_stale, start_sync
from routiq_admin.sync.tick import tick
from tests.factories import make_org, make_run

SYDNEY = ZoneInfo("Australia/Sydney")


def sched(every=60, cron=None, quiet=None, weekdays=False, full_at="02:30", zone="Australia/Sydney"):
    start, end = quiet or (None, None)
    return Schedule(
        every_minutes=every,
        cron=cron,
        quiet_start=cadence.parse_hhmm(start) if start else None,
        quiet_end=cadence.parse_hhmm(end) if end else None,
        quiet_weekdays_only=weekdays,
        full_at=cadence.parse_hhmm(full_at),
        zone=zone,
    )


def syd(*args, fold=0):
    return datetime(*args, tzinfo=SYDNEY, fold=fold).astimezone(UTC)


def local(moment):
    return moment.astimezone(SYDNEY)


def test_interval_runs_every_n_minutes():
    after = syd(2026, 3, 2, 9, 0)
    assert next_run(sched(every=30), after) == after + timedelta(minutes=30)
    runs = preview(sched(every=45), after)
    assert [b - a for a, b in zip([after, *runs], runs, strict=False)] == [timedelta(minutes=45)] * 5


def test_cron_runs_in_the_clinic_zone():
    runs = preview(sched(cron="0 */6 * * *"), syd(2026, 3, 2, 7, 0))  # a Monday, AEDT
    assert [(local(t).day, local(t).hour, local(t).minute) for t in runs] == [
        (2, 12, 0),
        (2, 18, 0),
        (3, 0, 0),
        (3, 6, 0),
        (3, 12, 0),
    ]
    london = preview(sched(cron="0 9 * * 1-5", zone="Europe/London"), datetime(2026, 3, 6, 12, tzinfo=UTC))
    assert [t.astimezone(ZoneInfo("Europe/London")).strftime("%a %H:%M") for t in london] == [
        "Mon 09:00",
        "Tue 09:00",
        "Wed 09:00",
        "Thu 09:00",
        "Fri 09:00",
    ]


def test_quiet_window_moves_runs_to_its_end():
    weekday_quiet = sched(every=60, quiet=("08:00", "18:00"), weekdays=True)
    monday = syd(2026, 3, 2, 7, 30)
    assert local(next_run(weekday_quiet, monday)).time() == time(18, 0)
    saturday = syd(2026, 3, 7, 7, 30)
    assert local(next_run(weekday_quiet, saturday)).time() == time(8, 30)  # weekdays only
    overnight = sched(every=60, quiet=("22:00", "06:00"))
    assert local(next_run(overnight, syd(2026, 3, 2, 21, 30))) == syd(2026, 3, 3, 6, 0).astimezone(SYDNEY)
    assert local(next_run(overnight, syd(2026, 3, 3, 1, 0))).time() == time(6, 0)
    # cron runs inside the window are skipped, not moved
    hourly = sched(cron="0 * * * *", quiet=("08:00", "18:00"))
    runs = preview(hourly, syd(2026, 3, 2, 6, 30))
    assert [local(t).hour for t in runs] == [7, 18, 19, 20, 21]
    with pytest.raises(ValueError):
        next_run(sched(cron="0 12 * * *", quiet=("08:00", "18:00")), monday)


def test_dst_april_fall_back_runs_once_not_twice():
    # 2026-04-05 03:00 AEDT → 02:00 AEST: 02:00–03:00 happens twice.
    daily = sched(cron="30 2 * * *")
    runs = preview(daily, syd(2026, 4, 4, 12, 0), count=3)
    assert [str(local(t)) for t in runs] == [
        "2026-04-05 02:30:00+11:00",  # the first 02:30 only
        "2026-04-06 02:30:00+10:00",
        "2026-04-07 02:30:00+10:00",
    ]
    hourly = preview(sched(cron="0 * * * *"), syd(2026, 4, 4, 23, 30), count=6)
    walls = [local(t).strftime("%H:%M") for t in hourly]
    assert walls == ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]  # each wall hour once
    assert len(set(hourly)) == 6
    # an interval stays exact in real time through the change
    every = preview(sched(every=60), syd(2026, 4, 5, 1, 0), count=4)
    assert [(b - a) for a, b in zip(every, every[1:], strict=False)] == [timedelta(hours=1)] * 3
    assert str(local(next_full(daily, syd(2026, 4, 4, 12, 0)))) == "2026-04-05 02:30:00+11:00"


def test_dst_october_spring_forward_is_not_skipped():
    # 2026-10-04 02:00 AEST → 03:00 AEDT: 02:30 does not exist that night.
    daily = sched(cron="30 2 * * *")
    runs = preview(daily, syd(2026, 10, 3, 12, 0), count=3)
    assert [str(local(t)) for t in runs] == [
        "2026-10-04 03:30:00+11:00",  # right after the gap, once
        "2026-10-05 02:30:00+11:00",
        "2026-10-06 02:30:00+11:00",
    ]
    hourly = preview(sched(cron="0 * * * *"), syd(2026, 10, 3, 23, 30), count=5)
    assert [local(t).strftime("%H:%M") for t in hourly] == ["00:00", "01:00", "03:00", "04:00", "05:00"]
    assert len(set(hourly)) == 5
    assert str(local(next_full(daily, syd(2026, 10, 3, 12, 0)))) == "2026-10-04 03:30:00+11:00"


def test_cron_validation_says_what_is_wrong():
    assert cron_error("0 */2 * * *") is None
    assert "five fields" in cron_error("0 2 * *")
    assert "not a valid" in cron_error("61 * * * *")
    assert "1 min apart" in cron_error("* * * * *")
    assert "five fields" in cron_error("")


# -- the tick ------------------------------------------------------------------------------


def finish_all(status="completed"):
    db.session.execute(
        update(SyncRun)
        .where(SyncRun.status.in_(("starting", "running")))
        .values(status=status, completed_at=utcnow())
    )
    db.session.commit()


def scheduled_runs(org_id=None):
    db.session.rollback()
    stmt = select(SyncRun).where(SyncRun.trigger == "scheduled").order_by(SyncRun.id)
    if org_id:
        stmt = stmt.where(SyncRun.organization_id == org_id)
    return db.session.execute(stmt).scalars().all()


def reload_org(org_id):
    db.session.rollback()
    return db.session.get(Organization, org_id, populate_existing=True)


def test_tick_starts_due_orgs_and_advances_next_run(app):
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a frozen clock, far from the 02:30 full pass
    make_org("org_new", api_key="k-new-au1", schedule_every_minutes=30)  # never scheduled: due now
    make_org("org_later", api_key="k-later-au1", next_run_at=now + timedelta(minutes=45))
    make_org("org_paused", api_key="k-p-au1", next_run_at=now - timedelta(minutes=5), paused_at=now)
    summary = tick(now)
    assert [r.organization_id for r in scheduled_runs()] == ["org_new"]
    assert len(summary["started"]) == 1
    assert reload_org("org_new").next_run_at == now + timedelta(minutes=30)
    finish_all()
    assert tick(now + timedelta(minutes=29))["started"] == []  # not due yet
    started = tick(now + timedelta(minutes=31))["started"]
    assert [r.organization_id for r in scheduled_runs() if r.sync_id in started] == ["org_new"]
    assert scheduled_runs("org_paused") == []


def test_tick_uses_the_cron_in_the_clinic_zone(app):
    now = syd(2026, 3, 2, 7, 10)
    make_org("org_cron", api_key="k-c-au1", schedule_cron="0 9 * * *", time_zone="Australia/Sydney")
    tick(now)
    assert len(scheduled_runs("org_cron")) == 1
    assert str(local(reload_org("org_cron").next_run_at)) == "2026-03-02 09:00:00+11:00"


@pytest.mark.parametrize(
    ("start", "expect"),
    [
        ((2026, 4, 4, 23, 0), ["2026-04-05 02:30:00+11:00"]),  # April: clocks back at 03:00
        ((2026, 10, 3, 23, 0), ["2026-10-04 03:30:00+11:00"]),  # October: clocks forward at 02:00
    ],
)
def test_tick_through_a_dst_night_starts_the_daily_run_once(app, start, expect):
    make_org("org_dst", api_key="k-d-au1", schedule_cron="30 2 * * *", time_zone="Australia/Sydney")
    db.session.execute(update(Organization).values(next_run_at=syd(*start) + timedelta(hours=3, minutes=30)))
    db.session.commit()
    org = reload_org("org_dst")
    cadence.reschedule(org, syd(*start))
    db.session.commit()
    moment = syd(*start)
    started_at = []
    while moment < syd(*start) + timedelta(hours=8):  # a tick every 10 minutes across the night
        if tick(moment)["started"]:
            started_at.append(str(local(moment)))
        finish_all()
        moment += timedelta(minutes=10)
    # the tick that first sees the run due is the one at (or just after) the wall time
    assert [s[:16] for s in started_at] == [e[:16] for e in expect]


def test_two_hundred_due_orgs_start_at_most_fifty_per_tick_oldest_first(app):
    now = utcnow()
    db.session.add_all(
        Organization(id=f"org_{i:03d}", name=f"Clinic {i}", next_run_at=now - timedelta(minutes=200 - i))
        for i in range(200)
    )
    db.session.commit()
    for org in db.session.execute(select(Organization)).scalars():
        org.set_api_key(f"key-{org.id}-au1")
    db.session.commit()
    per_tick = []
    for n in range(4):
        started = tick(now + timedelta(seconds=60 * n))["started"]
        per_tick.append(len(started))
        if n == 0:
            first = sorted(r.organization_id for r in scheduled_runs())
            assert first == [f"org_{i:03d}" for i in range(50)]  # the oldest due first
    assert per_tick == [50, 50, 50, 50]
    counts = db.session.execute(
        select(SyncRun.organization_id, func.count()).group_by(SyncRun.organization_id)
    ).all()
    assert len(counts) == 200 and {c for _, c in counts} == {1}  # every one started, none twice
    assert tick(now + timedelta(minutes=5))["started"] == []


def test_daily_full_pass_at_the_clinic_time(app):
    now = syd(2026, 3, 2, 2, 31)
    make_org(
        "org_full", api_key="k-f-au1", time_zone="Australia/Sydney", next_run_at=now + timedelta(hours=1)
    )
    make_run("org_full", "completed", age=timedelta(hours=3))
    make_org("org_first", api_key="k-g-au1", time_zone="Australia/Sydney")
    make_org("org_late", api_key="k-l-au1", time_zone="Australia/Sydney", full_sync_at="04:00")
    make_run("org_late", "completed", age=timedelta(hours=3))
    for org_id in ("org_full", "org_late"):
        org = reload_org(org_id)
        org.next_full_at = cadence.next_full(cadence.schedule_of(org), now - timedelta(hours=1))
        org.next_run_at = now + timedelta(hours=1)
        db.session.commit()
    tick(now)
    runs = {r.organization_id: r for r in scheduled_runs() if r.status == "starting"}
    assert runs["org_full"].full is True  # due at 02:30 although its regular run is an hour away
    assert runs["org_first"].full is False  # a first sync reads everything anyway
    assert "org_late" not in runs  # its pass is at 04:00
    assert str(local(reload_org("org_full").next_full_at)) == "2026-03-03 02:30:00+11:00"


# -- auto-pause and retry backoff ------------------------------------------------------------


def failed_run(org_id, trigger="scheduled", error_type="api_connection_failed"):
    code = "CLINIKO_UNAUTHORIZED" if error_type == "invalid_credentials" else "CLINIKO_API_UNAVAILABLE"
    return make_run(
        org_id, "failed", trigger=trigger, errors=[error_entry(error_type, code, "Cliniko answered 503")]
    )


def test_five_scheduled_failures_pause_with_a_short_backoff_between(app):
    make_org("org_flaky", api_key="k-x-au1", next_run_at=utcnow() + timedelta(hours=1))
    outcomes, delays = [], []
    for _ in range(5):
        now = utcnow()
        # the tick that started the run moved next_run_at to the regular next run
        db.session.execute(update(Organization).values(next_run_at=now + timedelta(hours=1)))
        db.session.commit()
        outcomes.append(record_outcome(failed_run("org_flaky"), now))
        org = reload_org("org_flaky")
        delays.append(round((org.next_run_at - now).total_seconds() / 60))
    assert outcomes == ["failed"] * 4 + ["paused"]
    assert delays[:4] == [0, 5, 10, 20]  # the next tick, then a short backoff (never past the regular run)
    org = reload_org("org_flaky")
    assert org.consecutive_failures == 5 and org.paused_at is not None
    assert (
        "5 scheduled runs failed in a row" in org.paused_reason
        and "api_connection_failed" in org.paused_reason
    )
    org.next_run_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    assert tick()["started"] == []  # paused: no scheduled start
    # a manual start still works, and its success resumes
    run = start_sync(reload_org("org_flaky"), "basic", "manual")
    run.status = "completed"
    db.session.commit()
    assert record_outcome(run) == "resumed"
    org = reload_org("org_flaky")
    assert org.paused_at is None and org.paused_reason is None and org.consecutive_failures == 0


def test_invalid_credentials_pause_at_once_and_manual_failures_do_not_count(app):
    make_org("org_key", api_key="k-y-au1")
    assert record_outcome(failed_run("org_key", trigger="manual")) == "failed"
    assert reload_org("org_key").consecutive_failures == 0
    assert (
        record_outcome(failed_run("org_key", trigger="manual", error_type="invalid_credentials")) == "paused"
    )
    assert "invalid_credentials" in reload_org("org_key").paused_reason
    make_org("org_ok", api_key="k-z-au1")
    record_outcome(failed_run("org_ok"))
    assert record_outcome(make_run("org_ok", "completed")) == "recovered"
    assert record_outcome(make_run("org_ok", "completed")) is None
    assert record_outcome(make_run("org_ok", "cancelled")) is None


def test_a_stale_scheduled_run_counts_as_a_failure(app):
    make_org("org_stale", api_key="k-s-au1")
    make_run("org_stale", "running", age=timedelta(hours=1))
    assert len(cleanup_stale()) == 1
    assert reload_org("org_stale").consecutive_failures == 1


def test_resume_clears_the_pause_and_the_next_tick_starts_it(app):
    make_org("org_p", api_key="k-r-au1", paused_at=utcnow(), paused_reason="x", consecutive_failures=5)
    assert tick()["started"] == []
    org = reload_org("org_p")
    cadence.resume(org)
    db.session.commit()
    assert len(tick()["started"]) == 1
