"""The `scheduler` process: rq-scheduler plus our idempotent tick registration.

`python -m workers.scheduler`. Writes a heartbeat each poll so `scheduler_active` is true
only while a scheduler process is really running.
"""

import logging
import os

from rq_scheduler import Scheduler

from routiq_admin import create_app
from routiq_admin.extensions import get_redis
from routiq_admin.sync.schedule import beat, register, unregister

log = logging.getLogger("routiq_admin.scheduler")


class BeatingScheduler(Scheduler):
    """rq-scheduler that records a heartbeat on every poll."""

    def enqueue_jobs(self):
        beat(self.connection, self._interval)
        return super().enqueue_jobs()


def main():
    app = create_app()
    poll = float(os.environ.get("SCHEDULER_POLL_SECONDS", "30"))
    with app.app_context():
        conn = get_redis(app)
        scheduler = BeatingScheduler(queue_name=app.config["RQ_QUEUE"], connection=conn, interval=poll)
        minutes = app.config["SYNC_INTERVAL_MINUTES"]
        if app.config["ENABLE_SYNC_SCHEDULER"]:
            register(scheduler, app.config["SCHEDULER_TICK_SECONDS"] / 60)
            log.info("Starting sync scheduler with %s minute intervals", minutes)
            log.info("Sync scheduler started successfully")
        else:
            unregister(scheduler)
            log.info("ENABLE_SYNC_SCHEDULER is false: no periodic sync registered")
        beat(conn, poll)
        scheduler.run()


if __name__ == "__main__":
    main()
