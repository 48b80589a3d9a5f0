"""Helpers the dashboard views share: htmx detection, time zones, formatting, paging."""

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import make_response, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import func, select
from werkzeug.exceptions import BadRequest

from ..auth import require_org, require_principal, role_at_least
from ..extensions import db
from ..models import Business, utcnow
from ..sync.cadence import valid_zone, zone_name

PER_PAGE = 25


def is_htmx():
    """Tell whether htmx asked for a fragment (a history restore wants the full page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def org_context(org_id, role="viewer"):
    """Return (org, the caller's role there) after the role check."""
    org = require_org(org_id, role)
    return org, require_principal().role_in(org.id)


def zone(name):
    """Return a tzinfo for an IANA name, UTC when unknown."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


# A page sends the zone it was drawn in with every htmx request it makes (base.html), so a fragment
# refreshed after a first sync brought Cliniko's business zone keeps the page's zone until a reload.
PAGE_ZONE_HEADER = "X-Page-Zone"


def zone_cache():
    """Return this request's {org_id: zone} (on the request itself: tests share one app context)."""
    return request.environ.setdefault("routiq.org_zones", {})


def org_zone(org):
    """Return the zone an organization's pages use (cadence.zone_name), the same for the whole page."""
    cache = zone_cache()
    if org.id not in cache:
        pinned = request.headers.get(PAGE_ZONE_HEADER, "") if is_htmx() else ""
        cache[org.id] = zone(pinned if valid_zone(pinned) else zone_name(org))
    return cache[org.id]


def zone_key(tz):
    """Return the IANA name of a tzinfo (UTC for the UTC singleton)."""
    return getattr(tz, "key", "UTC")


def org_zones(orgs):
    """Return {org_id: zone} for many organizations with one query (fills org_zone's cache)."""
    cache = zone_cache()
    for org in orgs:  # an explicit setting wins (cadence.zone_name)
        if org.id not in cache and org.time_zone and valid_zone(org.time_zone):
            cache[org.id] = zone(org.time_zone)
    wanted = [org for org in orgs if org.id not in cache]
    if wanted:
        first = (
            select(Business.organization_id, func.min(Business.id).label("id"))
            .where(
                Business.organization_id.in_([org.id for org in wanted]),
                Business.archived_at.is_(None),
                Business.time_zone_identifier.is_not(None),
            )
            .group_by(Business.organization_id)
            .subquery()
        )
        names = dict(
            db.session.execute(
                select(Business.organization_id, Business.time_zone_identifier).join(
                    first, first.c.id == Business.id
                )
            ).all()
        )
        for org in wanted:
            cache[org.id] = zone(names.get(org.id))
    return {org.id: cache[org.id] for org in orgs}


def localtime(value, tz=UTC, fmt="%d %b %Y %H:%M"):
    """Format an aware datetime in a zone, with the zone's abbreviation."""
    if value is None:
        return "—"
    local = value.astimezone(tz)
    return f"{local.strftime(fmt)} {local.tzname()}"


def _span(seconds):
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def reltime(value, now=None):
    """Return '3 min ago' / 'in 5 min' for an aware datetime."""
    if value is None:
        return "never"
    delta = ((now or utcnow()) - value).total_seconds()
    if abs(delta) < 5:
        return "just now"
    return f"{_span(delta)} ago" if delta > 0 else f"in {_span(delta)}"


def duration(seconds):
    """Return a short human duration: '45 s', '2 min 5 s', '1 h 3 min'."""
    if seconds is None:
        return "—"
    seconds = max(0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def iso(value):
    """Return an ISO 8601 string for <time datetime>."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


@dataclass
class Page:
    """One page of rows plus what the pager needs."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self):
        return max(1, math.ceil(self.total / self.per_page))


def page_number():
    """Return the `page` query argument (1 when absent or bad)."""
    return max(1, min(request.args.get("page", 1, type=int) or 1, 100000))


def paginate(stmt, page, per_page=PER_PAGE, scalars=True):
    """Run a select for one page (the last one when `page` is past the end) and count all its rows."""
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar()
    page = min(page, max(1, math.ceil(total / per_page)))
    result = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page))
    return Page(list(result.scalars() if scalars else result.all()), page, per_page, total)


def choice(name, allowed):
    """Return a query argument if it is one of `allowed`, '' when absent; 400 otherwise."""
    value = request.args.get(name, "").strip()
    if value and value not in allowed:
        raise BadRequest(f"Unknown {name}")
    return value


# Dates the dashboard accepts: far enough for any clinic, far from datetime's limits.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def list_response(html, valid, endpoint, filters, page, **route):
    """Answer a filtered list; an htmx answer tells the address bar what it shows (HX-Push-Url).

    The pushed address is the response's, not the request's: the filters as applied and the page
    shown (the last one when the request asked past the end), so URL and table always agree.
    """
    response = make_response(html, filter_status(valid))
    if is_htmx():
        query = {k: v for k, v in filters.items() if v}
        if page.page > 1:
            query["page"] = page.page
        response.headers["HX-Push-Url"] = url_for(endpoint, **route, **query)
    return response


def filter_status(valid):
    """Return a filtered list's status: 400 for a page with a refused filter (its field says why).

    An htmx fragment answers 200 (htmx swaps only 2xx) and carries the marked form out of band.
    """
    return 200 if valid or is_htmx() else 400


def can(role, needed):
    """Tell whether a role grants `needed` (templates use it to hide buttons)."""
    return bool(role) and role_at_least(role, needed)


def utc_from_local(day, tz, end=False):
    """Return the UTC instant a local calendar day starts (or ends, when end=True)."""
    from datetime import timedelta

    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (start + timedelta(days=1) if end else start).astimezone(UTC)


def patient_name(first, preferred, last):
    """Return (the name people see: preferred first name + last name, the legal name when it differs)."""
    legal = f"{first or ''} {last or ''}".strip()
    shown = f"{preferred or first or ''} {last or ''}".strip()
    return shown, (legal if legal and legal != shown else None)


MODE_LABELS = {
    "comprehensive": "Comprehensive",
    "basic": "Basic",
    "active": "Active-window",
    "patients-only": "Patients-only",
}
TRIGGER_LABELS = {"manual": "Manual", "scheduled": "Scheduled", "api": "API"}


def run_kind_label(run):
    """Return what a run is, for people: 'Comprehensive sync (full)' or 'Patient import'."""
    if run.kind == "import":
        return "Patient import"
    what = f"{MODE_LABELS.get(run.mode, run.mode)} sync"
    return f"{what} (full)" if run.full else what


def run_trigger_label(run):
    """Return how a run started, each word once: 'Scheduled', 'Manual, by a@b.c', 'API, by token x'."""
    said = TRIGGER_LABELS.get(run.trigger, run.trigger)
    by = run.triggered_by_label
    return f"{said}, by {by}" if by and by != run.trigger else said


def run_label(run):
    """Return a run's one-line label for people: what it is and how it started."""
    return f"{run_kind_label(run)} · {run_trigger_label(run)}"


def breakable(text):
    """Escape text; an email in it wraps only after '@' or before a '.', never mid-word or at '-'."""
    if not text:
        return text
    out = []
    for word in re.split(r"(\s+)", str(text)):
        if "@" not in word:
            out.append(str(escape(word)))
            continue
        parts = re.split(r"(?<=@)|(?=\.)", word)
        out.append("<wbr>".join(f'<span class="nowrap">{escape(p)}</span>' for p in parts if p))
    return Markup("".join(out))
