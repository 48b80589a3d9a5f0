"""Database helpers every model module shares: UTC time, ids, token hashing, org-scoped queries."""

import hashlib
import re
import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import DateTime, TypeDecorator, select

from ..extensions import db

_ID_ALPHABET = string.ascii_letters + string.digits
# Organization ids end up in sync ids and RQ job ids, which allow only these characters.
ORG_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def utcnow():
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Store naive UTC, hand back aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def new_org_id():
    """Return a fresh organization id like `org_2xwHiNrj68eaRUlX10anlXGvzX7`."""
    return "org_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


def hash_token(token):
    """Return the sha256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def get_for_org(model, org_id, **filters):
    """Fetch one tenant row by its key(s) and organization, or None; every tenant lookup goes here."""
    stmt = select(model).filter_by(organization_id=org_id, **filters)
    return db.session.execute(stmt).scalar_one_or_none()


def for_org(model, org_id):
    """Return a select of a tenant table limited to one organization."""
    return select(model).where(model.organization_id == org_id)
