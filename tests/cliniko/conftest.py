"""Cliniko client fixtures: a Redis DB for the shared limiter and a simulator over real HTTP."""

import os

import pytest
import redis


@pytest.fixture
def redis_conn():
    """A clean Redis DB (REDIS_URL, else DB 14 of the local server, which nothing else uses)."""
    conn = redis.Redis.from_url(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14")
    try:
        conn.flushdb()
    except redis.ConnectionError as exc:
        pytest.skip(f"no Redis for the shared limiter tests: {exc}")
    yield conn
    conn.close()


@pytest.fixture
def sim_server():
    """A fresh simulator (651 patients, 296 appointments) served over HTTP; `.simulator` is the fake."""
    from routiq_admin.cliniko.simulator import Simulator, SimulatorServer

    with SimulatorServer(Simulator(patients=651, appointments=296, seed=1)) as server:
        yield server
