"""Test session: a real Redis (TEST_REDIS_URL, else the embedded one) and a real database
(TEST_DATABASE_URL, else SQLite in a temp dir), migrated once; tables and Redis emptied after
every test."""

import json
import os
import subprocess
import sys
import time

import pytest
import redis as redis_lib
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from routiq_admin import create_app, devredis
from routiq_admin.extensions import db
from tests.specs import SPEC_SKIP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_KEY = Fernet.generate_key().decode()


def stop(proc, timeout=10):
    """Stop a child process: terminate, wait, then kill."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The session's Redis: TEST_REDIS_URL, else an embedded redis-server.

    Never REDIS_URL: it may be a developer's own database, and the suite flushes what it uses.
    """
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    proc, url = devredis.start(data_dir=tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        stop(proc)


def _reset_database(url):
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    _reset_database(url)
    return url


@pytest.fixture(scope="session")
def base_config(database_url, redis_url, tmp_path_factory):
    """Config every test app starts from; also what subprocesses get as environment."""
    return {
        "TESTING": True,
        "APP_ENV": "test",
        "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key",
        "ENCRYPTION_KEY": TEST_KEY,
        "WTF_CSRF_ENABLED": False,
        "RQ_QUEUE": "routiq-test",
        "CLINIKO_USER_AGENT": "Routiq Admin tests (tests@example.com)",
    }


@pytest.fixture(scope="session")
def migrated(base_config):
    """Run the Alembic migrations once, from empty, for the whole session."""
    from flask_migrate import upgrade

    app = create_app(base_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return True


def clean_database():
    """Empty every table (faster than re-migrating)."""
    db.session.remove()
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(t.name for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def make_app(base_config, migrated):
    """Build test apps with extra config; each is cleaned up after the test."""
    apps = []

    def factory(**overrides):
        app = create_app({**base_config, **overrides})
        apps.append(app)
        return app

    yield factory
    if apps:
        with apps[0].app_context():
            clean_database()
            db.engine.dispose()
    redis_lib.Redis.from_url(base_config["REDIS_URL"]).flushdb()


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis_client(redis_url):
    """A connection to the session's Redis without an app, emptied before and after the test."""
    conn = redis_lib.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def redis_conn(app):
    """The app's own connection to the session's Redis (emptied by make_app)."""
    from routiq_admin.extensions import get_redis

    return get_redis(app)


def subprocess_env(config, **extra):
    """Environment that makes a child process (worker, web) use the same settings."""
    env = dict(os.environ)
    for key in (
        "SECRET_KEY",
        "ENCRYPTION_KEY",
        "REDIS_URL",
        "RQ_QUEUE",
        "CLINIKO_USER_AGENT",
        "INSTANCE_PATH",
    ):
        if config.get(key) is not None:
            env[key] = str(config[key])
    env["DATABASE_URL"] = config["SQLALCHEMY_DATABASE_URI"]
    env["APP_ENV"] = "test"
    env["PYTHONPATH"] = ROOT
    for key, value in extra.items():
        env[key] = str(value)
    return env


def start_process(args, env, **kwargs):
    """Start a child process of the project (worker, web server) from the repo root."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **kwargs)


def wait_for(predicate, timeout=20.0, interval=0.05, message="condition"):
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {message}")


def serve_simulator(**simulator_kwargs):
    """Yield a Cliniko simulator served over real HTTP (for fixtures)."""
    from routiq_admin.cliniko.simulator import Simulator, SimulatorServer

    with SimulatorServer(Simulator(**simulator_kwargs)) as server:
        yield server


def app_for(make_app, server):
    """Yield an app whose Cliniko is `server`, with its context pushed (for fixtures)."""
    app = make_app(CLINIKO_BASE_URL=server.base_url)
    with app.app_context():
        yield app


@pytest.fixture
def sim_server():
    """A fresh Cliniko simulator over real HTTP (the demo clinic's size by default)."""
    yield from serve_simulator()


@pytest.fixture
def sync_app(make_app, sim_server):
    """An app whose Cliniko is the simulator, with its context pushed."""
    yield from app_for(make_app, sim_server)


@pytest.fixture
def worker(base_config, sim_server):
    """A real RQ worker process on the test queue, pointed at the simulator."""
    proc = start_process(
        ["-m", "workers.worker"], subprocess_env(base_config, CLINIKO_BASE_URL=sim_server.base_url)
    )
    yield proc
    stop(proc)


@pytest.fixture
def live_server(sync_app):
    """The app served over real HTTP from a thread; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, sync_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(params=["text", "json"])
def log_format(request, caplog):
    """Format caplog's text as LOG_FORMAT=text or LOG_FORMAT=json would (leak tests run both)."""
    if request.param == "json":
        from routiq_admin.logs import json_formatter

        caplog.handler.setFormatter(json_formatter())
    return request.param


def assert_logs_clean(caplog, log_format, *secrets):
    """No secret in any formatted log line; in JSON mode every line is one JSON object."""
    for secret in secrets:
        assert secret not in caplog.text
    if log_format == "json":
        assert all(isinstance(json.loads(line), dict) for line in caplog.text.splitlines())


# ---- FAIL_ON_SKIP=1 (CI): a skip is a failure unless it is a browser test or a missing spec ----
_skipped = []


def _skip_reason(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _expected_skip(report):
    return "browser" in report.keywords or _skip_reason(report).startswith(SPEC_SKIP)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("FAIL_ON_SKIP") != "1":
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("\nFAIL_ON_SKIP: no tests ran", file=sys.stderr)
        return
    unexpected = [r for r in _skipped if not _expected_skip(r)]
    if unexpected:
        print(f"\nFAIL_ON_SKIP: {len(unexpected)} unexpected skip(s):", file=sys.stderr)
        for report in unexpected:
            print(f"  {report.nodeid}: {_skip_reason(report)}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
