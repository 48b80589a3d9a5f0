"""Compact column storage for one resource's records, and the conversions into its columns."""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime

NULL = -(2**63)  # null marker in integer columns (smaller than every real value)
BIG = 2**63 - 1
DAY = 86400
EPOCH_DATE = date(1970, 1, 1)


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
