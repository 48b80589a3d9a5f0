"""Per-clinic schedules and pause state: when runs are due, in the clinic's zone, and what a finished run changes.

Schedule times are computed on the clinic's local wall clock and stored in UTC (`next_run_at`,
`next_full_at`); `record_outcome` is the one place a finished run moves the failure counter and
the pause state.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Business, Organization, utcnow

MIN_EVERY, MAX_EVERY = 15, 24 * 60
DEFAULT_FULL_AT = "02:30"
# A cron schedule is refused when two of its next runs come closer than the shortest interval.
CRON_CHECK_RUNS = 12
# How far ahead a schedule may look for a run outside its quiet window.
SEARCH_LIMIT = 5000


def zone_names():
    """Return every IANA zone this machine knows, sorted, with UTC first."""
    names = sorted(n for n in available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/")))
    return ["UTC", *names]


def valid_zone(name):
    """Tell whether `name` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return False


def business_zone_name(org_id):
    """Return the zone Cliniko gives the clinic's first business, or None."""
    return db.session.execute(
        select(Business.time_zone_identifier)
        .where(
            Business.organization_id == org_id,
            Business.archived_at.is_(None),
            Business.time_zone_identifier.is_not(None),
        )
        .order_by(Business.id)
        .limit(1)
    ).scalar()


def zone_name(org):
    """Return the zone a clinic's pages and schedule use: its own setting, else Cliniko's business zone, else UTC."""
    for name in (org.time_zone, business_zone_name(org.id)):
        if name and valid_zone(name):
            return name
    return "UTC"


def zone_source(org):
    """Say where the clinic's zone comes from: "setting", "cliniko" or "default"."""
    if org.time_zone and valid_zone(org.time_zone):
        return "setting"
    name = business_zone_name(org.id)
    return "cliniko" if name and valid_zone(name) else "default"


def parse_hhmm(value):
    """Return a time for "HH:MM", else raise ValueError."""
    try:
        hours, minutes = (value or "").strip().split(":")
        return time(int(hours), int(minutes))
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not a time like 08:00") from None


def cron_error(expr):
    """Return why a five-field cron expression is unusable, or None."""
    expr = (expr or "").strip()
    if len(expr.split()) != 5:
        return "Use five fields: minute hour day-of-month month day-of-week (e.g. 0 */2 * * *)."
    if not croniter.is_valid(expr):
        return f"{expr!r} is not a valid cron expression."
    it = croniter(expr, datetime(2026, 1, 1))
    fires = [it.get_next(datetime) for _ in range(CRON_CHECK_RUNS)]
    gap = min(b - a for a, b in zip(fires, fires[1:], strict=False))
    if gap < timedelta(minutes=MIN_EVERY):
        return f"Runs would come {int(gap.total_seconds() // 60)} min apart; the shortest is {MIN_EVERY} min."
    return None


@dataclass(frozen=True)
class Schedule:
    """What a clinic's schedule says, ready for computing times (zone resolved)."""

    every_minutes: int | None
    cron: str | None
    quiet_start: time | None
    quiet_end: time | None
    quiet_weekdays_only: bool
    full_at: time
    zone: str

    @property
    def tz(self):
        return ZoneInfo(self.zone)

    def as_json(self):
        """Return the shape the API shows under `schedule`."""
        quiet = None
        if self.quiet_start is not None:
            quiet = {
                "start": f"{self.quiet_start:%H:%M}",
                "end": f"{self.quiet_end:%H:%M}",
                "weekdays_only": self.quiet_weekdays_only,
            }
        return {
            "type": "cron" if self.cron else "interval",
            "every_minutes": None if self.cron else self.every_minutes,
            "cron": self.cron,
            "time_zone": self.zone,
            "quiet_window": quiet,
            "full_sync_at": f"{self.full_at:%H:%M}",
        }

    def describe(self):
        """Return the schedule in words: "every 60 min · quiet 08:00–18:00 on weekdays · full pass 02:30"."""
        text = f"cron {self.cron}" if self.cron else f"every {_span(self.every_minutes)}"
        if self.quiet_start is not None:
            days = " on weekdays" if self.quiet_weekdays_only else ""
            text += f" · quiet {self.quiet_start:%H:%M}–{self.quiet_end:%H:%M}{days}"
        return f"{text} · full pass {self.full_at:%H:%M} ({self.zone})"


def _span(minutes):
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def schedule_of(org, zone=None):
    """Return the organization's Schedule (the default: every SYNC_INTERVAL_MINUTES)."""
    quiet = org.quiet_start and org.quiet_end
    return Schedule(
        every_minutes=org.schedule_every_minutes or current_app.config["SYNC_INTERVAL_MINUTES"],
        cron=org.schedule_cron or None,
        quiet_start=parse_hhmm(org.quiet_start) if quiet else None,
        quiet_end=parse_hhmm(org.quiet_end) if quiet else None,
        quiet_weekdays_only=bool(org.quiet_weekdays_only) if quiet else False,
        full_at=parse_hhmm(org.full_sync_at or DEFAULT_FULL_AT),
        zone=zone or zone_name(org),
    )


def _aware(naive_local, tz):
    # fold=0: a wall time that happens twice (clocks back) means its first occurrence; one that
    # never happens (clocks forward) lands just after the gap.
    return naive_local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _quiet_end(schedule, local):
    """Return the naive local time the quiet window holding `local` ends, or None when outside it."""
    start, end = schedule.quiet_start, schedule.quiet_end
    if start is None or start == end:
        return None
    for day in (local.date() - timedelta(days=1), local.date()):
        opens = datetime.combine(day, start)
        closes = datetime.combine(day + timedelta(days=1 if end <= start else 0), end)
        if opens <= local < closes and not (schedule.quiet_weekdays_only and day.weekday() >= 5):
            return closes
    return None


