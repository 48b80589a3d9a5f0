"""How times leave the app: UTC ISO 8601 with milliseconds and Z."""

from datetime import UTC


def iso(value):
    """Format an aware datetime as `2025-06-30T12:00:00.000Z` (None stays None)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
