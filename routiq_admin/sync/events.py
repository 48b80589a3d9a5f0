"""A log per sync run: what a person wants to read when a sync failed, bounded and pruned.

Events name steps, counts, Cliniko waits, retries and errors by their taxonomy type; they never
carry patient data, keys or tokens. Writers buffer events (any thread may record) and flush them
in the transaction that commits the run's progress, so a rolled-back page takes its events too.
"""

import threading
from datetime import timedelta

from sqlalchemy import delete, func, insert, select

from ..extensions import db
from ..models import SyncRunEvent, for_org, utcnow

MAX_EVENTS = 500
# Kept free for the run's error and its end, however many waits and retries came first.
RESERVED = 5
FINAL_TYPES = ("error", "finished")
RETENTION_DAYS = 90
MESSAGE_LENGTH = 500


class RunLog:
    """Buffer a run's events (thread-safe) and write them with the run's next commit."""

    def __init__(self, run_id, org_id, start=0):
        self.run_id, self.org_id = run_id, org_id
        self.count = start
        self.dropped = 0
        self._pending = []
        self._lock = threading.Lock()

    def record(self, type_, message, **data):
        """Queue one event; past the bound it is counted as dropped instead. Return whether kept."""
        with self._lock:
            limit = MAX_EVENTS if type_ in FINAL_TYPES else MAX_EVENTS - RESERVED
            if self.count >= limit:
                self.dropped += 1
                return False
            self.count += 1
            self._pending.append(
                {
                    "organization_id": self.org_id,
                    "run_id": self.run_id,
                    "seq": self.count,
                    "at": utcnow(),
                    "type": type_,
                    "message": message[:MESSAGE_LENGTH],
                    "data": data,
                }
            )
            return True

    def flush(self, conn=None):
        """Write the queued events in `conn`'s transaction (the session's by default); the caller commits."""
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            (conn or db.session).execute(insert(SyncRunEvent), rows)


def append(run, type_, message, **data):
    """Write one event for a run outside its engine (e.g. cleanup); the caller commits."""
    last = db.session.execute(
        select(func.max(SyncRunEvent.seq)).where(SyncRunEvent.run_id == run.id)
    ).scalar()
    log = RunLog(run.id, run.organization_id, start=last or 0)
    log.record(type_, message, **data)
    log.flush()


def for_run(run):
    """Return a run's events in order."""
    stmt = for_org(SyncRunEvent, run.organization_id).where(SyncRunEvent.run_id == run.id)
    return list(db.session.execute(stmt.order_by(SyncRunEvent.seq)).scalars())


def prune(org_ids=None, days=RETENTION_DAYS):
    """Delete events older than `days` (within the given organizations, None = all); return how many."""
    stmt = delete(SyncRunEvent).where(SyncRunEvent.at < utcnow() - timedelta(days=days))
    if org_ids is not None:
        stmt = stmt.where(SyncRunEvent.organization_id.in_(list(org_ids)))
    return db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount
