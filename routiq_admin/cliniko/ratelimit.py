"""A sliding-window request budget shared by every process that calls Cliniko as one user."""

import logging
import threading
import time
import uuid
from collections import deque

log = logging.getLogger(__name__)

# One sorted set per identity: members are slot ids, scores the Redis server time they were
# taken. Redis's clock (not the caller's) so hosts with skewed clocks still agree. Returns
# "0" when a slot was taken, else the seconds until the oldest slot leaves the window
# (as a string: Lua numbers would be truncated to integers).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def take_slot(redis, key, limit, window_seconds):
    """Take a slot in the sliding window at `key` (0.0), or return the seconds until one frees.

    Redis errors propagate: each caller decides how to fail open.
    """
    args = [window_seconds, limit, uuid.uuid4().hex]
    return max(0.0, float(redis.eval(_ACQUIRE, 1, key, *args)))


_local_windows = {}
_local_lock = threading.Lock()


class SharedRateLimiter:
    """At most `per_minute` slots in any rolling window, shared through Redis (per process without)."""

    def __init__(self, redis, key, per_minute, *, window_seconds=60.0):
        if per_minute < 1 or window_seconds <= 0:
            raise ValueError("per_minute must be >= 1 and window_seconds > 0")
        self.redis = redis
        self.key = f"routiq:cliniko:ratelimit:{key}"
        self.limit = int(per_minute)
        self.window = float(window_seconds)
        self._degraded = False
        with _local_lock:
            self._local = _local_windows.setdefault(self.key, (threading.Lock(), deque()))

    def acquire(self):
        """Take a slot and return 0.0, or return the seconds to wait before trying again."""
        if self.redis is not None:
            try:
                wait = take_slot(self.redis, self.key, self.limit, self.window)
            except (
                Exception
            ) as exc:  # a Redis outage must not stop a sync: keep this process within the limit
                level = logging.DEBUG if self._degraded else logging.WARNING
                self._degraded = True
                log.log(
                    level, "Shared rate limiter unavailable (%s); limiting in-process", type(exc).__name__
                )
            else:
                self._degraded = False
                return wait
        return self._acquire_local()

    def _acquire_local(self):
        lock, slots = self._local
        with lock:
            now = time.monotonic()
            while slots and slots[0] <= now - self.window:
                slots.popleft()
            if len(slots) < self.limit:
                slots.append(now)
                return 0.0
            return max(0.0, slots[0] + self.window - now)

    def reset(self):
        """Forget every slot taken (tests, or after changing the limit)."""
        if self.redis is not None:
            self.redis.delete(self.key)
        with self._local[0]:
            self._local[1].clear()
