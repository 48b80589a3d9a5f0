"""The `worker` process: an RQ worker on the sync queue (`python -m workers.worker`).

The parent imports everything a job needs and builds the app once, before any fork; each job
still runs in its own forked work horse (a crash, a leak or a timeout dies with the job), which
inherits the imports and the app instead of paying for them per job.
"""

import gc
import logging
import os

from routiq_admin import create_app
from routiq_admin.extensions import db, get_queue, get_redis
from routiq_admin.logs import JobLoggingWorker

from . import jobs  # noqa: F401  (the sync code, imported here rather than in every work horse)


class PreloadedWorker(JobLoggingWorker):
    """An RQ worker whose work horses run jobs in the app the parent built."""

    def main_work_horse(self, job, queue):
        # Pooled connections opened before the fork are the parent's: drop them unclosed.
        db.engine.dispose(close=False)
        # The horse's collections would traverse every object it inherited, copying their pages
        # (copy-on-write) as they go: a third of a sync's CPU (docs/benchmarks.md). Freeze them.
        gc.freeze()
        super().main_work_horse(job, queue)


def main():
    app = create_app()
    if app.config["WORKER_NICE"] > 0:
        os.nice(app.config["WORKER_NICE"])  # its work horses inherit it
    with app.app_context():
        # Connect once so the dialect's first-connect setup is inherited too, then close.
        with db.engine.connect():
            pass
        db.engine.dispose()
        queue = get_queue(app)
        logging.getLogger(__name__).info("worker listening on queue %s", queue.name)
        PreloadedWorker([queue], connection=get_redis(app)).work()


if __name__ == "__main__":
    main()
