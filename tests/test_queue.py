"""Redis and RQ: the embedded server, enqueueing, a real worker process, outages."""

import os
from contextlib import contextmanager

import psutil
import pytest
import redis
from rq.job import Job

from routiq_admin import devredis
from routiq_admin.errors import QueueUnavailable
from routiq_admin.extensions import get_queue, get_redis, redis_or_none
from tests.conftest import start_process, stop, subprocess_env, wait_for


def test_embedded_redis_starts_and_rq_enqueues(tmp_path):
    proc, url = devredis.start(data_dir=tmp_path)
    try:
        from redis import Redis
        from rq import Queue

        queue = Queue("probe", connection=Redis.from_url(url))
        job = queue.enqueue("workers.jobs.ping", 42)
        assert queue.count == 1 and job.get_status() == "queued"
    finally:
        stop(proc)


@contextmanager
def _job_run_by_a_worker(app, base_config, func, *args):
    """Enqueue a job, start a real worker, wait for the job; yield (its return value, the worker)."""
    job = get_queue(app).enqueue(func, *args)
    worker = start_process(["-m", "workers.worker"], subprocess_env(base_config))
    try:
        wait_for(
            lambda: Job.fetch(job.id, connection=get_redis(app)).get_status() == "finished",
            timeout=30,
            message="the job to finish",
        )
        yield Job.fetch(job.id, connection=get_redis(app)).return_value(), worker
    finally:
        stop(worker)


def test_worker_process_executes_a_job(app, base_config):
    with _job_run_by_a_worker(app, base_config, "workers.jobs.ping", "pong") as (result, worker):
        assert result == "pong"
        # Batch work yields the CPU to web requests on a shared host (WORKER_NICE, default 10).
        assert psutil.Process(worker.pid).nice() == os.nice(0) + 10


def test_a_work_horse_runs_its_job_with_the_inherited_objects_frozen(app, base_config):
    with _job_run_by_a_worker(app, base_config, "gc.get_freeze_count") as (frozen, _):
        # Everything the worker built before the fork is out of the horse's garbage collector.
        assert frozen > 100_000


def test_configured_redis_that_is_down_is_an_outage(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{devredis.free_port()}/0")
    with pytest.raises(redis.ConnectionError):
        get_redis(app).ping()
    with app.app_context(), pytest.raises(Exception) as info:
        get_queue(app).enqueue("workers.jobs.ping", 1)
    assert "Connection" in type(info.value).__name__ or "connect" in str(info.value).lower()


def test_missing_redis_url_is_queue_unavailable(make_app):
    app = make_app(REDIS_URL=None)
    with pytest.raises(QueueUnavailable):
        get_redis(app)


def test_redis_or_none_is_none_only_when_redis_is_not_configured(make_app):
    assert redis_or_none(make_app(REDIS_URL=None)) is None
    # A malformed URL is a bug to surface, not an outage to work around.
    with pytest.raises(ValueError):
        redis_or_none(make_app(REDIS_URL="nosuchscheme://127.0.0.1:1/0"))
