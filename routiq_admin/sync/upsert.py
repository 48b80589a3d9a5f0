"""Page upserts: one INSERT … ON CONFLICT DO UPDATE … WHERE-differs statement per page."""

import json
from datetime import UTC, date, datetime
from operator import itemgetter

from sqlalchemy.exc import DataError, IntegrityError

from ..extensions import db
from ..models import UTCDateTime, utcnow

KEY_COLUMNS = ("organization_id", "cliniko_id")
# An appointment moved to another patient remembers the one it left (the first, until the
# activity step has recomputed it): the incremental activity pass cannot find that patient
# from the appointment's new values (sync/activity.py).
REMEMBERS_PREVIOUS = {"appointments": ("patient_cliniko_id", "previous_patient_cliniko_id")}


class Upserter:
    """Upsert parsed Cliniko rows of one model by (organization_id, cliniko_id).

    The SQL is built once per column set and reused for every page; a row whose values all
    match what is stored is not rewritten (the WHERE of DO UPDATE), so it counts as unchanged.
    SQLAlchemy's per-parameter processing cost more than the databases' own work, so values
    are converted here, once, to what SQLAlchemy would store (tests/sync/test_upsert.py).

    SQLite: one prepared statement run by the driver's `executemany`; the connection's change
    counter tells written from unchanged rows, a SELECT of the page's existing keys tells
    created from updated.

    PostgreSQL: the page travels as one JSON parameter, unpacked by `jsonb_populate_recordset`
    into the table's own row type (psycopg would otherwise adapt ~2,000 values or arrays of them
    in Python); RETURNING `xmax = 0` tells inserted rows from updated ones without a key lookup.
    """

    def __init__(self, model, org_id):
        self.table = model.__table__
        self.org_id = org_id
        self._plans = {}
        self._postgresql = db.engine.dialect.name == "postgresql"
        self._count_existing = (
            f"SELECT count(*) FROM {self.table.name} WHERE organization_id = ? "
            "AND cliniko_id IN (SELECT value FROM json_each(?))"
        )

    def upsert(self, rows):
        """Write rows (dicts from cliniko.parse); return (created, updated, unchanged)."""
        unique = {row["cliniko_id"]: row for row in rows}
        if not unique:
            return 0, 0, 0
        columns = tuple(name for name in next(iter(unique.values())) if name != "cliniko_id")
        # The session's own connection: the same transaction (committed with the progress row),
        # without the session's per-statement overhead.
        conn = db.session.connection()
        if self._postgresql:
            created, written = self._upsert_postgresql(conn, unique, columns)
        else:
            created, written = self._upsert_sqlite(conn, unique, columns)
        return created, written - created, len(unique) - written

    def upsert_page(self, rows):
        """Write a page like `upsert`; return (created, updated, unchanged, ids the database refused).

        The page runs under a SAVEPOINT; only when the database refuses its data is it rerun row
        by row (one SAVEPOINT each), so one unstorable record costs itself, not the page.
        """
        conn = db.session.connection()
        if not self._postgresql and not conn.connection.driver_connection.in_transaction:
            # pysqlite opens its transaction lazily, at the first INSERT; a SAVEPOINT before it
            # would start (and its RELEASE commit) a transaction of its own.
            conn.exec_driver_sql("BEGIN")
        try:
            with conn.begin_nested():
                return (*self.upsert(rows), [])
        except (DataError, IntegrityError):
            pass
        totals, refused = [0, 0, 0], []
        for row in {row["cliniko_id"]: row for row in rows}.values():
            try:
                with conn.begin_nested():
                    counts = self.upsert([row])
            except (DataError, IntegrityError):
                refused.append(row["cliniko_id"])
                continue
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
        return (*totals, refused)

    def _on_conflict(self, columns, differs):
        """Return the ON CONFLICT clause that rewrites a row only when a value differs."""
        table = self.table.name
        assignments = [f"{name} = excluded.{name}" for name in (*columns, "synced_at")]
        tracked = REMEMBERS_PREVIOUS.get(table)
        if tracked and tracked[0] in columns:
            current, previous = tracked
            # SET expressions read the row as it was, before this statement's assignments.
            assignments.append(
                f"{previous} = COALESCE({table}.{previous}, CASE WHEN {table}.{current} {differs} "
                f"excluded.{current} THEN {table}.{current} END)"
            )
        return (
            f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
            + ", ".join(assignments)
            + " WHERE "
            + " OR ".join(f"{table}.{name} {differs} excluded.{name}" for name in columns)
        )

    def _plan(self, columns, build):
        """Return what `build` makes for this column set, built on the first page only."""
        plan = self._plans.get(columns)
        if plan is None:
            plan = self._plans[columns] = build(columns)
        return plan

    # -- PostgreSQL ----------------------------------------------------------------------
    def _upsert_postgresql(self, conn, unique, columns):
        """Run the page as one INSERT … SELECT from its JSON; return (created, written)."""
        sql = self._plan(columns, self._postgresql_sql)
        page = json.dumps(list(unique.values()), default=json_value, separators=(",", ":"))
        written = conn.exec_driver_sql(sql, (self.org_id, utc_text(utcnow()), page)).all()
        return sum(1 for (inserted,) in written if inserted), len(written)

    def _postgresql_sql(self, columns):
        """Return the page's INSERT … SELECT FROM jsonb_populate_recordset … RETURNING."""
        table, names = self.table.name, ("cliniko_id", *columns)
        return (
            f"INSERT INTO {table} (organization_id, synced_at, {', '.join(names)}) "
            f"SELECT %s, %s, {', '.join('r.' + name for name in names)} "
            f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) AS r "
            + self._on_conflict(columns, "IS DISTINCT FROM")
            # A row this statement inserted has no xmax; one it updated carries our xid.
            + f" RETURNING {table}.xmax = 0"
        )

    # -- SQLite --------------------------------------------------------------------------
    def _upsert_sqlite(self, conn, unique, columns):
        """Run the page through one prepared statement; return (created, written)."""
        sql, get, converters = self._plan(columns, self._sqlite_plan)
        head = (self.org_id, utc_text(utcnow()))
        params = []
        for row in unique.values():
            values = get(row)
            if converters:
                values = list(values)
                for index, convert in converters:
                    if values[index] is not None:
                        values[index] = convert(values[index])
            params.append((*head, *values))
        existing = conn.exec_driver_sql(
            self._count_existing, (self.org_id, json.dumps(list(unique)))
        ).scalar()
        driver = conn.connection.driver_connection
        before = driver.total_changes  # an unchanged row (WHERE false) is not a change
        conn.exec_driver_sql(sql, params)
        return len(unique) - existing, driver.total_changes - before

    def _sqlite_plan(self, columns):
        """Return (upsert SQL, row → values getter, [(index, converter)])."""
        names = ("organization_id", "synced_at", "cliniko_id", *columns)
        sql = (
            f"INSERT INTO {self.table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            + self._on_conflict(columns, "IS NOT")
        )
        dialect = db.engine.dialect
        converters = []
        for index, name in enumerate(("cliniko_id", *columns)):
            column_type = self.table.c[name].type
            if isinstance(column_type, UTCDateTime):
                converters.append((index, utc_text))
            else:
                convert = column_type.dialect_impl(dialect).bind_processor(dialect)
                if convert is not None:
                    converters.append((index, convert))
        return sql, itemgetter("cliniko_id", *columns), converters


def utc_text(value):
    """Return a datetime as naive UTC text with microseconds: how SQLAlchemy stores one on
    SQLite, and a literal PostgreSQL reads into `timestamp without time zone`."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def json_value(value):
    """Encode what json cannot: datetimes as naive UTC text, dates as YYYY-MM-DD."""
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a page upsert")
