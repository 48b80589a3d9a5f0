"""Request parsing for the API: query parameters (a 422 names the bad one) and run starts."""

import base64
import re
from datetime import UTC, date, datetime

from flask import request

from ..auth import require_principal
from ..errors import ValidationError
from ..sync import plan, runs

BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def query(name, parse, default=None):
    """Return a parsed query parameter, its default when absent, or raise a 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except (ValueError, KeyError):
        raise ValidationError(f"Invalid value {raw[:80]!r} for {name}", field=name) from None


def choice(values, name):
    """Return a parser accepting only `values` (the 422 lists them)."""

    def parse(raw):
        if raw not in values:
            raise ValidationError(
                f"Invalid value {raw[:80]!r} for {name}; use one of {', '.join(values)}", field=name
            )
        return raw

    return parse


def int_range(low, high):
    """Return a parser for a decimal integer in [low, high]."""

    def parse(raw):
        if not re.fullmatch(r"[0-9]{1,10}", raw) or not low <= int(raw) <= high:
            raise ValueError(raw)
        return int(raw)

    return parse


def boolean(raw):
    """Parse true/false/1/0 (any case)."""
    return BOOLEANS[raw.strip().lower()]


def start_run(org, mode, trigger, kind="sync"):
    """Start a run for the caller (a sync honours ?full=true, which ignores marks) and return it."""
    principal = require_principal()
    if kind == "import":
        return runs.start_import(org, trigger, user=principal.user, label=principal.label)
    full = query("full", boolean, False)
    return runs.start_sync(org, mode, trigger, user=principal.user, full=full, label=principal.label)


def mode_param(name, default):
    return query(name, choice(plan.MODES, name), default)


# Times an integration may ask about: far enough for any clinic, far from datetime's limits.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199


def timestamp(raw):
    """Parse an ISO 8601 instant with its offset (`2025-06-30T12:00:00Z`) or a date (midnight UTC)."""
    value = datetime.fromisoformat(raw.strip()) if "T" in raw or "t" in raw else None
    if value is None:
        day = date.fromisoformat(raw.strip())
        value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if value.tzinfo is None or not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(raw)
    return value.astimezone(UTC)


def text(max_length):
    """Return a parser for free text of at most `max_length` characters, without control characters."""

    def parse(raw):
        raw = raw.strip()
        if len(raw) > max_length or re.search(r"[\x00-\x1f\x7f]", raw):
            raise ValueError(raw)
        return raw

    return parse


def encode_cursor(row_id):
    """Return the opaque cursor that continues after the row with this id."""
    return base64.urlsafe_b64encode(f"after:{row_id}".encode()).decode().rstrip("=")


def cursor(raw):
    """Parse a cursor made by encode_cursor back into the id it continues after."""
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError(raw) from None
    match = re.fullmatch(r"after:([0-9]{1,18})", decoded)
    if not match:
        raise ValueError(raw)
    return int(match.group(1))
