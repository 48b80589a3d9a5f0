"""Rendering of stored records as the JSON shapes Cliniko's API serves."""

from __future__ import annotations

import random
import time
from datetime import timedelta

from .catalog import CANCEL_REASONS, FIRST_F, OCCUPATIONS, REASON_DESC, STREETS
from .generate import _mix
from .store import EPOCH_DATE, NULL, _bool


def _iso(ts):
    return None if ts == NULL else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _iso_date(days):
    return None if days == NULL else (EPOCH_DATE + timedelta(days=days)).isoformat()


def _link(url):
    return {"links": {"self": url}}


class RenderMixin:
    """Account methods that turn a row into the record as served."""

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
