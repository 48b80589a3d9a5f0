"""People and credentials: users, memberships, invitations, API tokens and their scopes, Clerk users."""

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .base import UTCDateTime, hash_token, utcnow
from .organizations import Organization

ROLES = ("viewer", "operator", "admin")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped to end every session of this user at once (logout, password change, removal).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)

    def role_in(self, org_id):
        """Return this user's role in an organization (superusers are admins everywhere)."""
        if self.is_superuser:
            return "admin"
        for membership in self.memberships:
            if membership.organization_id == org_id:
                return membership.role
        return None

    def __repr__(self):
        return f"<User {self.id}>"


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="memberships")
    organization: Mapped[Organization] = relationship()


class Invitation(db.Model):
    """A pending offer of a role in an organization, accepted through a one-time link."""

    __tablename__ = "invitations"
    __table_args__ = (UniqueConstraint("organization_id", "email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()

    def new_token(self):
        """Give this invitation a fresh token and return it in clear (shown or sent once)."""
        clear = secrets.token_urlsafe(32)
        self.token_hash = hash_token(clear)
        return clear

    @property
    def pending(self):
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


# What an API token may do: `sync` (the guide's endpoints, what every token could do before
# scopes) and `patients:read` (the synced patients and appointments). People have every scope.
SYNC_SCOPE, PATIENTS_READ = "sync", "patients:read"
SCOPES = (SYNC_SCOPE, PATIENTS_READ)
DEFAULT_SCOPES = (SYNC_SCOPE,)


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="API token")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    all_organizations: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Space-separated names from SCOPES.
    scopes: Mapped[str] = mapped_column(String(200), default=SYNC_SCOPE, server_default=SYNC_SCOPE)

    @classmethod
    def issue(
        cls,
        *,
        name="API token",
        organization_id=None,
        all_organizations=False,
        user=None,
        scopes=DEFAULT_SCOPES,
    ):
        """Create a token row and return (row, clear token); the clear token is shown once."""
        if bool(organization_id) == bool(all_organizations):
            raise ValueError("a token is scoped to one organization or to all of them")
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes are one or more of {', '.join(SCOPES)}")
        clear = "rtq_" + secrets.token_urlsafe(32)
        row = cls(
            name=name,
            token_hash=hash_token(clear),
            token_prefix=clear[:8],
            organization_id=organization_id,
            all_organizations=all_organizations,
            created_by_id=user.id if user else None,
            scopes=" ".join(s for s in SCOPES if s in scopes),
        )
        return row, clear

    @property
    def scope_set(self):
        """Return the token's scopes as a frozenset."""
        return frozenset((self.scopes or SYNC_SCOPE).split())

    def covers(self, org_id):
        return self.all_organizations or self.organization_id == org_id

    @property
    def active(self):
        return self.revoked_at is None


class ClerkUser(db.Model):
    """A Clerk user seen calling the API for an organization (no token is stored)."""

    __tablename__ = "clerk_users"
    __table_args__ = (UniqueConstraint("organization_id", "clerk_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    clerk_user_id: Mapped[str] = mapped_column(String(200))
    clerk_role: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
