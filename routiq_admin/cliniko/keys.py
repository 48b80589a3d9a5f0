"""What a Cliniko API key says about itself: its shard suffix."""

import re

SHARD_PATTERN = re.compile(r"-([a-z]{2}\d{1,2})$", re.IGNORECASE)


def shard_from_key(api_key):
    """Return the Cliniko shard a key belongs to (its suffix, default au1)."""
    match = SHARD_PATTERN.search(api_key or "")
    return match.group(1).lower() if match else "au1"
