"""Turn raw Cliniko records into dicts of model column values (models/records.py names and lengths)."""

import re
from datetime import UTC, date, datetime

from .errors import InvalidDataFormat

# What neither database can store in text: NUL (PostgreSQL) and lone UTF-16 surrogates (both
# as UTF-8; JSON may carry them as \u escapes).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Column lengths from models/records.py (tests/cliniko/test_parse.py checks they still agree).
LENGTHS = {
    "cliniko_id": 32,
    "business_name": 200,
    "time_zone_identifier": 64,
    "city": 120,
    "country": 120,
    "first_name": 120,
    "last_name": 120,
    "title": 60,
    "designation": 120,
    "display_name": 240,
    "name": 200,
    "category": 120,
    "color": 16,
    "preferred_first_name": 120,
    "email": 254,
    "sex": 60,
    "phone": 60,
    "address_1": 240,
    "state": 120,
    "post_code": 32,
    "time_zone": 64,
    "patient_name": 240,
    "cancellation_reason_description": 200,
}


def business_row(raw):
    """Map a Cliniko business to Business columns."""
    return {
        **_base(raw, "business"),
        **_strings(raw, "business_name", "time_zone_identifier", "city", "country"),
        "archived_at": _ts(raw, "archived_at"),
        "deleted_at": _ts(raw, "deleted_at"),
    }


def practitioner_row(raw):
    """Map a Cliniko practitioner to Practitioner columns."""
    return {
        **_base(raw, "practitioner"),
        **_strings(raw, "first_name", "last_name", "title", "designation", "display_name"),
        "active": _bool(raw.get("active")),
    }


def appointment_type_row(raw):
    """Map a Cliniko appointment type to AppointmentType columns."""
    return {
        **_base(raw, "appointment type"),
        **_strings(raw, "name", "category", "color"),
        "duration_in_minutes": _int(raw.get("duration_in_minutes")),
        "archived_at": _ts(raw, "archived_at"),
    }


PATIENT_STRINGS = (
    "first_name",
    "last_name",
    "preferred_first_name",
    "title",
    "email",
    "sex",
    "address_1",
    "city",
    "state",
    "post_code",
    "country",
    "time_zone",
)


def patient_row(raw):
    """Map a Cliniko patient to Patient columns."""
    row = _base(raw, "patient")
    row.update(_strings(raw, *PATIENT_STRINGS))
    get = raw.get
    phones = _phone_numbers(get("patient_phone_numbers"))
    mobile = next((p["number"] for p in phones or () if p["phone_type"] == "Mobile"), None)
    row.update(
        date_of_birth=_date(get("date_of_birth")),
        phone=_str(mobile or (phones[0]["number"] if phones else None), "phone"),
        phone_numbers=phones,
        archived_at=_ts(raw, "archived_at"),
        deleted_at=_ts(raw, "deleted_at"),
        merged_at=_ts(raw, "merged_at"),
    )
    return row


def appointment_row(raw):
    """Map a Cliniko individual appointment to Appointment columns."""
    row = _base(raw, "appointment")
    get = raw.get
    row.update(
        patient_cliniko_id=_link_id(raw, "patient"),
        practitioner_cliniko_id=_link_id(raw, "practitioner"),
        appointment_type_cliniko_id=_link_id(raw, "appointment_type"),
        business_cliniko_id=_link_id(raw, "business"),
        starts_at=_ts(raw, "starts_at"),
        ends_at=_ts(raw, "ends_at"),
        patient_name=_str(get("patient_name"), "patient_name"),
        cancellation_reason_description=_str(
            get("cancellation_reason_description"), "cancellation_reason_description"
        ),
        did_not_arrive=_bool(get("did_not_arrive")),
        patient_arrived=_bool(get("patient_arrived")),
        cancelled_at=_ts(raw, "cancelled_at"),
        cancellation_reason=_int(get("cancellation_reason")),
        archived_at=_ts(raw, "archived_at"),
        deleted_at=_ts(raw, "deleted_at"),
    )
    return row


def _base(raw, kind):
    if not isinstance(raw, dict):
        raise InvalidDataFormat(f"Cliniko {kind} record is not an object")
    cliniko_id = _id(raw.get("id"))
    if cliniko_id is None:
        raise InvalidDataFormat(f"Cliniko {kind} record has no valid id")
    return {
        "cliniko_id": cliniko_id,
        "cliniko_created_at": _ts(raw, "created_at"),
        "cliniko_updated_at": _ts(raw, "updated_at"),
    }


def _id(value):
    """Return an id as text; ints are accepted, floats never (64-bit ids do not survive them)."""
    if type(value) is int:
        value = str(value)
    elif not isinstance(value, str):
        return None
    value = value.strip()
    if UNSTORABLE.search(value):
        return None
    return value if 0 < len(value) <= LENGTHS["cliniko_id"] else None


def _link_id(raw, field):
    """Return the foreign id from a link object (last path segment of links.self), or None."""
    link = raw.get(field)
    links = link.get("links") if isinstance(link, dict) else None
    url = links.get("self") if isinstance(links, dict) else None
    if isinstance(url, str):
        path = url.partition("#")[0].partition("?")[0]
        return _id(path.rstrip("/").rpartition("/")[2])
    return _id(raw.get(f"{field}_id"))  # older payloads carried flat ids


def _ts(raw, field):
    """Parse an ISO 8601 timestamp to aware UTC; "" and null mean none."""
    value = raw.get(field)
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidDataFormat(f"Cliniko sent an invalid timestamp in {field}") from None
    zone = parsed.tzinfo
    if zone is UTC:  # what Cliniko sends ("…Z")
        return parsed
    return parsed.replace(tzinfo=UTC) if zone is None else parsed.astimezone(UTC)


def _date(value):
    """Parse YYYY-MM-DD; an unreadable birth date is dropped rather than failing the patient."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _str(value, column):
    """Return text for a column: unstorable characters dropped, cut to the column's length."""
    if value is None or value == "":
        return None
    return UNSTORABLE.sub("", str(value))[: LENGTHS[column]] or None


def _strings(raw, *columns):
    return {column: _str(raw.get(column), column) for column in columns}


def _bool(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _phone_numbers(value):
    """Return [{phone_type, number}] for entries with a number, or None when there are none."""
    if not isinstance(value, list):
        return None
    phones = [
        {"phone_type": _str(p.get("phone_type"), "phone"), "number": _str(p.get("number"), "phone")}
        for p in value
        if isinstance(p, dict) and p.get("number")
    ]
    return phones or None