def _local(moment, tz):
    return moment.astimezone(tz).replace(tzinfo=None)


def next_run(schedule, after):
    """Return the first run time (UTC) after `after` on this schedule, outside the quiet window."""
    tz = schedule.tz
    if schedule.cron:
        it = croniter(schedule.cron, _local(after, tz))
        for _ in range(SEARCH_LIMIT):
            local = it.get_next(datetime)
            moment = _aware(local, tz)
            # Wall times in a clocks-forward gap map onto the hour after it: never twice.
            if moment > after and _quiet_end(schedule, _local(moment, tz)) is None:
                return moment
        raise ValueError("every run of this schedule falls in its quiet window")
    moment = after + timedelta(minutes=schedule.every_minutes)
    return _out_of_quiet(schedule, moment)


def _out_of_quiet(schedule, moment):
    tz = schedule.tz
    for _ in range(8):  # a window ends at most once a day; weekdays-only windows chain at most 5
        closes = _quiet_end(schedule, _local(moment, tz))
        if closes is None:
            return moment
        moment = max(_aware(closes, tz), moment + timedelta(minutes=1))
    return moment


def next_full(schedule, after):
    """Return when the next daily full pass is due (UTC): the clinic's full-pass time, after `after`."""
    tz = schedule.tz
    local = _local(after, tz)
    for offset in range(3):
        moment = _aware(datetime.combine(local.date() + timedelta(days=offset), schedule.full_at), tz)
        if moment > after:
            return _out_of_quiet(schedule, moment)
    raise AssertionError("unreachable")


def preview(schedule, after, count=5):
    """Return the next `count` run times (UTC) after `after`."""
    times, moment = [], after
    for _ in range(count):
        moment = next_run(schedule, moment)
        times.append(moment)
    return times


def advance(org, now=None):
    """Set `next_run_at` (and `next_full_at` once passed or unset) after a scheduled start at `now`."""
    now = now or utcnow()
    schedule = schedule_of(org)
    org.next_run_at = next_run(schedule, now)
    if org.next_full_at is None or org.next_full_at <= now:
        org.next_full_at = next_full(schedule, now)


def reschedule(org, now=None):
    """Recompute the next run and full pass after the schedule changed (the next run from now)."""
    now = now or utcnow()
    schedule = schedule_of(org)
    org.next_run_at = next_run(schedule, now)
    org.next_full_at = next_full(schedule, now)


def pause(org, reason, now=None):
    """Stop scheduled starts for the organization, saying why (manual and API starts still work)."""
    org.paused_at = now or utcnow()
    org.paused_reason = reason[:200]


def resume(org, now=None):
    """Clear the pause; the next tick starts the organization.

    The failure count stays until a run succeeds: that success is a recovery, and a clinic
    still failing after a resume pauses again at its next failure.
    """
    org.paused_at = org.paused_reason = None
    org.next_run_at = now or utcnow()


def retry_delay(failures):
    """Return how long the schedule waits after `failures` consecutive scheduled failures.

    The first failure is retried by the next tick (as before); then 5, 10, 20… minutes.
    """
    if failures <= 1:
        return timedelta(0)
    return timedelta(minutes=current_app.config["SCHEDULE_RETRY_MINUTES"] * 2 ** (failures - 2))


def record_outcome(run, now=None):
    """Update the failure count and pause state after a run's final commit; return what happened.

    Returns "paused" (this failure paused the schedule), "failed" (a failure that did not),
    "resumed" (a success cleared a pause), "recovered" (a success after failures), or None.
    Only scheduled runs count towards AUTO_PAUSE_AFTER_FAILURES; invalid credentials pause at once.
    """
    now = now or utcnow()
    org = db.session.get(Organization, run.organization_id)
    if org is None or run.status not in ("completed", "failed"):
        return None
    if run.status == "completed":
        was_paused, failures = org.paused_at is not None, org.consecutive_failures or 0
        org.paused_at = org.paused_reason = None
        org.consecutive_failures = 0
        db.session.commit()
        return "resumed" if was_paused else ("recovered" if failures else None)
    errors = run.errors or []
    invalid = any(e.get("error_type") == "invalid_credentials" for e in errors)
    scheduled = run.trigger == "scheduled"
    if scheduled:
        org.consecutive_failures = (org.consecutive_failures or 0) + 1
    outcome = "failed"
    threshold = current_app.config["AUTO_PAUSE_AFTER_FAILURES"]
    if org.paused_at is None and invalid:
        pause(org, "Cliniko rejected the API key (invalid_credentials): save a valid key, then resume", now)
        outcome = "paused"
    elif org.paused_at is None and scheduled and org.consecutive_failures >= threshold:
        last = errors[-1] if errors else {}
        why = f" (last: {last.get('error_type')}: {last.get('message')})" if last else ""
        pause(org, f"{org.consecutive_failures} scheduled runs failed in a row{why}", now)
        outcome = "paused"
    elif scheduled and org.paused_at is None:
        retry_at = _out_of_quiet(schedule_of(org), now + retry_delay(org.consecutive_failures))
        if org.next_run_at is None or retry_at < org.next_run_at:
            org.next_run_at = retry_at
    db.session.commit()
    return outcome
