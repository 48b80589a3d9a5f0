"""Injected faults (latency, errors, bad bodies) and the per-account rolling rate limit."""

from __future__ import annotations

import dataclasses
import math
import time


@dataclasses.dataclass
class _Fault:
    kind: str
    count: int | None  # None: until cleared
    path: str | None
    key: str | None
    after: int
    params: dict


FAULT_KINDS = ("latency", "rate_limit", "server_error", "timeout", "malformed_json", "wrong_shape")


class FaultsMixin:
    """Simulator methods that queue faults, enforce the rate limit and measure it."""

    def inject(self, fault, count=1, *, path=None, key=None, after=0, **params):
        """Queue a fault for the next `count` matching requests (count=None: until cleared)."""
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(_Fault(fault, count, path, key, int(after or 0), params))

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def set_rate_limit(self, per_minute):
        """Requests per rolling window per account (None or 0: unlimited)."""
        with self._lock:
            self.rate_limit_per_minute = per_minute

    def reset_rate_limits(self):
        """Forget every account's rolling window."""
        with self._lock:
            self._windows.clear()

    def max_requests_in_window(self, api_key=None, window_seconds=60):
        """Most non-429 requests (of one key, or all) seen in any rolling window."""
        with self._lock:
            ts = sorted(
                e[0] for e in self.request_log if e[5] != 429 and (api_key is None or e[2] == api_key)
            )
        best, lo = 0, 0
        for hi, t in enumerate(ts):
            while t - ts[lo] >= window_seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def _limited(self, key):
        """None if the key may make a request now, else the Unix time a slot frees."""
        limit = self.rate_limit_per_minute
        if not limit:
            return None
        dq, now = self._windows[key], time.monotonic()
        while dq and dq[0] <= now - self.rate_limit_window:
            dq.popleft()
        if len(dq) < limit:
            return None
        return time.time() + (dq[len(dq) - limit] + self.rate_limit_window - now)

    def _too_many(self, reset):
        return self._json(
            {"message": "Rate limit exceeded. Try again later."},
            429,
            headers={"X-RateLimit-Reset": str(math.ceil(reset))},
        )

    def _take_faults(self, key, path):
        """(extra latency seconds, the response fault to apply or None); consumes what fires."""
        delay, chosen = 0.0, None
        for f in self._faults:
            if (f.path and f.path not in path) or (f.key is not None and f.key != key):
                continue
            if f.kind != "latency" and chosen is not None:
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.kind == "latency":
                delay += float(f.params.get("ms", 1000)) / 1000.0
            else:
                chosen = f
            if f.count is not None:
                f.count -= 1
        self._faults = [f for f in self._faults if f.count is None or f.count > 0]
        return delay, chosen
