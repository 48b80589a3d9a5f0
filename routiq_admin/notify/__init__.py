"""Notifications: per-organization email and signed webhooks for sync events.

`run_finished(run, outcome=None)` is the one entry point the sync layer calls after a run's
final commit; `emit(org_id, event_type, run=None)` raises one event by hand.
"""

from .events import emit, run_finished
from .targets import DEFAULT_EVENTS, EVENT_TYPES, TEST_EVENT

__all__ = ["DEFAULT_EVENTS", "EVENT_TYPES", "TEST_EVENT", "emit", "run_finished"]
