"""Flask extensions, and the Redis connection and RQ queue bound to app config."""

import sqlite3

import redis
from flask import current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from rq import Queue
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from .errors import QueueUnavailable


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
