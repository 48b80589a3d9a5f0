"""Page upserts: one INSERT … ON CONFLICT DO UPDATE … WHERE-differs statement per table."""

import json

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    String,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import UTCDateTime, utcnow

KEY_COLUMNS = ("organization_id", "cliniko_id")


class Upserter:
    """Upsert parsed Cliniko rows of one model by (organization_id, cliniko_id).

    Each statement is built once per column set and reused for every page. On SQLite it runs
    with the page's rows as a parameter list (SQLAlchemy batches that as "insertmanyvalues");
    a SELECT of the page's keys that already exist tells created from updated.

    On PostgreSQL a page is one `INSERT … SELECT unnest(array), …` with one array parameter
    per column: a multi-row VALUES statement has ~2,000 parameters, which psycopg re-parses
    for every page, while arrays are adapted in C. RETURNING `xmax = 0` tells which rows the
    statement inserted, so no key lookup is needed (one PostgreSQL lacking statistics would
    plan as a scan of the whole organization).
    """

    def __init__(self, model, org_id):
        self.table = model.__table__
        self.org_id = org_id
        self._statements = {}
        self._postgresql = db.engine.dialect.name == "postgresql"
        key = self.table.c.cliniko_id
        self._existing = select(key).where(
            self.table.c.organization_id == bindparam("org_id"), key.in_(bindparam("ids", expanding=True))
        )

    def _column_source(self, name):
        """Return the unnest() expression feeding one column from its array parameter."""
        column_type = self.table.c[name].type
        if isinstance(column_type, JSON):
            return cast(func.unnest(cast(bindparam(name), postgresql.ARRAY(Text))), postgresql.JSONB)
        if isinstance(column_type, UTCDateTime):
            column_type = DateTime()
        return func.unnest(cast(bindparam(name), postgresql.ARRAY(column_type)))

    def _statement(self, columns):
        stmt = self._statements.get(columns)
        if stmt is not None:
            return stmt
        if self._postgresql:
            names = ("cliniko_id", *columns)
            source = select(
                cast(bindparam("organization_id"), String),
                *(self._column_source(name) for name in names),
                cast(bindparam("synced_at"), DateTime),
            )
            insert = postgresql.insert(self.table).from_select(
                ["organization_id", *names, "synced_at"], source
            )
        else:
            insert = sqlite.insert(self.table)
        excluded = insert.excluded
        stmt = insert.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS),
            set_={name: excluded[name] for name in (*columns, "synced_at")},
            where=or_(*(self.table.c[name].is_distinct_from(excluded[name]) for name in columns)),
        )
        if self._postgresql:
            # A row this statement inserted has no xmax; one it updated carries our xid.
            inserted = literal_column(f"{self.table.name}.xmax = 0", Boolean).label("inserted")
            stmt = stmt.returning(self.table.c.cliniko_id, inserted)
        else:
            stmt = stmt.returning(self.table.c.cliniko_id)
        self._statements[columns] = stmt
        return stmt

    def _arrays(self, rows, columns, now):
        """Return one parameter per column: the page's values as a list (PostgreSQL)."""
        params = {"organization_id": self.org_id, "synced_at": now.replace(tzinfo=None)}
        for name in ("cliniko_id", *columns):
            values = [row[name] for row in rows]
            column_type = self.table.c[name].type
            if isinstance(column_type, JSON):
                values = [json.dumps(v) for v in values]
            elif isinstance(column_type, UTCDateTime):
                values = [column_type.process_bind_param(v, None) for v in values]
            params[name] = values
        return params

    def upsert(self, rows):
        """Write rows (dicts from cliniko.parse); return (created, updated, unchanged)."""
        unique = {row["cliniko_id"]: row for row in rows}
        if not unique:
            return 0, 0, 0
        columns = tuple(name for name in next(iter(unique.values())) if name != "cliniko_id")
        # Core statements on the session's own connection: the same transaction (committed with
        # the progress row), without the session's per-statement overhead.
        conn = db.session.connection()
        now = utcnow()
        if self._postgresql:
            written = conn.execute(
                self._statement(columns), self._arrays(unique.values(), columns, now)
            ).all()
            created = sum(1 for row in written if row.inserted)
            written = len(written)
        else:
            params = [{**row, "organization_id": self.org_id, "synced_at": now} for row in unique.values()]
            existing = len(conn.execute(self._existing, {"org_id": self.org_id, "ids": list(unique)}).all())
            written = len(conn.execute(self._statement(columns), params).all())
            created = len(unique) - existing
        updated = written - created
        return created, updated, len(unique) - written
