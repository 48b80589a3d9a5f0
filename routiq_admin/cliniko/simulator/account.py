"""One key's account: its clinic (generated, rendered, queried) and the helpers tests use to change it."""

from __future__ import annotations

import collections
import random

from .catalog import CANCEL_REASONS, REGIONS
from .generate import GenerateMixin, _mix
from .query import QueryMixin
from .render import RenderMixin
from .spec import LINKED, shard_of
from .store import NULL, _to_id, _to_ts


class Account(GenerateMixin, RenderMixin, QueryMixin):
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
