"""Flask extensions, and the Redis connection and RQ queue bound to app config."""

import logging
import sqlite3
import time
from pathlib import Path

import redis
from flask import current_app, request
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from rq import Queue
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

from .errors import AppError, QueueUnavailable

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()


def get_redis(app=None):
    """Return the app's Redis client (one per app, pooled)."""
    app = app or current_app._get_current_object()
    client = app.extensions.get("routiq_redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise QueueUnavailable("REDIS_URL is not set")
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        app.extensions["routiq_redis"] = client
    return client


def get_queue(app=None):
    """Return the RQ queue sync jobs go to."""
    app = app or current_app._get_current_object()
    return Queue(app.config["RQ_QUEUE"], connection=get_redis(app))


def redis_or_none(app=None):
    """Return the app's Redis client, or None when none is configured (callers then work without it)."""
    try:
        return get_redis(app)
    except (QueueUnavailable, redis.RedisError):
        return None


# SQLite's default page cache is 2 MiB: a sync into a big clinic then rereads and spills the
# pages of its indexes at every insert. 16 MiB per connection is a fixed bound (it does not grow
# with the clinic) that holds the hot index pages; docs/benchmarks.md has the figures.
SQLITE_CACHE_KIB = 16 * 1024


@event.listens_for(Engine, "connect")
def _sqlite_cache_size(dbapi_connection, connection_record):
    """Give every SQLite connection a 16 MiB page cache."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")


# A pooled connection idle this long is pinged before use: a database restart may have dropped
# it. A busy pool (progress polling) skips the round trip `pool_pre_ping` makes on every checkout.
PING_AFTER_IDLE_SECONDS = 5.0


@event.listens_for(Pool, "checkin")
def _idle_since(dbapi_connection, connection_record):
    """Note when a connection went back to the pool."""
    connection_record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, connection_record, connection_proxy):
    """Ping a connection that sat idle; a failed ping makes the pool reconnect."""
    idle_since = connection_record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
    except Exception as exc:
        raise DisconnectionError("an idle pooled connection failed its ping") from exc


def sqlite_path(app=None):
    """Return the file of the app's SQLite database, or None (PostgreSQL, in-memory SQLite)."""
    url = (app or current_app).config["SQLALCHEMY_DATABASE_URI"]
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(url[len("sqlite:///") :].split("?", 1)[0])


def database_present():
    """Refuse requests with a 503 while the SQLite file is gone (instance/ deleted under a running app).

    Open connections would keep reading the deleted file and fail every write; a new one would
    create an empty database. Either way the app would be half-working.
    """
    if request.endpoint == "static" or request.blueprint == "ops_health":
        return  # /healthz does no I/O; /readyz reports the database itself
    path = sqlite_path()
    if path is not None and not path.exists():
        if not current_app.extensions.get("routiq_db_gone"):
            current_app.extensions["routiq_db_gone"] = True
            log.error(
                "the database file %s is gone (was instance/ deleted?); answering 503 until it is back", path
            )
        raise AppError("The database is unavailable", error_type="database_error")
    current_app.extensions.pop("routiq_db_gone", None)
