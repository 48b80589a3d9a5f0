"""Shared plumbing for the benchmarks: Redis, databases, apps, the RQ worker, machine facts."""

import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_KEY = "bench-key-au1"  # the simulator makes a clinic for any key; au1 shard
QUEUE = "routiq-bench"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "routiq_bench"
SECRET_KEY = "bench-secret-key"
USER_AGENT = "Routiq Admin bench (bench@example.com)"


def maxrss_mb():
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine():
    """Facts for docs/benchmarks.md: cores, memory, Python, packages, load."""
    from datetime import UTC, datetime

    facts = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        facts["free_h"] = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.rstrip()
    except OSError:
        facts["free_h"] = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read())
        facts["cpu"] = model.group(1).strip() if model else "?"
    except OSError:
        facts["cpu"] = "?"
    facts["loadavg"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    from importlib.metadata import version

    facts["packages"] = ", ".join(
        f"{name} {version(name)}" for name in ("SQLAlchemy", "Flask-SQLAlchemy", "rq", "psycopg")
    )
    return facts


# -- Redis ---------------------------------------------------------------------------------


class Redis:
    """The embedded redis-server (routiq_admin.devredis) for the duration of the bench."""

    def __init__(self, workdir):
        from routiq_admin import devredis

        self.proc, self.url = devredis.start(data_dir=workdir)

    def flush(self):
        import redis

        redis.Redis.from_url(self.url).flushdb()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


# -- databases -----------------------------------------------------------------------------


def pg_url_for(server_url, database):
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + database))


@contextmanager
def postgres_database(server_url=PG_DEFAULT, name=PG_BENCH_DB):
    """Create the scratch database `name` (dropped first if left over) and drop it afterwards."""
    if name in ("test", "postgres", "template0", "template1"):
        raise ValueError(f"refusing to use database {name!r} as the bench's scratch database")
    from sqlalchemy import create_engine, text

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    drop()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url_for(server_url, name)
    finally:
        drop()
        admin.dispose()


@contextmanager
def scratch_dir(prefix="routiq-bench-"):
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_KEY = []


def _encryption_key():
    """One Fernet key per bench process (its databases are scratch; nothing outlives it)."""
    if not _KEY:
        from cryptography.fernet import Fernet

        _KEY.append(Fernet.generate_key().decode())
    return _KEY[0]


def app_config(database_url, redis_url, instance_path, cliniko_base_url=None, **extra):
    config = {
        "APP_ENV": "test",
        "TESTING": True,
        "INSTANCE_PATH": instance_path,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "ENCRYPTION_KEY": _encryption_key(),
        "RQ_QUEUE": QUEUE,
        "CLINIKO_USER_AGENT": USER_AGENT,
        "ENABLE_SYNC_SCHEDULER": False,
    }
    if cliniko_base_url:
        config["CLINIKO_BASE_URL"] = cliniko_base_url
    config.update(extra)
    return config


def use_sqlite_wal(engine):
    """What-if for SQLite: WAL journal + synchronous=NORMAL on every new connection.

    The app does not configure this (it uses SQLite's defaults: rollback journal,
    synchronous=FULL, i.e. several fsyncs per commit); the bench applies it in its own
    process only, to show what a per-page commit costs with it.
    """
    from sqlalchemy import event

    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()


def make_app(config):
    from routiq_admin import create_app

    return create_app(config)


def migrate(app):
    """Run the Alembic migrations (what `flask db upgrade` does)."""
    import logging

    from flask_migrate import upgrade

    from routiq_admin.extensions import db

    logging.disable(logging.INFO)  # alembic's per-migration INFO lines (its env.py sets levels)
    try:
        with app.app_context():
            upgrade()
            db.engine.dispose()
    finally:
        logging.disable(logging.NOTSET)


def make_org(org_id="org_bench", api_key=BENCH_KEY):
    """Insert an organization with a Cliniko key (inside an app context)."""
    from routiq_admin.extensions import db
    from routiq_admin.models import Organization

    org = Organization(id=org_id, name="Bench Clinic")
    org.set_api_key(api_key)
    db.session.add(org)
    db.session.commit()
    return org


# -- the worker ----------------------------------------------------------------------------


def worker_env(config):
    """The environment a `python -m workers.worker` child needs (the test suite's, plus Cliniko)."""
    from tests.conftest import subprocess_env

    extra = {
        k: config[k]
        for k in ("CLINIKO_BASE_URL", "CLINIKO_RATE_LIMIT_PER_MINUTE")
        if config.get(k) is not None
    }
    env = subprocess_env(config, ENABLE_SYNC_SCHEDULER="false", **extra)
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


class Worker:
    """One real RQ worker process (`python -m workers.worker`), ready before we trigger."""

    def __init__(self, config, log_path):
        import redis
        from rq import Worker as RQWorker

        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.worker"],
            cwd=ROOT,
            env=worker_env(config),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        conn = redis.Redis.from_url(config["REDIS_URL"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited at start (code {self.proc.returncode}); see {log_path}")
            mine = [w for w in RQWorker.all(connection=conn) if w.pid == self.proc.pid]
            if mine and mine[0].get_state() == "idle":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"worker did not become idle within 60 s; see {log_path}")

    def _children(self):
        """Pids whose parent is our worker (its work horse; RQ moves it to its own group)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(entry))
        return pids

    def kill(self):
        """SIGKILL the work horse (mid-job) and the worker."""
        import signal

        for pid in self._children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.log.close()


def wait_for_run(run_id, timeout, interval=0.02):
    """Poll the run row (own short transactions) until it finishes; return it."""
    from routiq_admin.extensions import db
    from routiq_admin.models import SyncRun
    from routiq_admin.sync.plan import FINISHED_STATUSES

    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        run = db.session.get(SyncRun, run_id, populate_existing=True)
        if run.status in FINISHED_STATUSES:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"sync {run.sync_id} still {run.status} after {timeout} s")
        time.sleep(interval)


def median(values):
    values = sorted(values)
    n = len(values)
    if not n:
        return float("nan")
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
