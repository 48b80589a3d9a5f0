"""RQ job entry points: thin wrappers that run in the worker's app and call into the package."""

from flask import current_app, has_app_context
from rq import get_current_job

from routiq_admin import create_app
from routiq_admin.notify.delivery import deliver
from routiq_admin.sync.engine import SyncEngine
from routiq_admin.sync.tick import refresh_idle_activity, tick


def _app():
    """The app the worker built before forking this work horse (a new one elsewhere)."""
    return current_app._get_current_object() if has_app_context() else create_app()


def run_sync(run_id):
    """Run one sync (the row id is the only argument: no secrets in job payloads)."""
    with _app().app_context():
        job = get_current_job()
        return SyncEngine(run_id, job.id if job else None).run()


def scheduler_tick():
    """Run one scheduler tick."""
    with _app().app_context():
        return tick()


def refresh_activity():
    """Recompute patient activity for organizations without a run in progress ("now" moved)."""
    app = create_app()
    with app.app_context():
        return refresh_idle_activity()


def ping(value):
    """Return what it was given (a trivial job to prove a worker runs)."""
    return value


def deliver_notification(delivery_id):
    """Make one try at a notification delivery (the row id is the only argument)."""
    app = create_app()
    with app.app_context():
        return deliver(delivery_id)
