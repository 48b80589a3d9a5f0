"""The connection pool: idle connections are pinged before use, busy ones are not."""

from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from routiq_admin import extensions
from routiq_admin.extensions import db


def _raw_connection():
    """The DBAPI connection under the session's pooled connection."""
    return db.session.connection().connection.dbapi_connection


def _break(raw):
    """Break a pooled connection behind the pool's back (what a database restart does)."""
    if db.engine.dialect.name == "postgresql":
        other = create_engine(db.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with other.connect() as conn:
            pid = raw.info.backend_pid
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        other.dispose()
    else:
        raw.close()


def test_an_idle_connection_that_broke_is_replaced_before_use(app, monkeypatch):
    raw = _raw_connection()
    db.session.remove()  # back to the pool, idle
    _break(raw)
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert db.session.execute(text("SELECT 1")).scalar_one() == 1  # no error reached the caller
    assert _raw_connection() is not raw


def test_a_busy_connection_is_not_pinged(app, monkeypatch):
    pings = []
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 3600.0)

    def count(conn, cursor, statement, *args):
        pings.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            db.session.execute(text("SELECT 2")).scalar_one()
            db.session.remove()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert pings == ["SELECT 2"] * 3
