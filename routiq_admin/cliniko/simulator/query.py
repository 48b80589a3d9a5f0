"""List and single-record queries: q[] filters, sort, paging and the selection cache."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode

from .spec import DATE_RE, DT_RE, FILTERS, INT_RE, OP_RE, OPS, SINGLE_FILTERS, ApiError, _invalid
from .store import BIG, NULL, _Lazy, _to_days

NOT_NULL_COLS = {"id", "created_at", "updated_at", "starts_at", "ends_at", "patient_id"}


def _int_arg(value, default):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return default
    return n if n >= 1 else default


class QueryMixin:
    """Account methods that answer list and single-record endpoints."""

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
