"""Page upserts: one INSERT … ON CONFLICT DO UPDATE … WHERE-differs statement per table."""

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import utcnow

KEY_COLUMNS = ("organization_id", "cliniko_id")


class Upserter:
    """Upsert parsed Cliniko rows of one model by (organization_id, cliniko_id).

    The statement is built once and executed with each page's rows as a parameter list, so
    SQLAlchemy batches it ("insertmanyvalues") instead of compiling fresh SQL per page.
    """

    def __init__(self, model, org_id):
        self.table = model.__table__
        self.org_id = org_id
        self._statements = {}

    def _statement(self, columns):
        stmt = self._statements.get(columns)
        if stmt is None:
            dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(self.table)
            excluded = insert.excluded
            stmt = insert.on_conflict_do_update(
                index_elements=list(KEY_COLUMNS),
                set_={name: excluded[name] for name in (*columns, "synced_at")},
                where=or_(*(self.table.c[name].is_distinct_from(excluded[name]) for name in columns)),
            ).returning(self.table.c.cliniko_id)
            self._statements[columns] = stmt
        return stmt

    def upsert(self, rows):
        """Write rows (dicts from cliniko.parse); return (created, updated, unchanged)."""
        unique = {row["cliniko_id"]: row for row in rows}
        if not unique:
            return 0, 0, 0
        columns = tuple(name for name in next(iter(unique.values())) if name != "cliniko_id")
        key = self.table.c.cliniko_id
        existing = set(
            db.session.execute(
                select(key).where(self.table.c.organization_id == self.org_id, key.in_(list(unique)))
            ).scalars()
        )
        now = utcnow()
        params = [{**row, "organization_id": self.org_id, "synced_at": now} for row in unique.values()]
        written = len(db.session.execute(self._statement(columns), params).all())
        created = len(unique) - len(existing)
        updated = written - created
        return created, updated, len(unique) - written
