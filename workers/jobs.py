"""RQ job entry points: thin wrappers that build the app and call into the package."""

from rq import get_current_job

from routiq_admin import create_app
from routiq_admin.sync.engine import SyncEngine
from routiq_admin.sync.tick import refresh_idle_activity, tick


def run_sync(run_id):
    """Run one sync (the row id is the only argument: no secrets in job payloads)."""
    app = create_app()
    with app.app_context():
        job = get_current_job()
        return SyncEngine(run_id, job.id if job else None).run()


def scheduler_tick():
    """Run one scheduler tick."""
    app = create_app()
    with app.app_context():
        return tick()


def refresh_activity():
    """Recompute patient activity for organizations without a run in progress ("now" moved)."""
    app = create_app()
    with app.app_context():
        return refresh_idle_activity()


def ping(value):
    """Return what it was given (a trivial job to prove a worker runs)."""
    return value
