"""A run's progress bookkeeping: step counters, percentage and ETA, the guarded progress commit.

Mixed into SyncEngine, whose __init__ sets the counters these methods read and write.
"""

import math
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import SyncRun, utcnow

# Pages that arrive back to back (already prefetched) share one commit for up to this long;
# a page we would have to wait for on the network is always committed first, so no
# transaction stays open across a network wait.
COMMIT_EVERY_SECONDS = 1.0


class Cancelled(Exception):
    """Someone asked this run to stop."""


class LostOwnership(Exception):
    """The run row is no longer ours (cleaned up as stale, or cancelled before start)."""


def empty_counts():
    return {"fetched": 0, "created": 0, "updated": 0, "unchanged": 0, "failed": 0}


class RunProgress:
    """Progress of one run: what is done, how far, when it ends; committed with each page."""

    def _begin_step(self, name):
        self.step_name = name
        self.step_done = self.step_total = 0
        self._step_start = (name, time.monotonic(), {k: dict(v) for k, v in self.counts.items()})
        self.events.record("step_started", name, step=name)
        # Written with the step's first page (or its end), not in a commit of its own.
        self._pending = f"{name}…"

    def _log_step_finished(self):
        name, started, before = self._step_start
        counts = {}
        for entity, now in self.counts.items():
            done = {k: v - before.get(entity, {}).get(k, 0) for k, v in now.items()}
            if any(done.values()):
                counts[entity] = done
        summary = ", ".join(f"{c['fetched']} {e.replace('_', ' ')}" for e, c in counts.items())
        self.events.record(
            "step_finished",
            f"{name}: done" + (f" ({summary})" if summary else ""),
            step=name,
            counts=counts,
            seconds=round(time.monotonic() - started, 3),
        )

    def _progress_values(self, now):
        fraction = min(1.0, self.step_done / self.step_total) if self.step_total else 0.0
        pct = round(100.0 * (self.completed_steps + fraction) / len(self.steps), 1)
        self.percentage = max(self.percentage, min(pct, 99.9))
        eta = None
        if self.percentage > 0:
            elapsed = (now - self.started_at).total_seconds()
            eta = self.started_at + timedelta(seconds=elapsed * 100.0 / self.percentage)
            remaining_requests = math.ceil(max(0, self.records_total - self.records_processed) / 100)
            rate = current_app.config["CLINIKO_RATE_LIMIT_PER_MINUTE"]
            floor = now + timedelta(seconds=max(0, remaining_requests - rate) * 60.0 / rate)
            eta = max(eta, floor)
        client = self.client
        failed = sum(c["failed"] for c in self.counts.values())
        return {
            "progress_percentage": self.percentage,
            "completed_steps": self.completed_steps,
            "current_step": self.step_name,
            "records_processed": self.records_processed,
            "records_total": max(self.records_total, self.records_processed),
            "records_failed": failed,
            "estimated_completion": eta,
            "entity_counts": {k: dict(v) for k, v in self.counts.items()},
            "cliniko_requests": client.requests_made if client else 0,
            "rate_limit_waits": client.rate_limit_waits if client else 0,
            "rate_limit_wait_seconds": round(client.rate_limit_wait_seconds, 3) if client else 0.0,
        }

    def _commit(self, operation, page=None):
        """Write progress + heartbeat in the open transaction, commit, honour a cancel request."""
        clock = time.monotonic()
        if page is not None and page.ready_next and clock - self._last_commit < COMMIT_EVERY_SECONDS:
            self._pending = operation
            return
        self._pending = None
        self._last_commit = clock
        now = utcnow()
        values = {
            **self._progress_values(now),
            "heartbeat_at": now,
            "current_operation": operation,
            "rate_limited_until": None,
            "errors": self.errors,
        }
        row = db.session.execute(
            update(SyncRun)
            .where(SyncRun.id == self.run_id, SyncRun.status == "running", SyncRun.job_id == self.job_id)
            .values(**values)
            .returning(SyncRun.cancel_requested)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            db.session.rollback()
            raise LostOwnership()
        self.events.flush()
        db.session.commit()
        if self.on_progress:
            self.on_progress(self)
        if row.cancel_requested:
            raise Cancelled()

    def _check_cancel_before_finish(self):
        cancel = db.session.execute(
            select(SyncRun.cancel_requested).where(SyncRun.id == self.run_id)
        ).scalar()
        if cancel:
            raise Cancelled()
