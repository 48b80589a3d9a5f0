"""Database models: tenants, people, tokens, sync runs and the synced Cliniko data."""

import hashlib
import re
import secrets
import string
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    false,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash

from . import crypto
from .cliniko.keys import SHARD_PATTERN, shard_from_key
from .extensions import db
from .sync.plan import ACTIVE_STATUSES

ROLES = ("viewer", "operator", "admin")
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


class Organization(db.Model):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_org_id)
    name: Mapped[str] = mapped_column(String(200))
    cliniko_api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    cliniko_key_last4: Mapped[str | None] = mapped_column(String(8))
    cliniko_shard: Mapped[str | None] = mapped_column(String(16))
    cliniko_user_id: Mapped[str | None] = mapped_column(String(32))
    credentials_valid: Mapped[bool | None] = mapped_column(Boolean)
    credentials_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # None: the zone Cliniko gives the clinic's business (else UTC); a name set here wins.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Schedule (sync/cadence.py): an interval (None = SYNC_INTERVAL_MINUTES) or a cron expression,
    # an optional quiet window ("HH:MM" local), the daily full pass's local time.
    schedule_every_minutes: Mapped[int | None] = mapped_column(Integer)
    schedule_cron: Mapped[str | None] = mapped_column(String(120))
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    quiet_weekdays_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    full_sync_at: Mapped[str] = mapped_column(String(5), default="02:30", server_default="02:30")
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    next_full_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_reason: Mapped[str | None] = mapped_column(String(200))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @validates("id")
    def _validate_id(self, key, value):
        if not ORG_ID_PATTERN.match(value or ""):
            raise ValueError("organization ids use letters, digits, '_' and '-' (at most 64)")
        return value

    def set_api_key(self, api_key):
        """Store a Cliniko key encrypted; remember only its shard and last four characters."""
        api_key = (api_key or "").strip()
        if not api_key:
            self.cliniko_api_key_encrypted = self.cliniko_key_last4 = self.cliniko_shard = None
        else:
            self.cliniko_api_key_encrypted = crypto.encrypt(api_key)
            self.cliniko_shard = shard_from_key(api_key)
            self.cliniko_key_last4 = SHARD_PATTERN.sub("", api_key)[-4:]
        self.cliniko_user_id = None
        self.credentials_valid = None
        self.credentials_checked_at = None

    @property
    def api_key(self):
        """Return the clear Cliniko key (never log or render it)."""
        if not self.cliniko_api_key_encrypted:
            return None
        return crypto.decrypt(self.cliniko_api_key_encrypted)

    @property
    def has_credentials(self):
        return bool(self.cliniko_api_key_encrypted)

    @property
    def masked_key(self):
        return f"••••{self.cliniko_key_last4}" if self.has_credentials else None

    def __repr__(self):
        return f"<Organization {self.id}>"


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


def hash_token(token):
    """Return the sha256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


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


class SyncRun(db.Model):
    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(
            "uq_sync_runs_one_active_per_org",
            "organization_id",
            unique=True,
            sqlite_where=text("status IN ('starting', 'running')"),
            postgresql_where=text("status IN ('starting', 'running')"),
        ),
        Index("ix_sync_runs_org_created", "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_id: Mapped[str] = mapped_column(String(120), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="sync")
    trigger: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(32))
    full: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="starting")
    progress_percentage: Mapped[float] = mapped_column(Float, default=0.0)
    current_step: Mapped[str | None] = mapped_column(String(120))
    current_operation: Mapped[str | None] = mapped_column(String(200))
    total_steps: Mapped[int] = mapped_column(Integer, default=1)
    completed_steps: Mapped[int] = mapped_column(Integer, default=0)
    records_processed: Mapped[int] = mapped_column(Integer, default=0)
    records_total: Mapped[int] = mapped_column(Integer, default=0)
    records_failed: Mapped[int] = mapped_column(Integer, default=0)
    estimated_completion: Mapped[datetime | None] = mapped_column(UTCDateTime)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    entity_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    run_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    cliniko_requests: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_wait_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    rate_limited_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    triggered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    triggered_by_label: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()
    triggered_by: Mapped[User | None] = relationship()

    @property
    def is_active(self):
        return self.status in ACTIVE_STATUSES

    @property
    def duration_seconds(self):
        if not self.completed_at:
            return None
        return round((self.completed_at - (self.started_at or self.created_at)).total_seconds(), 3)

    def __repr__(self):
        return f"<SyncRun {self.sync_id} {self.status}>"


class SyncMark(db.Model):
    """High-water mark: every record of `entity` updated before `watermark` is stored here."""

    __tablename__ = "sync_marks"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ClinikoRecord:
    """Columns every synced table has; rows are unique by (organization_id, cliniko_id)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    cliniko_id: Mapped[str] = mapped_column(String(32))
    cliniko_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cliniko_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)


def _org_cliniko_unique(table):
    return (UniqueConstraint("organization_id", "cliniko_id", name=f"uq_{table}_org_cliniko"),)


class Business(ClinikoRecord, db.Model):
    __tablename__ = "businesses"
    __table_args__ = _org_cliniko_unique("businesses")

    business_name: Mapped[str | None] = mapped_column(String(200))
    time_zone_identifier: Mapped[str | None] = mapped_column(String(64))
    city: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(120))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Practitioner(ClinikoRecord, db.Model):
    __tablename__ = "practitioners"
    __table_args__ = _org_cliniko_unique("practitioners")

    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(60))
    designation: Mapped[str | None] = mapped_column(String(120))
    display_name: Mapped[str | None] = mapped_column(String(240))
    active: Mapped[bool | None] = mapped_column(Boolean)


