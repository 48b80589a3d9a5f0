"""SharedRateLimiter: a sliding window, atomic across clients, through Redis or in-process."""

import threading
import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from routiq_admin.cliniko.ratelimit import SharedRateLimiter


@pytest.fixture(params=["redis", "local"])
def backend(request):
    return request.getfixturevalue("redis_client") if request.param == "redis" else None


def limiter(backend, per_minute, window):
    return SharedRateLimiter(backend, f"test:{uuid.uuid4()}", per_minute, window_seconds=window)


def test_sliding_window(backend):
    # Wide margins (seconds, not tenths): the suite runs on a loaded 2-core machine.
    lim = limiter(backend, 3, 2.0)
    assert lim.acquire() == 0.0
    time.sleep(1.0)
    assert [lim.acquire() for _ in range(2)] == [0.0, 0.0]
    wait = lim.acquire()
    assert 0.4 < wait <= 1.0  # until the first slot leaves the window
    assert lim.acquire() > 0  # a refusal takes nothing
    time.sleep(wait + 0.05)
    assert lim.acquire() == 0.0  # only the first slot freed: the window slides, it does not reset
    assert 0.2 < lim.acquire() <= 1.0


def test_instances_with_one_key_share_the_budget(backend):
    a = limiter(backend, 2, 5)
    b = SharedRateLimiter(backend, a.key.rpartition(":ratelimit:")[2], 2, window_seconds=5)
    other = limiter(backend, 2, 5)
    assert (a.acquire(), b.acquire()) == (0.0, 0.0)
    assert a.acquire() > 4 and b.acquire() > 4
    assert other.acquire() == 0.0


def test_acquire_is_atomic_under_contention(backend):
    lim = limiter(backend, 25, 30)
    taken = []

    # A fixed number of attempts (8 x 20 = 160 for 25 slots), not a time slice: on a loaded machine a
    # time slice can end before the budget is spent.
    def worker():
        for _ in range(20):
            if lim.acquire() == 0.0:
                taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 25


def test_redis_entries_expire_and_reset(redis_client):
    lim = limiter(redis_client, 5, 2)
    lim.acquire()
    assert 0 < redis_client.pttl(lim.key) <= 3000
    lim.reset()
    assert not redis_client.exists(lim.key)


def test_redis_outage_falls_back_to_the_process_window(caplog):
    down = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    lim = limiter(down, 1, 30)
    assert lim.acquire() == 0.0 and lim.acquire() > 29
    assert "in-process" in caplog.text


def test_rejects_nonsense_limits():
    with pytest.raises(ValueError):
        SharedRateLimiter(None, "x", 0)
