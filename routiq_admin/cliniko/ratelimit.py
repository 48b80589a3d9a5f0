"""A sliding-window request budget shared by every process that calls Cliniko as one user."""

import logging
import threading
import time
from collections import deque

from ..ratelimit import take_slot

log = logging.getLogger(__name__)

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
