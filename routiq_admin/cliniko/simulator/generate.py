"""Deterministic generation of a clinic's records from (seed, key) into compact tables."""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import random
import unicodedata
from array import array

from .catalog import APPOINTMENT_TYPES, DOMAINS, FIRST, LAST, NICKS, PRACTITIONERS, STREETS
from .store import DAY, NULL, _bool_lazy, _Table

M64 = 2**64 - 1


def _mix(*parts):
    """Stable 64-bit hash of the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


class GenerateMixin:
    """Account methods that build its tables and the generated patient fields."""

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
