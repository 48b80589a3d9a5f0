"""Our own API limits, per token or session, kept in Redis and failing open.

Requests that start work (every POST, and test-connection, which calls Cliniko) share one
budget, 60 a minute by default; reads share another, 3,000 a minute, so the guide's polling
loops are never refused. Each budget is an exact sliding window: a sorted set of the last
minute's requests, timed by Redis's clock so every web process agrees.
"""

import logging
import math
import time

import redis
from flask import current_app, request

from ..auth import current_principal
from ..errors import QueueUnavailable, RateLimited
from ..extensions import get_redis
from ..ratelimit import take_slot

log = logging.getLogger(__name__)

WINDOW = 60
# Endpoints that are GETs but cost work elsewhere (a Cliniko request each).
WORK_ENDPOINTS = {"api_cliniko.test_connection"}
# After Redis fails, skip the limiter this long instead of paying a connect timeout per request.
OPEN_SECONDS = 5.0


def bucket():
    """Return the budget this request draws from: ("work" | "read", per-minute limit)."""
    name = "work" if request.method == "POST" or request.endpoint in WORK_ENDPOINTS else "read"
    return name, int(current_app.config[f"API_RATE_LIMIT_{name.upper()}_PER_MINUTE"])


def check():
    """Count this API request against its budget; raise 429 when it is spent."""
    if request.method == "OPTIONS" or not request.path.startswith("/api/"):
        return
    principal = current_principal()
    if principal is None:
        return  # the view answers 401
    state = current_app.extensions.setdefault("routiq_api_limits", {"open_until": 0.0})
    if time.monotonic() < state["open_until"]:
        return
    name, limit = bucket()
    try:
        wait = take_slot(get_redis(), f"routiq:api-limit:{name}:{principal.identity}", limit, WINDOW)
    except (redis.RedisError, QueueUnavailable, OSError) as exc:
        log.warning("API rate limiter unavailable, failing open: %s", exc)
        state["open_until"] = time.monotonic() + OPEN_SECONDS
        return
    if wait > 0:
        retry_after = max(1, math.ceil(wait))
        raise RateLimited(
            f"API rate limit exceeded: {limit} {name} requests per minute; retry in {retry_after} s",
            error_code="API_RATE_LIMITED",
            retry_after=retry_after,
        )
