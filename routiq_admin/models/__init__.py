"""Database models: tenants, people, tokens, sync runs, notifications and the synced Cliniko data."""

from ..cliniko.keys import shard_from_key
from .base import ORG_ID_PATTERN, UTCDateTime, for_org, get_for_org, hash_token, new_org_id, utcnow
from .notifications import NotificationAttempt, NotificationDelivery, NotificationEvent, NotificationTarget
from .organizations import Organization
from .people import (
    DEFAULT_SCOPES,
    PATIENTS_READ,
    ROLES,
    SCOPES,
    SYNC_SCOPE,
    ApiToken,
    ClerkUser,
    Invitation,
    Membership,
    User,
)
from .records import (
    SYNCED_MODELS,
    Appointment,
    AppointmentType,
    Business,
    ClinikoRecord,
    Patient,
    Practitioner,
)
from .runs import SyncMark, SyncRun, SyncRunEvent

__all__ = [
    "DEFAULT_SCOPES",
    "ORG_ID_PATTERN",
    "PATIENTS_READ",
    "ROLES",
    "SCOPES",
    "SYNCED_MODELS",
    "SYNC_SCOPE",
    "ApiToken",
    "Appointment",
    "AppointmentType",
    "Business",
    "ClerkUser",
    "ClinikoRecord",
    "Invitation",
    "Membership",
    "NotificationAttempt",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationTarget",
    "Organization",
    "Patient",
    "Practitioner",
    "SyncMark",
    "SyncRun",
    "SyncRunEvent",
    "UTCDateTime",
    "User",
    "for_org",
    "get_for_org",
    "hash_token",
    "new_org_id",
    "shard_from_key",
    "utcnow",
]
