"""Liveness and readiness for load balancers and platforms: no auth, no tenant data, no limits."""

import os

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ..extensions import db, get_redis
from ..sync.schedule import HEARTBEAT_KEY

bp = Blueprint("ops_health", __name__)
MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "..", "migrations")


def _migration_heads():
    """Return the revision ids at the head of the migration scripts (read once per app)."""
    heads = current_app.extensions.get("routiq_migration_heads")
    if heads is None:
        heads = current_app.extensions["routiq_migration_heads"] = set(
            ScriptDirectory(MIGRATIONS).get_heads()
        )
    return heads


def _check_database():
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any driver error means "not ready"; its text may hold the URL
        return {"ok": False, "error": type(exc).__name__}, None
    return {"ok": True}, current


def _check_redis():
    try:
        get_redis().ping()
        beat = get_redis().get(HEARTBEAT_KEY)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}, None
    return {"ok": True}, beat


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers (no I/O)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: database and Redis reachable (else 503); migrations and scheduler reported."""
    database, current = _check_database()
    redis_check, beat = _check_redis()
    heads = _migration_heads()
    checks = {
        "database": database,
        "redis": redis_check,
        "migrations": {
            "ok": current == heads if current is not None else None,
            "current": sorted(current) if current is not None else None,
            "head": sorted(heads),
        },
        "scheduler": {
            "ok": beat is not None if redis_check["ok"] else None,
            "last_heartbeat": beat.decode() if beat else None,
        },
    }
    ready = database["ok"] and redis_check["ok"]
    return jsonify(status="ok" if ready else "unavailable", checks=checks), 200 if ready else 503
