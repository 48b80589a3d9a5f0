"""The tenant: an organization, its Cliniko key (encrypted) and its sync schedule."""

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column, validates

from .. import crypto
from ..cliniko.keys import SHARD_PATTERN, shard_from_key
from ..extensions import db
from .base import ORG_ID_PATTERN, UTCDateTime, new_org_id, utcnow


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
    # The last activity computation (sync/activity.py): when it started (rows synced since are
    # recomputed next time), the "now" it used and its recent window's start (the window edges).
    activity_computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activity_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activity_recent_from: Mapped[datetime | None] = mapped_column(UTCDateTime)

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
