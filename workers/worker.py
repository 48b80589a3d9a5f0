"""The `worker` process: an RQ worker on the sync queue (`python -m workers.worker`)."""

import logging

from rq import Worker

from routiq_admin import create_app
from routiq_admin.extensions import get_queue, get_redis


def main():
    app = create_app()
    with app.app_context():
        queue = get_queue(app)
        logging.getLogger(__name__).info("worker listening on queue %s", queue.name)
        Worker([queue], connection=get_redis(app)).work()


if __name__ == "__main__":
    main()
