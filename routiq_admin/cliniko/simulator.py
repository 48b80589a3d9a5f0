"""A fake Cliniko API served over real HTTP, faithful to shared/spec/cliniko-api.md.

Standalone: imports only the standard library and Werkzeug. Data is generated per API key,
deterministically from (seed, key), and kept as compact columns so large clinics stay cheap.
"""

from __future__ import annotations

import base64
import bisect
import collections
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import random
import re
import sys
import threading
import time
import traceback
import unicodedata
from array import array
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from werkzeug.http import http_date
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

NULL = -(2**63)  # null marker in integer columns (smaller than every real value)
BIG = 2**63 - 1
M64 = 2**64 - 1
DAY = 86400
EPOCH_DATE = date(1970, 1, 1)

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
NOT_NULL_COLS = {"id", "created_at", "updated_at", "starts_at", "ends_at", "patient_id"}

CANCEL_REASONS = [(10, "Feeling Better"), (20, "Condition Worse"), (30, "Sick"), (40, "Away")]
CANCEL_REASONS += [(50, "Other"), (60, "Work"), (70, "COVID-19 related")]
REASON_DESC = dict(CANCEL_REASONS)

FIRST_F = (
    "Olivia Charlotte Amelia Isla Mia Ava Grace Chloe Emily Sophie Ella Zoe Ruby Lily Harper Evie Matilda "
    "Sienna Hannah Lucy Sarah Jessica Emma Rebecca Laura Megan Natalie Rachel Kate Anna Priya Mei Aisha "
    "Fatima Leila Maria Elena Ingrid Niamh Siobhan"
).split()
FIRST_M = (
    "Oliver Jack William Noah Thomas James Lucas Henry Charlie Leo Ethan Max Samuel Liam Harrison Mason "
    "Archie Cooper Lachlan Riley Daniel Michael David Benjamin Joshua Matthew Andrew Ryan Nathan Luke Arjun "
    "Wei Omar Ali Mateo Hugo Sven Sean Patrick Kenji"
).split()
FIRST = FIRST_F + FIRST_M
NICKS = dict(
    pair.split(":")
    for pair in (
        "William:Will Thomas:Tom James:Jim Samuel:Sam Benjamin:Ben Joshua:Josh Matthew:Matt Michael:Mike "
        "Daniel:Dan Rebecca:Bec Jessica:Jess Natalie:Nat Elena:Lena Charlotte:Charlie Olivia:Liv"
    ).split()
)
LAST = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas Walker "
    "Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson Clarke Patel "
    "Khan Lewis James Phillips Mitchell Campbell Turner Morris Murphy Cook O'Brien O'Connor McDonald "
    "MacKenzie Baker Young Scott Edwards Stewart Tran Le Chen Wang Li Zhang Kumar Singh Ali Hughes Carter "
    "Russo Rossi Papadopoulos Nowak Kowalski Schmidt Müller García López Fernández Costa Silva Ahmed "
    "Hassan Kim Park Sato Tanaka Cohen Levy Bell Ward Cox Fraser Hunt Graham Ross Marshall Hill Moore "
    "Parker Collins Stone Price Bennett Cooper Gray Reid Shaw Dunn"
).split()
DOMAINS = "gmail.com outlook.com yahoo.com icloud.com hotmail.com proton.me".split()
STREETS = "High St,George St,King St,Church St,Station Rd,Park Ave,Victoria Rd,Queen St,Bay Rd".split(",")
OCCUPATIONS = "Teacher,Nurse,Software Engineer,Accountant,Electrician,Student,Retired,Chef,Builder".split(",")
OCCUPATIONS += ["Lawyer", "Designer", "Sales Manager", None, None]
# shard region -> country, country code, (phone country digits, mobile prefix), two business sites
# (IANA zone, Cliniko zone label, standard UTC offset hours, state, city, post code)
REGIONS = {
    "au": (
        "Australia",
        "AU",
        ("61", "04"),
        [
            ("Australia/Sydney", "Sydney", 10, "NSW", "Sydney", "2000"),
            ("Australia/Melbourne", "Melbourne", 10, "VIC", "Melbourne", "3000"),
        ],
    ),
    "uk": (
        "United Kingdom",
        "GB",
        ("44", "07"),
        [
            ("Europe/London", "London", 0, "England", "London", "SW1A 1AA"),
            ("Europe/London", "London", 0, "England", "Manchester", "M1 1AE"),
        ],
    ),
    "ca": (
        "Canada",
        "CA",
        ("1", "4"),
        [
            ("America/Toronto", "Eastern Time (US & Canada)", -5, "ON", "Toronto", "M5H 2N2"),
            ("America/Vancouver", "Pacific Time (US & Canada)", -8, "BC", "Vancouver", "V6B 1A1"),
        ],
    ),
    "eu": (
        "Ireland",
        "IE",
        ("353", "08"),
        [
            ("Europe/Dublin", "Dublin", 0, "Dublin", "Dublin", "D02 X285"),
            ("Europe/Dublin", "Dublin", 0, "Cork", "Cork", "T12 X70A"),
        ],
    ),
}
PRACTITIONERS = [
    ("Dr", "Sarah", "Mitchell", "Physiotherapist"),
    (None, "James", "Nguyen", "Osteopath"),
    ("Dr", "Priya", "Patel", "Chiropractor"),
    (None, "Tom", "Fraser", "Remedial Massage Therapist"),
    (None, "Emma", "Kelly", "Exercise Physiologist"),
]
APPOINTMENT_TYPES = [  # name, category, minutes, colour; the last one is archived
    ("Initial Consultation", "Consultation", 60, "#4caf50"),
    ("Standard Consultation", "Consultation", 30, "#2196f3"),
    ("Extended Consultation", "Consultation", 45, "#3f51b5"),
    ("Review", "Follow-up", 30, "#ff9800"),
    ("Telehealth Consultation", "Telehealth", 30, "#9c27b0"),
    ("Legacy Assessment", None, 60, "#9e9e9e"),
]
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


