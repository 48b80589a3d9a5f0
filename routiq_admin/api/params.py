"""Request parsing for the API: query parameters (a 422 names the bad one) and run starts."""

import re

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
