"""What the fake API accepts: resources, filterable fields and operators, URL and key shapes, errors."""

from __future__ import annotations

import re

RESOURCES = ("patients", "individual_appointments", "practitioners", "appointment_types", "businesses")
KEY_SHARD_RE = re.compile(r"-([a-z]{2}\d{1,2})$", re.I)
URL_RE = re.compile(r"^/([a-z]{2}\d{1,2})/v1(/.*)?$")
UA_EMAIL_RE = re.compile(r"[^@\s()]+@[^@\s()]+")
DT_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")
DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
INT_RE = re.compile(r"^-?\d{1,19}$")
OP_RE = re.compile(r"^(!=|!\?|>=|<=|~~|=|>|<|~|\?|\*)(.*)$", re.S)


def _spec(text):
    return dict(pair.split(":") for pair in text.split())


# Filterable fields and their filter kinds (cliniko-api.md, plus the non-array extras the OpenAPI
# lists): dt = DateTime, d = Date, n = Numeric, s = String, b = Boolean.
FILTERS = {
    "patients": _spec(
        "id:n archived_at:dt created_at:dt updated_at:dt date_of_birth:d email:s first_name:s "
        "last_name:s old_reference_id:s preferred_first_name:s accepted_privacy_policy:b"
    ),
    "individual_appointments": _spec(
        "id:n archived_at:dt created_at:dt updated_at:dt deleted_at:dt cancelled_at:dt starts_at:dt "
        "ends_at:dt appointment_type_id:n business_id:n patient_id:n practitioner_id:n "
        "repeated_from_id:n did_not_arrive:b"
    ),
    "practitioners": _spec("id:n created_at:dt updated_at:dt user_id:n show_in_online_bookings:b active:b"),
    "appointment_types": _spec(
        "id:n archived_at:dt created_at:dt updated_at:dt category:s online_payments_mode:s "
        "show_in_online_bookings:b"
    ),
    "businesses": _spec(
        "id:n archived_at:dt deleted_at:dt created_at:dt updated_at:dt show_in_online_bookings:b"
    ),
}
# q[] filters accepted by GET /{resource}/{id}
SINGLE_FILTERS = {
    "patients": {"archived_at"},
    "individual_appointments": {"archived_at", "cancelled_at", "deleted_at"},
    "practitioners": set(),
    "appointment_types": {"archived_at"},
    "businesses": {"archived_at", "deleted_at"},
}
OPS = {
    "dt": {">", ">=", "<", "<=", "?", "!?", "*"},
    "d": {"=", ">", ">=", "<", "<=", "?", "!?", "*"},
    "n": {"=", "!=", ">", ">=", "<", "<=", "?", "!?"},
    "s": {"=", "!=", "~", "~~", "?", "!?"},
    "b": {"=", "!="},
}

LINKED = {
    "patient_id": "patients",
    "practitioner_id": "practitioners",
    "appointment_type_id": "appointment_types",
    "business_id": "businesses",
}


def shard_of(api_key):
    """Shard from the key's suffix after its last hyphen (default au1)."""
    m = KEY_SHARD_RE.search(api_key or "")
    return m.group(1).lower() if m else "au1"


class ApiError(Exception):
    """An HTTP error answer from the fake API."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status, self.body = status, body


def _invalid(what, message):
    return ApiError(422, {"message": "Validation Failed", "errors": {what: message}})