class AppointmentType(ClinikoRecord, db.Model):
    __tablename__ = "appointment_types"
    __table_args__ = _org_cliniko_unique("appointment_types")

    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(120))
    duration_in_minutes: Mapped[int | None] = mapped_column(Integer)
    color: Mapped[str | None] = mapped_column(String(16))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Patient(ClinikoRecord, db.Model):
    __tablename__ = "patients"
    __table_args__ = (
        *_org_cliniko_unique("patients"),
        Index("ix_patients_org_activity", "organization_id", "activity_status"),
        Index("ix_patients_org_name", "organization_id", "last_name", "first_name"),
        # The API's keyset pages: one organization's rows in id order, without a sort.
        Index("ix_patients_org_id", "organization_id", "id"),
    )

    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    preferred_first_name: Mapped[str | None] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(60))
    email: Mapped[str | None] = mapped_column(String(254))
    date_of_birth: Mapped[datetime | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(60))
    phone: Mapped[str | None] = mapped_column(String(60))
    # JSONB on PostgreSQL: plain json has no equality, and upserts compare values.
    phone_numbers: Mapped[list | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    address_1: Mapped[str | None] = mapped_column(String(240))
    city: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(120))
    post_code: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(120))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    merged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Computed locally from appointments (sync/activity.py), never from Cliniko.
    recent_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    upcoming_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_appointment_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_appointment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_appointment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activity_status: Mapped[str] = mapped_column(String(20), default="inactive", server_default="inactive")

    @property
    def display_name(self):
        first = self.preferred_first_name or self.first_name or ""
        return f"{first} {self.last_name or ''}".strip() or f"Patient {self.cliniko_id}"


class Appointment(ClinikoRecord, db.Model):
    __tablename__ = "appointments"
    __table_args__ = (
        *_org_cliniko_unique("appointments"),
        # Serves the activity step (per-patient counts and min/max of starts_at) and joins.
        Index("ix_appointments_org_patient_starts", "organization_id", "patient_cliniko_id", "starts_at"),
        Index("ix_appointments_org_starts", "organization_id", "starts_at"),
        Index("ix_appointments_org_id", "organization_id", "id"),
    )

    patient_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    practitioner_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    appointment_type_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    business_cliniko_id: Mapped[str | None] = mapped_column(String(32))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    patient_name: Mapped[str | None] = mapped_column(String(240))
    did_not_arrive: Mapped[bool | None] = mapped_column(Boolean)
    patient_arrived: Mapped[bool | None] = mapped_column(Boolean)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancellation_reason: Mapped[int | None] = mapped_column(Integer)
    cancellation_reason_description: Mapped[str | None] = mapped_column(String(200))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    patient: Mapped[Patient | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Appointment.organization_id) == Patient.organization_id,
            foreign(Appointment.patient_cliniko_id) == Patient.cliniko_id,
        ),
        viewonly=True,
        lazy="select",
    )
    practitioner: Mapped[Practitioner | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Appointment.organization_id) == Practitioner.organization_id,
            foreign(Appointment.practitioner_cliniko_id) == Practitioner.cliniko_id,
        ),
        viewonly=True,
    )

    @property
    def status_label(self):
        if self.deleted_at:
            return "deleted"
        if self.archived_at:
            return "archived"
        if self.cancelled_at:
            return "cancelled"
        if self.did_not_arrive:
            return "did not arrive"
        return "booked"


SYNCED_MODELS = {
    "businesses": Business,
    "practitioners": Practitioner,
    "appointment_types": AppointmentType,
    "patients": Patient,
    "appointments": Appointment,
}


def get_for_org(model, org_id, **filters):
    """Fetch one tenant row by its key(s) and organization, or None; every tenant lookup goes here."""
    stmt = select(model).filter_by(organization_id=org_id, **filters)
    return db.session.execute(stmt).scalar_one_or_none()


def for_org(model, org_id):
    """Return a select of a tenant table limited to one organization."""
    return select(model).where(model.organization_id == org_id)


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


class NotificationTarget(db.Model):
    """Where an organization's sync events go: email recipients or a signed webhook endpoint."""

    __tablename__ = "notification_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # email | webhook
    recipients: Mapped[list] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(String(2000))
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def secret(self):
        """Return the clear signing secret (never log or render it after creation)."""
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else None

    @property
    def label(self):
        return ", ".join(self.recipients or []) if self.kind == "email" else self.url


class NotificationEvent(db.Model):
    """One event an organization was told about; `payload` is the webhook body."""

    __tablename__ = "notification_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    sync_id: Mapped[str | None] = mapped_column(String(120), index=True)
    # One event per (type, run): a second run_finished for the same run adds nothing.
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(db.Model):
    """One event to one target: delivered at most once, whatever the retries."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(ForeignKey("notification_events.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(
        ForeignKey("notification_targets.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    event: Mapped[NotificationEvent] = relationship()
    target: Mapped[NotificationTarget] = relationship()


class NotificationAttempt(db.Model):
    """One try at a delivery: when, the HTTP status (webhooks) and the error, if any."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str | None] = mapped_column(String(300))


class SyncRunEvent(db.Model):
    """One line of a run's log (steps, Cliniko waits, retries, the error); no patient data, no secrets."""

    __tablename__ = "sync_run_events"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_sync_run_events_run_seq"),
        Index("ix_sync_run_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