def _mix(*parts):
    """Stable 64-bit hash of the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def _iso(ts):
    return None if ts == NULL else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _iso_date(days):
    return None if days == NULL else (EPOCH_DATE + timedelta(days=days)).isoformat()


def _to_ts(value):
    """datetime / ISO string / epoch number / None -> epoch seconds column value."""
    if value is None or value == "":
        return NULL
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    raise ValueError(f"not a timestamp: {value!r}")


def _to_days(value):
    if value is None or value == "":
        return NULL
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.date()
    return (value - EPOCH_DATE).days


def _to_id(value):
    if value is None or value == "":
        return NULL
    if isinstance(value, dict):  # a link object
        value = value["links"]["self"].rstrip("/").rsplit("/", 1)[1]
    return int(value)


def _to_bool(value):
    return -1 if value is None else int(bool(value))


def _bool(v):
    return None if v == -1 else bool(v)


def _link(url):
    return {"links": {"self": url}}


class ApiError(Exception):
    """An HTTP error answer from the fake API."""

    def __init__(self, status, body):
        super().__init__(status, body)
        self.status, self.body = status, body


def _invalid(what, message):
    return ApiError(422, {"message": "Validation Failed", "errors": {what: message}})


class _Lazy:
    """A computed, read-only column."""

    __slots__ = ("get", "n")

    def __init__(self, get, n):
        self.get, self.n = get, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.get(i)

    def __iter__(self):
        return map(self.get, range(self.n))


class _Table:
    """Compact storage for one resource: typed array columns + per-record overrides."""

    def __init__(self, name, columns, kinds):
        self.name = name
        self.kinds = kinds  # column -> "ts" | "d" | "id" | "b" | "i"
        self.cols = columns
        self.lazy = {}  # field -> fn(i), computed filterable fields
        self.ov = {}  # i -> {field: value} for fields that have no column
        self.base = None  # list of per-record dicts for small tables
        self.created_sorted = True  # rows (id order) are also in created_at order

    @property
    def n(self):
        return len(self.cols["id"])

    def index_of(self, record_id):
        """Row index for an id (ids grow with the row index, so bisect works)."""
        try:
            rid = int(record_id)
        except (TypeError, ValueError):
            return None
        ids = self.cols["id"]
        i = bisect.bisect_left(ids, rid)
        return i if i < len(ids) and ids[i] == rid else None

    def column(self, field):
        col = self.cols.get(field)
        if col is not None and self.kinds.get(field) != "b":
            return col
        return _Lazy(self.lazy[field], self.n)

    def field(self, i, name):
        o = self.ov.get(i)
        if o is not None and name in o:
            return o[name]
        return self.base[i].get(name) if self.base is not None else None

    def set(self, i, fields):
        """Write fields: typed columns where they exist (converted first, so a bad value changes
        nothing), per-record overrides otherwise."""
        if "id" in fields:
            raise ValueError("id cannot be changed")
        conv = {"ts": _to_ts, "d": _to_days, "id": _to_id, "b": _to_bool, "i": int}
        typed = {k: conv[self.kinds[k]](v) for k, v in fields.items() if k in self.kinds}
        for k, v in typed.items():
            col = self.cols[k]
            col[i] = v
            if k == "created_at" and ((i > 0 and col[i - 1] > v) or (i + 1 < len(col) and v > col[i + 1])):
                self.created_sorted = False
        for k, v in fields.items():
            if k not in typed:
                self.ov.setdefault(i, {})[k] = v

    def append(self, values):
        for k, col in self.cols.items():
            default = -1 if self.kinds.get(k) == "b" else 0 if col.typecode in "bH" else NULL
            col.append(values.get(k, default))


def _bool_lazy(col):
    return lambda i: _bool(col[i])


class Account:
    """One Cliniko user (the key's owner) and its clinic."""

    def __init__(self, sim, api_key):
        self._sim = sim
        self._lock = sim._lock
        self.key = api_key
        self.shard = shard_of(api_key)
        self.seed = _mix("account", sim.seed, api_key)
        self.base_url = f"https://api.{self.shard}.cliniko.com/v1"
        self.version = 0
        self._cache = collections.OrderedDict()
        self._rng = random.Random(_mix(self.seed, "ids-after"))
        region = REGIONS.get(self.shard[:2], REGIONS["au"])
        self.country, self.country_code, self.phone_cc, self.sites = region
        self.anchor = sim.anchor
        self._salt = [_mix(self.seed, "salt", k) for k in range(16)]
        self._gen_reference()
        self._gen_patients(sim.n_patients)
        self._gen_appointments(sim.n_appointments)
        self.tables = {
            "patients": self.patients,
            "individual_appointments": self.appointments,
            "practitioners": self.practitioners,
            "appointment_types": self.appointment_types,
            "businesses": self.businesses,
        }

    # ---- generation -------------------------------------------------------------------------
    def _h(self, i, salt):
        """Cheap per-row 64-bit hash (splitmix64 finaliser)."""
        x = (i * 0x9E3779B97F4A7C15 + self._salt[salt]) & M64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
        return x ^ (x >> 31)

    @staticmethod
    def _ids(rng, n, step=1 << 22):
        """n increasing, distinct 19-digit ids (Cliniko ids grow with creation time)."""
        start = rng.randrange(1_100_000_000_000_000_000, 1_700_000_000_000_000_000)
        return array("q", itertools.accumulate((rng.randrange(1, step) for _ in range(n)), initial=start))[1:]

    def _small_table(self, name, rows, extra_kinds):
        kinds = {"id": "id", "created_at": "ts", "updated_at": "ts", **extra_kinds}
        cols = {k: array("b" if kind == "b" else "q") for k, kind in kinds.items()}
        t = _Table(name, cols, kinds)
        t.base = []
        for row in rows:
            values, base = {}, {}
            for k, v in row.items():
                (values if k in kinds else base)[k] = v
            t.append(values)
            t.base.append(base)
        c = cols["created_at"]
        t.created_sorted = all(c[k] <= c[k + 1] for k in range(len(c) - 1))
        for k, kind in kinds.items():
            if kind == "b":
                t.lazy[k] = _bool_lazy(cols[k])
        return t

    def _gen_reference(self):
        rng = random.Random(_mix(self.seed, "reference"))
        a = self.anchor
        t0 = a - rng.randrange(5 * 365, 8 * 365) * DAY + rng.randrange(DAY)
        ids = list(self._ids(rng, 5 + 6 + 2 + 1))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        self._user = {
            "active": True,
            "created_at": t0,
            "email": f"{first}.{last}@clinic.example".lower().replace("'", ""),
            "first_name": first,
            "id": ids[13],
            "last_name": last,
            "phone_numbers": [self._phone(rng, "Work")],
            "role": "administrator",
            "time_zone": self.sites[0][1],
            "time_zone_identifier": self.sites[0][0],
            "title": None,
            "updated_at": t0 + rng.randrange(0, a - t0),
            "user_active": True,
        }
        rows = []
        for k, (label, site) in enumerate(zip(("Main", "North"), self.sites, strict=True)):
            c = t0 + k * rng.randrange(30 * DAY, 400 * DAY)
            name = f"{self.sites[0][4]} Health & Movement" + ("" if k == 0 else f" - {site[4]}")
            rows.append(
                {
                    "id": ids[11 + k],
                    "created_at": c,
                    "updated_at": c + rng.randrange(0, a - c),
                    "archived_at": NULL,
                    "deleted_at": NULL,
                    "show_in_online_bookings": True,
                    "additional_information": None,
                    "additional_invoice_information": None,
                    "address_1": f"{rng.randrange(1, 400)} {rng.choice(STREETS)}",
                    "address_2": None,
                    "appointment_reminders_enabled": True,
                    "business_name": name,
                    "business_registration_name": "ABN" if self.country_code == "AU" else None,
                    "business_registration_value": str(rng.randrange(10**10, 10**11))
                    if self.country_code == "AU"
                    else None,
                    "city": site[4],
                    "contact_information": None,
                    "country": self.country,
                    "country_code": self.country_code,
                    "display_name": name,
                    "email_reply_to": None,
                    "label": label,
                    "post_code": site[5],
                    "state": site[3],
                    "time_zone": site[1],
                    "time_zone_identifier": site[0],
                    "website_address": "https://clinic.example",
                }
            )
        self.businesses = self._small_table(
            "businesses", rows, {"archived_at": "ts", "deleted_at": "ts", "show_in_online_bookings": "b"}
        )
        rows = []
        for k, (name, category, minutes, color) in enumerate(APPOINTMENT_TYPES):
            c = t0 + k * rng.randrange(DAY, 10 * DAY)
            archived = c + rng.randrange(200 * DAY, 900 * DAY) if k == 5 else NULL
            rows.append(
                {
                    "id": ids[5 + k],
                    "created_at": c,
                    "updated_at": max(c + rng.randrange(0, 300 * DAY), archived),
                    "archived_at": min(archived, a) if archived != NULL else NULL,
                    "show_in_online_bookings": k != 5,
                    "add_deposit_to_account_credit": None,
                    "appointment_confirmation_template_ids": [],
                    "appointment_follow_up_template_ids": [],
                    "appointment_reminder_template_ids": [],
                    "category": category,
                    "color": color,
                    "deposit_price": "50.0" if k == 0 else None,
                    "description": None,
                    "duration_in_minutes": minutes,
                    "max_attendees": 1,
                    "name": name,
                    "online_bookings_lead_time_hours": 2,
                    "online_payments_enabled": k == 0,
                    "online_payments_mode": "deposit_required" if k == 0 else None,
                    "telehealth_enabled": category == "Telehealth",
                }
            )
        for r in rows:
            r["updated_at"] = min(r["updated_at"], a)
        self.appointment_types = self._small_table(
            "appointment_types", rows, {"archived_at": "ts", "show_in_online_bookings": "b"}
        )
        n_inactive = 1 + rng.randrange(2)
        rows = []
        for k, (title, first, last, designation) in enumerate(PRACTITIONERS):
            c = t0 + k * rng.randrange(20 * DAY, 200 * DAY)
            rows.append(
                {
                    "id": ids[k],
                    "created_at": c,
                    "updated_at": min(a, c + rng.randrange(0, 500 * DAY)),
                    "user_id": _mix(self.seed, "user", k) % 10**18 + 10**18,
                    "active": k < 5 - n_inactive,
                    "show_in_online_bookings": k < 5 - n_inactive,
                    "title": title,
                    "first_name": first,
                    "last_name": last,
                    "designation": designation,
                    "description": None,
                    "display_name": f"{title + ' ' if title else ''}{first} {last}",
                    "label": f"{first} {last}",
                    "default_type": k % 3,
                }
            )
        self.practitioners = self._small_table(
            "practitioners", rows, {"user_id": "id", "active": "b", "show_in_online_bookings": "b"}
        )
        self.active_practitioners = [k for k in range(5) if k < 5 - n_inactive]
        for f in ("category", "online_payments_mode"):
            self.appointment_types.lazy[f] = functools.partial(self.appointment_types.field, name=f)

    def _phone(self, rng, kind="Mobile"):
        cc, prefix = self.phone_cc
        digits = prefix + "".join(str(rng.randrange(10)) for _ in range(10 - len(prefix)))
        number = f"{digits[:4]} {digits[4:7]} {digits[7:]}"
        return {"phone_type": kind, "number": number, "normalized_number": cc + digits.lstrip("0")}

    def _gen_patients(self, n):
        rng = random.Random(_mix(self.seed, "patients"))
        a = self.anchor
        start = a - 6 * 365 * DAY
        created = sorted(rng.randrange(start, a) for _ in range(n))
        cols = {
            "id": self._ids(rng, n),
            "created_at": array("q", created),
            "updated_at": array("q"),
            "archived_at": array("q"),
            "deleted_at": array("q", [NULL]) * n,
            "date_of_birth": array("q"),
            "first": array("H"),
            "last": array("H"),
        }
        upd, arch, dob, fi, la = (
            cols[k].append for k in ("updated_at", "archived_at", "date_of_birth", "first", "last")
        )
        nf, nl = len(FIRST), len(LAST)
        today = a // DAY
        for c in created:
            r = rng.getrandbits(64)
            fi(r % nf)
            la((r >> 8) % nl)
            u = c if (r >> 16) & 3 == 0 else c + (((r >> 18) & 0xFFFFF) * (a - c) >> 20)
            if (r >> 38) & 0x3FF < 51:  # ~5% archived
                x = c + (((r >> 48) & 0xFFFF) * (a - c) >> 16)
                arch(x)
                u = max(u, x)
            else:
                arch(NULL)
            upd(u)
            r = rng.getrandbits(32)
            dob(NULL if r % 32 == 0 else today - 365 * 2 - (r >> 5) % (85 * 365))
        t = _Table(
            "patients",
            cols,
            {
                "created_at": "ts",
                "updated_at": "ts",
                "archived_at": "ts",
                "deleted_at": "ts",
                "date_of_birth": "d",
                "id": "id",
            },
        )
        t.lazy.update(
            first_name=self._p_first,
            last_name=self._p_last,
            email=self._p_email,
            preferred_first_name=self._p_pref,
            old_reference_id=self._p_oldref,
            accepted_privacy_policy=self._p_privacy,
        )
        self.patients = t

    def _p_first(self, i):
        o = self.patients.ov.get(i)
        return o["first_name"] if o and "first_name" in o else FIRST[self.patients.cols["first"][i]]

    def _p_last(self, i):
        o = self.patients.ov.get(i)
        return o["last_name"] if o and "last_name" in o else LAST[self.patients.cols["last"][i]]

    def _p_email(self, i):
        o = self.patients.ov.get(i)
        if o and "email" in o:
            return o["email"]
        h = self._h(i, 1)
        if h % 25 == 0:
            return None
        f, x = self._p_first(i), self._p_last(i)
        local = (f"{f}.{x}", f"{f[:1]}{x}", f"{f}{x}{(h >> 12) % 100}", f"{f}_{x}")[(h >> 8) & 3].lower()
        if not local.isascii() or " " in local:  # "García" -> "garcia"
            local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode().replace(" ", "")
        return local + "@" + DOMAINS[(h >> 20) % len(DOMAINS)]

    def _p_pref(self, i):
        o = self.patients.ov.get(i)
        if o and "preferred_first_name" in o:
            return o["preferred_first_name"]
        return NICKS.get(self._p_first(i)) if self._h(i, 2) % 4 == 0 else None

    def _p_oldref(self, i):
        o = self.patients.ov.get(i)
        if o and "old_reference_id" in o:
            return o["old_reference_id"]
        h = self._h(i, 3)
        return f"P{h % 1000000:06d}" if h % 5 == 0 else None

    def _p_privacy(self, i):
        o = self.patients.ov.get(i)
        if o and "accepted_privacy_policy" in o:
            return o["accepted_privacy_policy"]
        h = self._h(i, 4) % 10
        return None if h == 0 else h > 2

    def _gen_appointments(self, m):
        rng = random.Random(_mix(self.seed, "appointments"))
        a = self.anchor
        created = sorted(rng.randrange(a - 380 * DAY, a) for _ in range(m))
        p_created = self.patients.cols["created_at"]
        p_ids = self.patients.cols["id"]
        n_p = len(p_ids)
        offsets = [site[2] * 3600 for site in self.sites]
        active = self.active_practitioners
        n_types = 5
        durations = [t[2] * 60 for t in APPOINTMENT_TYPES]
        cols = {"id": self._ids(rng, m), "created_at": array("q", created)}
        for k in ("updated_at", "archived_at", "cancelled_at", "starts_at", "ends_at", "patient_id"):
            cols[k] = array("q")
        for k in ("practitioner", "appointment_type", "business", "did_not_arrive", "reason"):
            cols[k] = array("b")
        cols["deleted_at"] = array("q", [NULL]) * m
        cols["repeated_from_id"] = array("q", [NULL]) * m
        ap = {k: cols[k].append for k in cols}
        for c in created:
            r, r2 = rng.getrandbits(64), rng.getrandbits(64)
            lead = int(((r & 0xFFFF) / 65536.0) ** 2 * 90 * DAY)
            b = (r >> 16) & 1
            day = (c + lead) // DAY
            s = day * DAY + 8 * 3600 + ((r >> 17) % 40) * 900 - offsets[b]
            if s < c + 3600:
                s += DAY
            pr = (r >> 23) % 5
            if pr not in active and s > a - 120 * DAY:  # inactive practitioners left the clinic
                pr = active[pr % len(active)]
            ty = (r >> 26) % n_types
            pool = bisect.bisect_right(p_created, c) or n_p
            pi = (r >> 29) % pool if pool else 0
            past = s < a
            u = c
            if (r2 >> 40) & 3:
                u = min(a, max(c, s + ((r2 >> 42) & 0xFFFF)) if past else c + ((r2 >> 42) & 0xFFFF) * 8)
            cancelled = NULL
            reason = 0
            if r2 & 0x3FF < 82:  # ~8% cancelled
                cancelled = c + (((r2 >> 58) + 1) * (min(s, a - 1) - c) >> 6)
                reason = 1 + (r2 >> 10) % 7
                u = max(u, cancelled)
            archived = NULL
            if (r2 >> 14) & 0x3FF < 31:  # ~3% archived
                archived = c + (((r2 >> 24) & 0xFFFF) * (a - c) >> 16)
                u = max(u, archived)
            dna = past and cancelled == NULL and (r2 >> 30) & 0x3FF < 64
            if u >= a:  # an edit after "now" cannot exist: spread it over [created, now) instead
                u = max(c + ((r2 >> 26) & 0xFFFF) * (a - 1 - c) // 0x10000, cancelled, archived)
            ap["updated_at"](min(u, a - 1))
            ap["archived_at"](archived)
            ap["cancelled_at"](cancelled)
            ap["starts_at"](s)
            ap["ends_at"](s + durations[ty])
            ap["patient_id"](p_ids[pi] if n_p else NULL)
            ap["practitioner"](pr)
            ap["appointment_type"](ty)
            ap["business"](b)
            ap["did_not_arrive"](1 if dna else 0)
            ap["reason"](reason)
        t = _Table(
            "individual_appointments",
            cols,
            {
                "created_at": "ts",
                "updated_at": "ts",
                "archived_at": "ts",
                "cancelled_at": "ts",
                "starts_at": "ts",
                "ends_at": "ts",
                "deleted_at": "ts",
                "patient_id": "id",
                "repeated_from_id": "id",
                "did_not_arrive": "b",
                "id": "id",
                "practitioner": "i",
                "appointment_type": "i",
                "business": "i",
                "reason": "i",
            },
        )
        for field, ref, small in (
            ("practitioner_id", self.practitioners, "practitioner"),
            ("appointment_type_id", self.appointment_types, "appointment_type"),
            ("business_id", self.businesses, "business"),
        ):
            t.lazy[field] = (lambda ids, col: lambda i: ids[col[i]])(ref.cols["id"], cols[small])
        t.lazy["did_not_arrive"] = _bool_lazy(cols["did_not_arrive"])
        self.appointments = t

    # ---- rendering ----------------------------------------------------------------------------
    def _render(self, resource, i, base):
        return getattr(self, "_render_" + resource)(i, base)

    def _render_user(self, base):
        u = dict(self._user)
        u["id"] = str(u["id"])
        u["created_at"], u["updated_at"] = _iso(u["created_at"]), _iso(u["updated_at"])
        u["links"] = {"self": f"{base}/users/{u['id']}"}
        return u

    def _render_patients(self, i, base):
        t = self.patients
        c = t.cols
        pid = c["id"][i]
        r = random.Random(_mix(self.seed, "patient", i))
        first, last = self._p_first(i), self._p_last(i)
        female = c["first"][i] < len(FIRST_F)
        site = self.sites[r.randrange(2)]
        phones = [self._phone(r)] + ([self._phone(r, "Home")] if r.random() < 0.2 else [])
        u = f"{base}/patients/{pid}"
        rec = {
            "accepted_email_marketing": r.random() < 0.3,
            "accepted_privacy_policy": self._p_privacy(i),
            "accepted_sms_marketing": r.random() < 0.6,
            "address_1": f"{r.randrange(1, 300)} {r.choice(STREETS)}",
            "address_2": None,
            "address_3": None,
            "appointment_notes": None,
            "appointments": _link(f"{u}/appointments"),
            "archived_at": _iso(c["archived_at"][i]),
            "attendees": _link(f"{base}/attendees?q%5B%5D=patient_id%3A%3D{pid}"),
            "city": site[4],
            "country": self.country,
            "country_code": self.country_code,
            "created_at": _iso(c["created_at"][i]),
            "custom_fields": None,
            "date_of_birth": _iso_date(c["date_of_birth"][i]),
            "deleted_at": _iso(c["deleted_at"][i]),
            "dva_card_number": None,
            "email": self._p_email(i),
            "emergency_contact": None,
            "first_name": first,
            "gender": None,
            "gender_identity": r.choice(["Woman", "Man", None]) if r.random() < 0.3 else None,
            "id": str(pid),
            "invoice_default_to": None,
            "invoice_email": None,
            "invoice_extra_information": None,
            "invoices": _link(f"{u}/invoices"),
            "label": f"{first} {last}",
            "last_name": last,
            "links": {"self": u},
            "medical_alerts": _link(f"{u}/medical_alerts"),
            "medicare": None,
            "medicare_reference_number": None,
            "merged_at": None,
            "notes": r.choice([None, None, None, "Prefers afternoon appointments.", "Referred by GP."]),
            "occupation": r.choice(OCCUPATIONS),
            "old_reference_id": self._p_oldref(i),
            "patient_attachments": _link(f"{u}/patient_attachments"),
            "patient_phone_numbers": phones if r.random() < 0.95 else None,
            "post_code": site[5],
            "preferred_first_name": self._p_pref(i),
            "pronouns": None,
            "receives_cancellation_emails": True,
            "receives_confirmation_emails": True,
            "referral_source": r.choice([None, "Google", "Friend", "GP referral"]),
            "relationships": _link(f"{base}/relationships?q%5B%5D=patient_id%3A%3D{pid}"),
            "reminder_type": r.choice(["SMS", "Email", "SMS & Email", "None"]),
            "sex": "Female" if female else "Male",
            "state": site[3],
            "time_zone": site[0],
            "title": r.choice(["Ms", "Mrs", "Miss", None]) if female else r.choice(["Mr", None]),
            "updated_at": _iso(c["updated_at"][i]),
        }
        rec.update(t.ov.get(i, ()))
        return rec

    def _render_individual_appointments(self, i, base):
        t = self.appointments
        c = t.cols
        aid = c["id"][i]
        h = self._h(i, 7)
        u = f"{base}/individual_appointments/{aid}"
        reason = c["reason"][i]
        cancelled = c["cancelled_at"][i]
        dna = bool(c["did_not_arrive"][i])
        past = c["starts_at"][i] < self.anchor
        pid = c["patient_id"][i]
        pi = self.patients.index_of(pid)
        rf = c["repeated_from_id"][i]
        code = CANCEL_REASONS[reason - 1][0] if reason else None
        rec = {
            "appointment_type": _link(f"{base}/appointment_types/{t.lazy['appointment_type_id'](i)}"),
            "archived_at": _iso(c["archived_at"][i]),
            "attendees": _link(f"{u}/attendees"),
            "booking_ip_address": f"10.0.{(h >> 8) & 255}.{(h >> 16) & 255}" if h % 4 == 0 else None,
            "business": _link(f"{base}/businesses/{t.lazy['business_id'](i)}"),
            "cancellation_note": ("Patient called to cancel." if (h >> 24) & 1 else None)
            if cancelled != NULL
            else None,
            "cancellation_reason": code,
            "cancellation_reason_description": REASON_DESC.get(code, ""),
            "cancelled_at": _iso(cancelled),
            "conflicts": _link(f"{u}/conflicts"),
            "created_at": _iso(c["created_at"][i]),
            "deleted_at": _iso(c["deleted_at"][i]),
            "did_not_arrive": dna,
            "email_reminder_sent": past and (h >> 30) & 1 == 1,
            "ends_at": _iso(c["ends_at"][i]),
            "has_patient_appointment_notes": False,
            "id": str(aid),
            "invoice_status": ((h >> 32) % 3 + 1) if past and cancelled == NULL and not dna else None,
            "links": {"self": u},
            "notes": "Bring previous scans." if (h >> 36) % 20 == 0 else None,
            "online_booking_policy_accepted": True if (h >> 40) % 3 == 0 else None,
            "patient": _link(f"{base}/patients/{pid}"),
            "patient_arrived": past and cancelled == NULL and not dna,
            "patient_name": f"{self._p_first(pi)} {self._p_last(pi)}" if pi is not None else None,
            "practitioner": _link(f"{base}/practitioners/{t.lazy['practitioner_id'](i)}"),
            "repeat_rule": {},
            "repeats": None,
            "sms_reminder_sent": past and (h >> 44) & 1 == 1,
            "starts_at": _iso(c["starts_at"][i]),
            "telehealth_url": None,
            "treatment_note_status": ((h >> 48) % 3) if past and cancelled == NULL and not dna else None,
            "updated_at": _iso(c["updated_at"][i]),
        }
        if rf != NULL:
            rec["repeated_from"] = _link(f"{base}/individual_appointments/{rf}")
        rec.update(t.ov.get(i, ()))
        return rec

    def _render_small(self, t, i, base, path):
        rec = {k: v for k, v in t.base[i].items() if k != "default_type"}
        for k, kind in t.kinds.items():
            v = t.cols[k][i]
            rec[k] = _iso(v) if kind == "ts" else _bool(v) if kind == "b" else (None if v == NULL else str(v))
        rec["links"] = {"self": f"{base}/{path}/{rec['id']}"}
        rec.update(t.ov.get(i, ()))
        return rec

    def _render_practitioners(self, i, base):
        t = self.practitioners
        rec = self._render_small(t, i, base, "practitioners")
        u = rec["links"]["self"]
        user_id = rec.pop("user_id")
        types = self.appointment_types.cols["id"]
        rec.update(
            appointment_types=_link(f"{u}/appointment_types"),
            appointments=_link(f"{u}/appointments"),
            default_appointment_type=_link(f"{base}/appointment_types/{types[t.base[i]['default_type']]}"),
            invoices=_link(f"{u}/invoices"),
            practitioner_reference_numbers=_link(f"{u}/practitioner_reference_numbers"),
            user=_link(f"{base}/users/{user_id}"),
        )
        return rec

    def _render_appointment_types(self, i, base):
        rec = self._render_small(self.appointment_types, i, base, "appointment_types")
        u = rec["links"]["self"]
        q = f"q%5B%5D=appointment_type_id%3A%3D{rec['id']}"
        rec.update(
            appointment_type_billable_items=_link(f"{base}/appointment_type_billable_items?{q}"),
            appointment_type_products=_link(f"{base}/appointment_type_products?{q}"),
            practitioners=_link(f"{u}/practitioners"),
        )
        return rec

    def _render_businesses(self, i, base):
        rec = self._render_small(self.businesses, i, base, "businesses")
        u = rec["links"]["self"]
        at = self.appointment_types
        rec.update(
            appointment_type_ids=[
                str(at.cols["id"][k]) for k in range(at.n) if at.cols["archived_at"][k] == NULL
            ],
            appointments=_link(f"{u}/appointments"),
            practitioners=_link(f"{u}/practitioners"),
        )
        return rec

    # ---- queries ------------------------------------------------------------------------------
    def _parse_filters(self, resource, qs, allowed):
        kinds = FILTERS[resource]
        out = []
        for q in qs:
            field, sep, rest = q.partition(":")
            if not sep or field not in allowed:
                raise _invalid("q", f"{q!r} is not a valid filter (unknown field {field!r})")
            kind = kinds[field]
            m = OP_RE.match(rest)
            if not m or m.group(1) not in OPS[kind]:
                raise _invalid("q", f"{q!r} uses an operator not valid for {field}")
            op, raw = m.groups()
            try:
                out.append((field, op, self._parse_value(kind, op, raw)))
            except ValueError:
                raise _invalid("q", f"{q!r} has an invalid value for {field}") from None
        return out

    @staticmethod
    def _parse_value(kind, op, raw):
        if op in ("?", "!?", "*"):
            if raw:
                raise ValueError(raw)
            return None
        if kind == "dt":
            m = DT_RE.match(raw)
            if not m:
                raise ValueError(raw)
            return int(datetime(*map(int, m.groups()), tzinfo=UTC).timestamp())
        if kind == "d":
            if not DATE_RE.match(raw):
                raise ValueError(raw)
            return _to_days(raw)
        if kind == "n":
            parts = raw.split(",") if op == "=" else [raw]
            if not all(INT_RE.match(p) for p in parts):
                raise ValueError(raw)
            return frozenset(map(int, parts)) if op == "=" else int(raw)
        if kind == "b":
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if op == "~~":
            return re.compile(".*".join(map(re.escape, raw.split("%"))), re.I | re.S)
        return raw.lower() if op == "~" else raw

    @staticmethod
    def _apply(idx, col, kind, op, v):
        """Narrow the row list idx (None = every row) to rows whose column value matches."""
        if op == "*":
            return idx
        get = col.get if isinstance(col, _Lazy) else col.__getitem__
        it = enumerate(col) if idx is None else zip(idx, map(get, idx), strict=True)
        if kind in ("s", "b"):
            if op == "=":
                return [i for i, x in it if x == v]
            if op == "!=":
                if kind == "b":
                    return [i for i, x in it if x is (not v)]
                return [i for i, x in it if x is not None and x != v]
            if op == "~":
                return [i for i, x in it if x is not None and v in x.lower()]
            if op == "~~":
                return [i for i, x in it if x is not None and v.fullmatch(x)]
            if op == "?":
                return [i for i, x in it if x is not None and x != ""]
            return [i for i, x in it if x is None or x == ""]  # "!?"
        if op == "=":
            if isinstance(v, frozenset):
                return [i for i, x in it if x in v]
            return [i for i, x in it if x == v]
        if op == "!=":
            return [i for i, x in it if x != v and x != NULL]
        if op == ">":
            return [i for i, x in it if x > v]
        if op == ">=":
            return [i for i, x in it if x >= v]
        if op == "<":
            return [i for i, x in it if NULL < x < v]
        if op == "<=":
            return [i for i, x in it if NULL < x <= v]
        if op == "?":
            return [i for i, x in it if x != NULL]
        return [i for i, x in it if x == NULL]  # "!?"

    def _parse_sort(self, resource, args):
        sort, order = args.get("sort"), args.get("order")
        if not sort:
            return [("created_at", order == "desc")]
        keys = []
        for part in sort.split(","):
            field, _, direction = part.strip().partition(":")
            direction = direction or "asc"
            if field not in FILTERS[resource] or direction not in ("asc", "desc"):
                raise _invalid("sort", f"{part!r} is not a valid sort")
            keys.append((field, direction == "desc"))
        return keys

    def _select(self, resource, filters, sort, inactive=None):
        t = self.tables[resource]
        fields = {f for f, _, _ in filters}
        plan = list(filters)
        if "archived_at" in FILTERS[resource] and "archived_at" not in fields:
            plan.append(("archived_at", "!?", None))
        if resource == "individual_appointments" and "cancelled_at" not in fields:
            plan.append(("cancelled_at", "!?", None))
        if inactive is not None:
            plan.append(("active", "=", not inactive))
        kinds = FILTERS[resource]
        idx = None
        for field, op, v in plan:
            idx = self._apply(idx, t.column(field), kinds[field], op, v)
        if idx is None:
            idx = list(range(t.n))
        # rows are stored in id order, so a stable sort breaks ties by id
        for field, desc in reversed(sort):
            col = t.column(field)
            if field == "created_at" and not desc and t.created_sorted:
                continue
            if kinds[field] in ("s", "b"):
                get = col.get if isinstance(col, _Lazy) else col.__getitem__

                def key(i, get=get):
                    x = get(i)
                    return (x is None, x.casefold() if isinstance(x, str) else x)
            elif field in NOT_NULL_COLS:
                key = col.__getitem__
            else:

                def key(i, col=col):
                    x = col[i]
                    return BIG if x == NULL else x

            idx.sort(key=key, reverse=desc)
        return idx

    def list_page(self, resource, args, base, path, inactive=None):
        """Body of a list endpoint (one page); raises ApiError."""
        filters = self._parse_filters(resource, args.getlist("q[]"), FILTERS[resource])
        sort = self._parse_sort(resource, args)
        page = _int_arg(args.get("page"), 1)
        per_page = min(_int_arg(args.get("per_page"), 50), 100)
        ck = (resource, inactive, tuple(args.getlist("q[]")), tuple(sort))
        hit = self._cache.get(ck)
        if hit and hit[0] == self.version:
            idx = hit[1]
            self._cache.move_to_end(ck)
        else:
            idx = self._select(resource, filters, sort, inactive)
            self._cache[ck] = (self.version, idx)
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        total = len(idx)
        rows = [self._render(resource, i, base) for i in idx[(page - 1) * per_page : page * per_page]]
        pairs = [(k, v) for k, v in args.items(multi=True) if k != "page"]

        def url(p):
            return f"{base}/{path}?" + urlencode([("page", p)] + pairs)

        links = {"self": url(page)}
        if page * per_page < total:
            links["next"] = url(page + 1)
        if page > 1:
            links["previous"] = url(page - 1)
        return {resource: rows, "total_entries": total, "links": links}

    def fetch(self, resource, record_id, args, base):
        """Body of a single-record endpoint; raises ApiError (404 for unknown or hidden)."""
        t = self.tables[resource]
        i = t.index_of(record_id) if INT_RE.match(record_id or "") else None
        if i is None:
            raise ApiError(404, {"message": "Not found"})
        filters = self._parse_filters(resource, args.getlist("q[]"), SINGLE_FILTERS[resource])
        fields = {f for f, _, _ in filters}
        if "archived_at" in FILTERS[resource] and "archived_at" not in fields:
            filters.append(("archived_at", "!?", None))
        kinds = FILTERS[resource]
        rows = [i]
        for field, op, v in filters:
            rows = self._apply(rows, t.column(field), kinds[field], op, v)
        if not rows:
            raise ApiError(404, {"message": "Not found"})
        return self._render(resource, i, base)

    # ---- public test helpers ------------------------------------------------------------------
    @property
    def user(self):
        """GET /user body."""
        with self._lock:
            return self._render_user(self.base_url)

    def _now(self):
        return int(self._sim.clock())

    def _table(self, resource):
        if resource in ("appointments", "individual_appointment", "appointment"):
            resource = "individual_appointments"
        if resource == "patient":
            resource = "patients"
        return self.tables[resource]

    def _index(self, t, record_id):
        i = t.index_of(record_id)
        if i is None:
            raise KeyError(f"no {t.name} with id {record_id}")
        return i

    def _mutate(self, t, i, fields):
        t.set(i, {"updated_at": self._now(), **fields})
        self.version += 1
        return self._render(t.name, i, self.base_url)

    def _add(self, t, fields):
        now = self._now()
        last = t.cols["id"][-1] if t.n else 10**18
        t.append({"id": last + self._rng.randrange(1, 1 << 22), "created_at": now})
        try:
            return self._mutate(t, t.n - 1, {"created_at": now, "updated_at": now, **fields})
        except Exception:
            for col in t.cols.values():
                col.pop()
            t.ov.pop(t.n, None)
            raise

    def add_patient(self, **fields):
        """Create a patient (created_at = updated_at = now); returns the record as served."""
        with self._lock:
            fields.setdefault("first_name", "New")
            fields.setdefault("last_name", "Patient")
            return self._add(self.patients, fields)

    def update_patient(self, patient_id, **fields):
        """Change a patient's fields and bump updated_at."""
        with self._lock:
            return self._mutate(self.patients, self._index(self.patients, patient_id), fields)

    def archive_patient(self, patient_id):
        """Archive a patient (archived_at = updated_at = now)."""
        with self._lock:
            now = self._now()
            i = self._index(self.patients, patient_id)
            return self._mutate(self.patients, i, {"archived_at": now, "updated_at": now})

    def add_appointment(self, **fields):
        """Book an individual appointment; unspecified links default to this clinic's records."""
        with self._lock:
            f = {
                "patient_id": self._default_patient(),
                "did_not_arrive": False,
                "practitioner_id": self.practitioners.cols["id"][self.active_practitioners[0]],
                "appointment_type_id": self.appointment_types.cols["id"][0],
                "business_id": self.businesses.cols["id"][0],
            }
            f.update(fields)
            f = self._appointment_fields(f)
            starts = _to_ts(f.setdefault("starts_at", (self._now() // 3600 + 24) * 3600))
            minutes = self.appointment_types.base[f["appointment_type"]]["duration_in_minutes"]
            f.setdefault("ends_at", starts + minutes * 60)
            return self._add(self.appointments, f)

    def _default_patient(self):
        arch = self.patients.cols["archived_at"]
        for i in range(self.patients.n - 1, -1, -1):
            if arch[i] == NULL:
                return self.patients.cols["id"][i]
        raise KeyError("no patients")

    def _appointment_fields(self, fields):
        """Map id fields onto the compact columns, checking they exist in this clinic."""
        fields = dict(fields)
        for k in ("patient", "practitioner", "appointment_type", "business"):
            if k in fields:
                fields[k + "_id"] = _to_id(fields.pop(k))
        for k, res in LINKED.items():
            if k in fields:
                i = self.tables[res].index_of(_to_id(fields[k]))
                if i is None:
                    raise KeyError(f"no {res} with id {fields[k]}")
                if k == "patient_id":
                    fields[k] = _to_id(fields[k])
                else:
                    fields[k[:-3]] = i
                    del fields[k]
        if "cancellation_reason" in fields:
            code = fields.pop("cancellation_reason")
            fields["reason"] = 0 if code is None else 1 + [c for c, _ in CANCEL_REASONS].index(int(code))
        fields.pop("cancellation_reason_description", None)
        return fields

    def update_appointment(self, appointment_id, **fields):
        """Change an appointment's fields and bump updated_at."""
        with self._lock:
            t = self.appointments
            return self._mutate(t, self._index(t, appointment_id), self._appointment_fields(fields))

    def cancel_appointment(self, appointment_id, reason=50, note=None):
        """Cancel an appointment (cancelled_at = updated_at = now)."""
        with self._lock:
            t, now = self.appointments, self._now()
            fields = {"cancelled_at": now, "updated_at": now, "cancellation_reason": reason}
            fields = self._appointment_fields(fields)
            if note is not None:
                fields["cancellation_note"] = note
            return self._mutate(t, self._index(t, appointment_id), fields)

    def archive_appointment(self, appointment_id):
        """Archive an appointment (archived_at = updated_at = now)."""
        with self._lock:
            t, now = self.appointments, self._now()
            return self._mutate(t, self._index(t, appointment_id), {"archived_at": now, "updated_at": now})

    def update(self, resource, record_id, **fields):
        """Change any resource's record (practitioners, businesses, ...) and bump updated_at."""
        with self._lock:
            t = self._table(resource)
            if t is self.appointments:
                fields = self._appointment_fields(fields)
            return self._mutate(t, self._index(t, record_id), fields)

    def patient_ids(self, include_archived=True):
        """Ids (strings) of the clinic's patients, in creation order."""
        with self._lock:
            return self._ids_of(self.patients, include_archived, True)

    def appointment_ids(self, include_archived=True, include_cancelled=True):
        """Ids (strings) of the clinic's individual appointments, in creation order."""
        with self._lock:
            return self._ids_of(self.appointments, include_archived, include_cancelled)

    @staticmethod
    def _ids_of(t, include_archived, include_cancelled):
        c = t.cols
        arch, canc = c.get("archived_at"), c.get("cancelled_at")
        return [
            str(c["id"][i])
            for i in range(t.n)
            if (include_archived or arch[i] == NULL)
            and (include_cancelled or canc is None or canc[i] == NULL)
        ]

    def ids(self, resource):
        """Ids (strings) of every record of a resource, hidden ones included, in creation order."""
        with self._lock:
            return [str(i) for i in self._table(resource).cols["id"]]

    def count(self, resource):
        """Number of records of a resource, hidden ones included."""
        with self._lock:
            return self._table(resource).n

    def get(self, resource, record_id):
        """The full JSON record as served (archived ones too), or None for an unknown id."""
        with self._lock:
            t = self._table(resource)
            i = t.index_of(record_id)
            return None if i is None else self._render(t.name, i, self.base_url)


def _int_arg(value, default):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return default
    return n if n >= 1 else default


@dataclasses.dataclass
class _Fault:
    kind: str
    count: int | None  # None: until cleared
    path: str | None
    key: str | None
    after: int
    params: dict


FAULT_KINDS = ("latency", "rate_limit", "server_error", "timeout", "malformed_json", "wrong_shape")


class Simulator:
    """In-memory fake Cliniko; a WSGI app (call it with environ, start_response)."""

    def __init__(
        self,
        patients=651,
        appointments=296,
        seed=1,
        keys=None,
        latency_ms=0,
        rate_limit_per_minute=200,
        *,
        now=None,
    ):
        # now: fixes the simulated clock (datetime or epoch) - data is then reproducible anywhere;
        # by default generated data ends at today's 00:00 UTC and the clock is real time.
        self.n_patients, self.n_appointments, self.seed = int(patients), int(appointments), seed
        self.keys = None if keys is None else set(keys)
        self.latency_ms = latency_ms
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_limit_window = 60.0  # seconds; tests may shrink it
        if now is None:
            self._offset = 0.0
            self.anchor = int(time.time()) // DAY * DAY
        else:
            self.anchor = _to_ts(now)
            self._offset = self.anchor - time.time()
        self._lock = threading.RLock()
        self._accounts = {}
        self._revoked = set()
        self._faults = []
        self._hooks = []
        self._windows = collections.defaultdict(collections.deque)
        self.request_log = []
        self.hook_errors = []

    def clock(self):
        """Simulated wall clock (Unix seconds)."""
        return time.time() + self._offset

    def account(self, api_key):
        """The account for a key, created on first use."""
        with self._lock:
            acc = self._accounts.get(api_key)
            if acc is None:
                acc = self._accounts[api_key] = Account(self, api_key)
            return acc

    def revoke_key(self, api_key):
        """Make a key answer 401 from now on."""
        with self._lock:
            self._revoked.add(api_key)

    def inject(self, fault, count=1, *, path=None, key=None, after=0, **params):
        """Queue a fault for the next `count` matching requests (count=None: until cleared)."""
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._faults.append(_Fault(fault, count, path, key, int(after or 0), params))

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def set_rate_limit(self, per_minute):
        """Requests per rolling window per account (None or 0: unlimited)."""
        with self._lock:
            self.rate_limit_per_minute = per_minute

    def reset_rate_limits(self):
        """Forget every account's rolling window."""
        with self._lock:
            self._windows.clear()

    def add_hook(self, fn):
        """Call fn(api_key, path, query_string, status) after each API request, before the
        response is sent (path is the full request path, e.g. "/au1/v1/patients")."""
        self._hooks.append(fn)

    def max_requests_in_window(self, api_key=None, window_seconds=60):
        """Most non-429 requests (of one key, or all) seen in any rolling window."""
        with self._lock:
            ts = sorted(
                e[0] for e in self.request_log if e[5] != 429 and (api_key is None or e[2] == api_key)
            )
        best, lo = 0, 0
        for hi, t in enumerate(ts):
            while t - ts[lo] >= window_seconds:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def reset_stats(self):
        """Empty request_log (rate-limit windows are kept: see reset_rate_limits)."""
        with self._lock:
            self.request_log.clear()
            self.hook_errors.clear()

    # ---- HTTP ---------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/_sim" or request.path.startswith("/_sim/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _json(self, body, status=200, headers=None):
        r = Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)
        r.headers["Date"] = http_date(self.clock())
        return r

    def _text(self, text, status, mimetype="text/plain", headers=None):
        r = Response(text, status=status, mimetype=mimetype, headers=headers)
        r.headers["Date"] = http_date(self.clock())
        return r

    def _api_key(self, request):
        auth = request.headers.get("Authorization", "")
        scheme, _, data = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user = base64.b64decode(data.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None

    def _api(self, request):
        mono, wall = time.monotonic(), time.time()
        path, query = request.path, request.query_string.decode("latin-1")
        key = self._api_key(request)
        try:
            response = self._serve(request, key)
        except Exception:  # a simulator bug must still answer, like a real 500
            traceback.print_exc()
            response = self._json({"message": "Internal Server Error"}, 500)
        with self._lock:
            self.request_log.append(
                (mono, wall, key, request.method, path + ("?" + query if query else ""), response.status_code)
            )
        for fn in list(self._hooks):
            try:
                fn(key, path, query, response.status_code)
            except Exception as e:  # reported through hook_errors, never to the client
                self.hook_errors.append(e)
                traceback.print_exc()
        return response

    def _serve(self, request, key):
        m = URL_RE.match(request.path)
        if not m:
            return self._json({"message": "Not found"}, 404)
        shard, sub = m.group(1), (m.group(2) or "/")
        if self.latency_ms:  # network + server time: every answer is slow, errors included
            time.sleep(self.latency_ms / 1000.0)
        with self._lock:
            if (
                key is None
                or key in self._revoked
                or (self.keys is not None and key not in self.keys)
                or shard_of(key) != shard  # a key sent to another shard is unknown there
            ):
                realm = {"WWW-Authenticate": 'Basic realm="Application"'}
                return self._text("HTTP Basic: Access denied.", 401, headers=realm)
        if not UA_EMAIL_RE.search(request.headers.get("User-Agent", "")):
            return self._text("", 403)
        accept = request.headers.get("Accept", "")
        if accept and "json" not in accept and "*/*" not in accept:
            return self._json({"message": "Not acceptable"}, 406)
        with self._lock:
            acc = self.account(key)
            limited = self._limited(key)
            if limited is not None:
                return self._too_many(limited)
            delay, fault = self._take_faults(key, request.path)
            if fault is not None and fault.kind == "rate_limit":
                return self._too_many(time.time() + float(fault.params.get("reset_seconds", 1)))
            self._windows[key].append(time.monotonic())
        if fault is not None and fault.kind == "timeout":
            delay += float(fault.params.get("seconds", 10))
        if delay > 0:
            time.sleep(delay)
        if fault is not None and fault.kind == "server_error":
            status = int(fault.params.get("status", 500))
            if status == 500:
                return self._json({"message": "Internal Server Error"}, 500)
            return self._text(f"<html><body><h1>{status} error</h1></body></html>", status, "text/html")
        if fault is not None and fault.kind == "malformed_json":
            return self._text('{"patients": [{"id": "1", "first_name": "Trunc', 200, "application/json")
        if fault is not None and fault.kind == "wrong_shape":
            return self._json({"unexpected": True})
        if request.method != "GET":
            return self._json({"message": "Method not allowed"}, 405, headers={"Allow": "GET"})
        base = f"{request.host_url.rstrip('/')}/{shard}/v1"
        parts = sub.strip("/").split("/")
        try:
            with self._lock:
                acc.base_url = base
                if parts == ["user"]:
                    return self._json(acc._render_user(base))
                if len(parts) == 1 and parts[0] in RESOURCES:
                    inactive = False if parts[0] == "practitioners" else None
                    return self._json(acc.list_page(parts[0], request.args, base, parts[0], inactive))
                if parts == ["practitioners", "inactive"]:
                    return self._json(
                        acc.list_page("practitioners", request.args, base, "practitioners/inactive", True)
                    )
                if len(parts) == 2 and parts[0] in RESOURCES:
                    return self._json(acc.fetch(parts[0], parts[1], request.args, base))
        except ApiError as e:
            return self._json(e.body, e.status)
        return self._json({"message": "Not found"}, 404)

    def _limited(self, key):
        """None if the key may make a request now, else the Unix time a slot frees."""
        limit = self.rate_limit_per_minute
        if not limit:
            return None
        dq, now = self._windows[key], time.monotonic()
        while dq and dq[0] <= now - self.rate_limit_window:
            dq.popleft()
        if len(dq) < limit:
            return None
        return time.time() + (dq[len(dq) - limit] + self.rate_limit_window - now)

    def _too_many(self, reset):
        return self._json(
            {"message": "Rate limit exceeded. Try again later."},
            429,
            headers={"X-RateLimit-Reset": str(math.ceil(reset))},
        )

    def _take_faults(self, key, path):
        """(extra latency seconds, the response fault to apply or None); consumes what fires."""
        delay, chosen = 0.0, None
        for f in self._faults:
            if (f.path and f.path not in path) or (f.key is not None and f.key != key):
                continue
            if f.kind != "latency" and chosen is not None:
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.kind == "latency":
                delay += float(f.params.get("ms", 1000)) / 1000.0
            else:
                chosen = f
            if f.count is not None:
                f.count -= 1
        self._faults = [f for f in self._faults if f.count is None or f.count > 0]
        return delay, chosen

    def _control(self, request):
        parts = request.path.strip("/").split("/")[1:]
        body = request.get_json(silent=True) or {}
        method = request.method
        try:
            if parts == ["faults"] and method == "POST":
                body = dict(body)
                kind = body.pop("fault")
                count = body.pop("count", 1)
                self.inject(
                    kind,
                    count,
                    path=body.pop("path", None),
                    key=body.pop("key", None),
                    after=body.pop("after", 0),
                    **body,
                )
                return self._json({"ok": True}, 201)
            if parts == ["faults"] and method == "DELETE":
                self.clear_faults()
                return self._json({"ok": True})
            if parts == ["stats"] and method == "GET":
                key = request.args.get("key")
                with self._lock:
                    log = [e for e in self.request_log if key is None or e[2] == key]
                by_status = collections.Counter(str(e[5]) for e in log)
                return self._json(
                    {
                        "requests": len(log),
                        "by_status": by_status,
                        "max_per_minute": self.max_requests_in_window(key, 60),
                    }
                )
            if parts == ["stats"] and method == "DELETE":
                self.reset_stats()
                return self._json({"ok": True})
            if parts == ["rate_limit"] and method == "POST":
                self.set_rate_limit(body.get("per_minute"))
                return self._json({"ok": True, "per_minute": self.rate_limit_per_minute})
            if len(parts) >= 2 and parts[0] == "accounts":
                return self._control_account(request, parts[1], parts[2:], body)
        except (KeyError, IndexError) as e:
            return self._json({"message": f"Not found: {e}"}, 404)
        except (ValueError, TypeError) as e:
            return self._json({"message": f"Bad request: {e}"}, 400)
        return self._json({"message": "Not found"}, 404)

    def _control_account(self, request, key, rest, body):
        acc = self.account(key)
        method = request.method
        with self._lock:
            acc.base_url = f"{request.host_url.rstrip('/')}/{acc.shard}/v1"
        if rest == [] and method == "GET":
            return self._json(
                {
                    "key": key,
                    "shard": acc.shard,
                    "user": acc.user,
                    "counts": {r: acc.count(r) for r in RESOURCES},
                }
            )
        if rest == ["revoke"] and method == "POST":
            self.revoke_key(key)
            return self._json({"ok": True})
        names = {
            "patients": "patient",
            "appointments": "appointment",
            "individual_appointments": "appointment",
        }
        if not rest or rest[0] not in names:
            raise KeyError(request.path)
        noun = names[rest[0]]
        if len(rest) == 1 and method == "POST":
            return self._json(getattr(acc, f"add_{noun}")(**body), 201)
        if len(rest) == 2 and method == "PATCH":
            return self._json(getattr(acc, f"update_{noun}")(rest[1], **body))
        if len(rest) == 3 and method == "POST" and rest[2] in ("archive", "cancel"):
            if rest[2] == "cancel" and noun != "appointment":
                raise KeyError(request.path)
            return self._json(getattr(acc, f"{rest[2]}_{noun}")(rest[1], **body))
        raise KeyError(request.path)


class _Handler(WSGIRequestHandler):
    def send_response(self, code, message=None):
        # the app sends Date itself (from the simulated clock); http.server would add a second one
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())


class _QuietHandler(_Handler):
    def log_request(self, *args, **kwargs):
        pass


class SimulatorServer:
    """Serves a Simulator over real HTTP from a background daemon thread."""

    def __init__(self, simulator, host="127.0.0.1", port=0):
        self.simulator, self.host = simulator, host
        self._server = make_server(host, port, simulator, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.base_url = f"http://{host}:{self.port}/{{shard}}/v1"
        self._thread = None

    def url(self, shard="au1"):
        """Base URL with the shard filled in."""
        return self.base_url.replace("{shard}", shard)

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="cliniko-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(host="127.0.0.1", port=8900, **simulator_kwargs):
    """Run a simulator in the foreground until interrupted."""
    sim = Simulator(**simulator_kwargs)
    server = make_server(host, port, sim, threaded=True, request_handler=_Handler)
    print(
        f"Cliniko simulator listening: CLINIKO_BASE_URL=http://{host}:{server.server_port}/{{shard}}/v1",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    serve(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8900)
