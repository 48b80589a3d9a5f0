"""The fake Cliniko server, exercised over real HTTP and checked against Cliniko's OpenAPI document."""

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
import yaml

from routiq_admin.cliniko.simulator import Simulator, SimulatorServer, shard_of
from tests.specs import CLINIKO_OPENAPI, require_spec

KEY = "MS0xLTExMjM0NTY3-au4"
UA = "Routiq Admin tests (dev@example.com)"
DT_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
EMAIL_PATTERN = "^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Z0-9.-]+\\.[A-Z]{2,63}$"
LIST_PATHS = {
    "patients": "/patients",
    "individual_appointments": "/individual_appointments",
    "practitioners": "/practitioners",
    "appointment_types": "/appointment_types",
    "businesses": "/businesses",
}
# link objects Cliniko sends only when the relation exists
OPTIONAL = {
    "patients": {"concession_type", "latest_booking", "merged_with_patient", "referring_doctor"},
    "individual_appointments": {"patient_case", "repeated_from"},
    "appointment_types": {"billable_item", "product", "treatment_note_template"},
    "practitioners": set(),
    "businesses": set(),
    "user": set(),
}


# ---- helpers ---------------------------------------------------------------------------------
def iso(ts):
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(value):
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def link_id(obj):
    return obj["links"]["self"].rsplit("/", 1)[1]


class Client:
    """A requests session speaking to the simulator like the real client would."""

    def __init__(self, server, key=KEY, shard=None, ua=UA):
        self.s = requests.Session()
        self.s.auth = (key, "")
        self.s.headers.update({"User-Agent": ua, "Accept": "application/json"})
        self.base = server.url(shard or shard_of(key))

    def get(self, path, params=None, **kw):
        kw.setdefault(
            "timeout", 60
        )  # generous: the 100k clinic first sorts 300k rows, slow on a loaded machine
        return self.s.get(self.base + path, params=params, **kw)

    def ok(self, path, params=None):
        r = self.get(path, params)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def all(self, path, params=(), key=None):
        """Every record of a list endpoint, following links.next."""
        key = key or path.strip("/").split("/")[0]
        body = self.ok(path, list(params) + [("per_page", "100")])
        rows = list(body[key])
        while "next" in body["links"]:
            r = self.s.get(body["links"]["next"], timeout=10)
            assert r.status_code == 200
            body = r.json()
            rows += body[key]
        return rows

    def ids(self, path, params=()):
        return [r["id"] for r in self.all(path, params)]


@pytest.fixture
def sim():
    return Simulator(patients=120, appointments=240, seed=11)


@pytest.fixture
def server(sim):
    with SimulatorServer(sim) as srv:
        yield srv


@pytest.fixture
def api(server):
    return Client(server)


@pytest.fixture
def acc(sim):
    return sim.account(KEY)


# ---- OpenAPI validation ------------------------------------------------------------------------
def find_spec():
    """Cliniko's OpenAPI document (CLINIKO_OPENAPI_PATH, else ../shared/spec); skips when absent."""
    return require_spec(CLINIKO_OPENAPI)


def to_json_schema(node, components):
    """OpenAPI 3.0 schema -> JSON Schema draft 4: inline $refs, turn `nullable` into null types."""
    if isinstance(node, list):
        return [to_json_schema(x, components) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {}
    for k, v in node.items():
        if k == "properties":
            out[k] = {name: to_json_schema(s, components) for name, s in v.items()}
        elif k in ("type", "enum", "required", "pattern", "format") or not k.startswith("x-"):
            if k not in ("example", "description", "externalDocs", "deprecated", "nullable"):
                out[k] = to_json_schema(v, components)
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if out.get("pattern") == EMAIL_PATTERN:  # documented exception: emails are lower case in practice
        out["pattern"] = "(?i)" + EMAIL_PATTERN
    return out


def format_checker():
    fc = jsonschema.FormatChecker(())
    fc.checks("date-time")(lambda v: not isinstance(v, str) or bool(DT_RE.match(v)))
    fc.checks("date")(lambda v: not isinstance(v, str) or bool(re.match(r"^\d{4}-\d\d-\d\d$", v)))
    fc.checks("int64")(lambda v: not isinstance(v, str) or (v.isdigit() and int(v) < 2**63))
    fc.checks("uri")(lambda v: not isinstance(v, str) or v.startswith(("http://", "https://")))
    fc.checks("ipv4")(lambda v: not isinstance(v, str) or bool(re.match(r"^(\d{1,3}\.){3}\d{1,3}$", v)))
    fc.checks("decimal")(lambda v: not isinstance(v, str) or bool(re.match(r"^-?\d+(\.\d+)?$", v)))
    return fc


@pytest.fixture(scope="module")
def schemas():
    """name -> (validator, record schema properties) for each response checked."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(find_spec().read_text(), Loader=loader)
    components = spec["components"]["schemas"]
    appointment = components["IndividualAppointment"]["properties"]["cancellation_reason_description"]
    appointment["enum"] = [*appointment["enum"], ""]  # documented exception: "" when not cancelled
    fc = format_checker()
    out = {}
    for path in [*LIST_PATHS.values(), "/practitioners/inactive"]:
        for p in (path, path if path.endswith("inactive") else path + "/{id}"):
            schema = spec["paths"][p]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            out[p] = jsonschema.Draft4Validator(to_json_schema(schema, components), format_checker=fc)
    user = spec["paths"]["/user"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    out["/user"] = jsonschema.Draft4Validator(to_json_schema(user, components), format_checker=fc)
    out["props"] = {
        "patients": set(components["Patient"]["properties"]),
        "individual_appointments": set(components["IndividualAppointment"]["properties"]),
        "practitioners": set(components["Practitioner"]["properties"]),
        "appointment_types": set(components["AppointmentType"]["properties"]),
        "businesses": set(components["Business"]["properties"]),
        "user": set(components["User"]["properties"]),
    }
    return out


def assert_valid(validator, body):
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def assert_complete(props, resource, record):
    missing = props[resource] - set(record) - OPTIONAL[resource]
    assert not missing, f"{resource} record lacks {sorted(missing)}"


def test_every_response_matches_the_openapi_schema(api, schemas):
    everything = [("q[]", "archived_at:*"), ("per_page", "100")]
    for resource, path in LIST_PATHS.items():
        params = [p for p in everything if resource != "practitioners" or p[0] != "q[]"]
        if resource == "individual_appointments":
            params.append(("q[]", "cancelled_at:*"))
        body = api.ok(path, params)
        assert_valid(schemas[path], body)
        assert set(body) == {resource, "total_entries", "links"} and body[resource]
        for record in body[resource]:
            assert_complete(schemas["props"], resource, record)
        sample = body[resource][:6] + [r for r in body[resource] if r.get("archived_at")][:2]
        sample += [r for r in body[resource] if r.get("cancelled_at")][:2]
        for record in sample:
            one = api.ok(
                f"{path}/{record['id']}", [("q[]", "archived_at:*")] if resource != "practitioners" else None
            )
            assert one == record
            assert_valid(schemas[path + "/{id}"], one)
        if resource == "individual_appointments":
            assert any(r["cancelled_at"] for r in body[resource])
            assert any(r["did_not_arrive"] for r in body[resource])
            assert any(r["archived_at"] for r in body[resource])
    active = api.ok("/practitioners")["practitioners"]
    assert active and all(p["active"] is True for p in active)
    inactive = api.ok("/practitioners/inactive")
    assert_valid(schemas["/practitioners/inactive"], inactive)
    assert inactive["practitioners"] and all(p["active"] is False for p in inactive["practitioners"])
    user = api.ok("/user")
    assert_valid(schemas["/user"], user)
    assert_complete(schemas["props"], "user", user)


def test_the_schema_validation_is_strict(api, schemas):
    patient = api.ok("/patients", {"per_page": 1})["patients"][0]
    appointment = api.ok("/individual_appointments", {"per_page": 1})["individual_appointments"][0]
    validator = schemas["/patients/{id}"]
    assert_valid(validator, dict(patient, email="Jane.DOE@Example.COM"))  # the case-insensitive exception
    for bad in (
        {"id": int(patient["id"])},
        {"email": "not an email"},
        {"created_at": "2024-01-01 10:00:00"},
        {"patient_phone_numbers": [{"phone_type": "Pager"}]},
        {"first_name": None},
    ):
        assert list(validator.iter_errors(dict(patient, **bad))), bad
    validator = schemas["/individual_appointments/{id}"]
    assert_valid(validator, dict(appointment, cancellation_reason_description=""))
    assert list(validator.iter_errors(dict(appointment, cancellation_reason_description="Bored")))
    assert list(validator.iter_errors(dict(appointment, cancellation_reason="10")))


# ---- generated data ----------------------------------------------------------------------------
def test_generated_clinic_is_realistic_and_consistent():
    sim = Simulator(patients=2000, appointments=3000, seed=5)
    acc = sim.account("realism-uk2")
    now = time.time()
    patients = [acc.get("patients", i) for i in acc.patient_ids()]
    appts = [acc.get("appointments", i) for i in acc.appointment_ids()]
    assert len(patients) == 2000 and len(appts) == 3000
    ids = [r["id"] for r in patients + appts]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{19}", i) and int(i) < 2**63 for i in ids)
    for r in patients + appts:
        assert ts(r["created_at"]) <= ts(r["updated_at"]) <= now
        assert r["links"]["self"].endswith("/" + r["id"])
    archived = sum(1 for p in patients if p["archived_at"]) / len(patients)
    assert 0.03 < archived < 0.07
    assert all(p["email"] is None or p["email"] == p["email"].lower() for p in patients)
    assert sum(1 for p in patients if p["email"]) > 1800
    assert sum(1 for p in patients if p["date_of_birth"]) > 1800
    assert all(p["country_code"] == "GB" for p in patients)
    assert all(
        isinstance(p["patient_phone_numbers"], list) for p in patients[:50] if p["patient_phone_numbers"]
    )
    cancelled = [a for a in appts if a["cancelled_at"]]
    assert 0.06 < len(cancelled) / len(appts) < 0.10
    assert 0.03 < sum(a["did_not_arrive"] for a in appts) / len(appts) < 0.07
    assert 0.02 < sum(1 for a in appts if a["archived_at"]) / len(appts) < 0.045
    for a in appts:
        if a["cancelled_at"]:
            assert isinstance(a["cancellation_reason"], int) and a["cancellation_reason_description"]
        else:
            assert a["cancellation_reason"] is None and a["cancellation_reason_description"] == ""
        assert ts(a["starts_at"]) < ts(a["ends_at"])
        assert a["repeat_rule"] == {}
    starts = [ts(a["starts_at"]) for a in appts]
    assert now - 385 * 86400 < min(starts) < now - 330 * 86400
    assert now + 45 * 86400 < max(starts) < now + 92 * 86400
    patient_ids = set(acc.patient_ids())
    refs = {
        "practitioners": {link_id(a["practitioner"]) for a in appts},
        "appointment_types": {link_id(a["appointment_type"]) for a in appts},
        "businesses": {link_id(a["business"]) for a in appts},
    }
    assert {link_id(a["patient"]) for a in appts} <= patient_ids
    for resource, wanted in refs.items():
        assert all(acc.get(resource, i) for i in wanted)
    businesses = [acc.get("businesses", i) for i in refs["businesses"]]
    assert len(businesses) == 2 and all(b["time_zone_identifier"] == "Europe/London" for b in businesses)
    assert acc.count("practitioners") == 5 and acc.count("appointment_types") == 6
    active = [acc.get("practitioners", i)["active"] for i in acc.ids("practitioners")]
    assert len(active) == 5 and 1 <= active.count(False) <= 2
    by_name = {p["label"]: p for p in patients}
    assert all(a["patient_name"] in by_name for a in appts)


def test_same_seed_and_key_give_the_same_data_and_other_keys_differ():
    now = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    a = Simulator(patients=50, appointments=80, seed=3, now=now).account("k1-au1")
    b = Simulator(patients=50, appointments=80, seed=3, now=now).account("k1-au1")
    assert a.patient_ids() == b.patient_ids() and a.appointment_ids() == b.appointment_ids()
    for pid in a.patient_ids()[::7]:
        assert a.get("patients", pid) == b.get("patients", pid)
    for aid in a.appointment_ids()[::9]:
        assert a.get("appointments", aid) == b.get("appointments", aid)
    assert a.user == b.user
    other = Simulator(patients=50, appointments=80, seed=3, now=now).account("k2-au1")
    assert not set(other.patient_ids()) & set(a.patient_ids())
    assert other.user["id"] != a.user["id"]
    reseeded = Simulator(patients=50, appointments=80, seed=4, now=now).account("k1-au1")
    assert reseeded.patient_ids() != a.patient_ids()
    latest = max(ts(a.get("patients", p)["updated_at"]) for p in a.patient_ids())
    assert latest <= now.timestamp()


# ---- paging --------------------------------------------------------------------------------------
def test_paging_links_and_total_entries(api, acc, server):
    expected = acc.patient_ids(include_archived=False)
    page1 = api.ok("/patients")
    assert page1["total_entries"] == len(expected) and len(page1["patients"]) == 50
    assert "previous" not in page1["links"]
    assert page1["links"]["self"].startswith(f"http://127.0.0.1:{server.port}/au4/v1/patients?")
    seen, body, pages = [], page1, 1
    while True:
        seen += [p["id"] for p in body["patients"]]
        if "next" not in body["links"]:
            break
        nxt = body["links"]["next"]
        body = api.s.get(nxt, timeout=10).json()
        pages += 1
        assert body["links"]["self"] == nxt
        assert parse_qs(urlsplit(body["links"]["previous"]).query)["page"] == [str(pages - 1)]
    assert pages == -(-len(expected) // 50)
    assert seen == expected  # default order: created_at asc, i.e. creation (id) order


def test_links_keep_every_query_parameter(api):
    params = [
        ("q[]", "updated_at:>=2000-01-01T00:00:00Z"),
        ("q[]", "archived_at:*"),
        ("sort", "updated_at:desc"),
        ("per_page", "7"),
    ]
    body = api.ok("/patients", params + [("page", "2")])
    for name in ("self", "next", "previous"):
        query = parse_qs(urlsplit(body["links"][name]).query)
        assert query["q[]"] == ["updated_at:>=2000-01-01T00:00:00Z", "archived_at:*"]
        assert query["sort"] == ["updated_at:desc"] and query["per_page"] == ["7"]
        assert query["page"] == [{"self": "2", "next": "3", "previous": "1"}[name]]
    assert "%5B%5D" in body["links"]["next"]


def test_per_page_is_capped_at_100_and_defaults_to_50(api):
    assert len(api.ok("/patients", {"per_page": 500})["patients"]) == 100
    assert len(api.ok("/patients", {"per_page": 100})["patients"]) == 100
    assert len(api.ok("/patients")["patients"]) == 50
    assert len(api.ok("/patients", {"per_page": 3})["patients"]) == 3


def test_a_page_past_the_end_is_empty(api):
    body = api.ok("/patients", {"page": 99})
    assert body["patients"] == [] and body["total_entries"] > 0
    assert "next" not in body["links"] and "previous" in body["links"]


# ---- filters ---------------------------------------------------------------------------------------
def test_archived_and_cancelled_are_left_out_unless_asked_for(api, acc):
    all_p = acc.patient_ids()
    live_p = acc.patient_ids(include_archived=False)
    assert len(live_p) < len(all_p)
    assert api.ids("/patients") == live_p
    assert api.ids("/patients", [("q[]", "archived_at:*")]) == all_p
    assert set(api.ids("/patients", [("q[]", "archived_at:?")])) == set(all_p) - set(live_p)
    every = acc.appointment_ids()
    live = acc.appointment_ids(include_archived=False, include_cancelled=False)
    not_archived = acc.appointment_ids(include_archived=False)
    not_cancelled = acc.appointment_ids(include_cancelled=False)
    path = "/individual_appointments"
    assert api.ids(path) == live
    assert api.ids(path, [("q[]", "cancelled_at:*")]) == not_archived
    assert api.ids(path, [("q[]", "archived_at:*")]) == not_cancelled
    assert api.ids(path, [("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")]) == every
    cancelled = api.all(path, [("q[]", "cancelled_at:?")])
    assert cancelled and all(a["cancelled_at"] and not a["archived_at"] for a in cancelled)
    assert len(api.ids("/appointment_types")) == 5
    assert len(api.ids("/appointment_types", [("q[]", "archived_at:*")])) == 6


def test_datetime_operators(api):
    rows = api.all("/patients", [("q[]", "archived_at:*")])
    pivot = sorted(r["updated_at"] for r in rows)[len(rows) // 2]
    cases = {
        ">": lambda v: v > pivot,
        ">=": lambda v: v >= pivot,
        "<": lambda v: v < pivot,
        "<=": lambda v: v <= pivot,
    }
    for op, pred in cases.items():
        got = api.ids("/patients", [("q[]", f"updated_at:{op}{pivot}"), ("q[]", "archived_at:*")])
        assert got == [r["id"] for r in rows if pred(r["updated_at"])], op
    assert api.ids("/patients", [("q[]", "archived_at:!?")]) == api.ids("/patients")
    window = api.all(
        "/individual_appointments",
        [("q[]", f"starts_at:>={iso(time.time() - 30 * 86400)}"), ("q[]", f"starts_at:<{iso(time.time())}")],
    )
    assert window and all(time.time() - 30 * 86400 - 1 <= ts(a["starts_at"]) < time.time() for a in window)


def test_date_operators(api):
    rows = api.all("/patients")
    dob = next(r["date_of_birth"] for r in rows if r["date_of_birth"])
    assert api.ids("/patients", [("q[]", f"date_of_birth:={dob}")]) == [
        r["id"] for r in rows if r["date_of_birth"] == dob
    ]
    assert api.ids("/patients", [("q[]", f"date_of_birth:>{dob}")]) == [
        r["id"] for r in rows if r["date_of_birth"] and r["date_of_birth"] > dob
    ]
    assert api.ids("/patients", [("q[]", "date_of_birth:!?")]) == [
        r["id"] for r in rows if r["date_of_birth"] is None
    ]


def test_numeric_operators_and_id_lists(api, acc):
    rows = api.all("/patients", [("q[]", "archived_at:*")])
    archived = next(r["id"] for r in rows if r["archived_at"])
    wanted = [rows[3]["id"], rows[40]["id"], archived]
    q = "id:=" + ",".join(wanted)
    assert sorted(api.ids("/patients", [("q[]", q), ("q[]", "archived_at:*")])) == sorted(wanted)
    assert sorted(api.ids("/patients", [("q[]", q)])) == sorted(wanted[:2])
    assert api.ids("/patients", [("q[]", f"id:!={rows[0]['id']}"), ("q[]", "archived_at:*")]) == [
        r["id"] for r in rows[1:]
    ]
    assert api.ids("/patients", [("q[]", f"id:>{rows[10]['id']}"), ("q[]", "archived_at:*")]) == [
        r["id"] for r in rows[11:]
    ]
    appts = api.all("/individual_appointments")
    pid = link_id(appts[0]["patient"])
    assert api.ids("/individual_appointments", [("q[]", f"patient_id:={pid}")]) == [
        a["id"] for a in appts if link_id(a["patient"]) == pid
    ]
    prac = link_id(appts[0]["practitioner"])
    assert api.ids("/individual_appointments", [("q[]", f"practitioner_id:={prac}")]) == [
        a["id"] for a in appts if link_id(a["practitioner"]) == prac
    ]
    assert api.ids("/individual_appointments", [("q[]", "repeated_from_id:?")]) == []


def test_string_operators(api):
    rows = api.all("/patients")
    name = rows[0]["first_name"]
    assert api.ids("/patients", [("q[]", f"first_name:={name}")]) == [
        r["id"] for r in rows if r["first_name"] == name
    ]
    assert api.ids("/patients", [("q[]", f"first_name:!={name}")]) == [
        r["id"] for r in rows if r["first_name"] != name
    ]
    part = next(r["email"] for r in rows if r["email"]).split("@")[0][1:4]
    assert api.ids("/patients", [("q[]", f"email:~{part.upper()}")]) == [
        r["id"] for r in rows if r["email"] and part in r["email"]
    ]
    first = rows[0]["first_name"]
    assert api.ids("/patients", [("q[]", f"first_name:~{first[:3].upper()}")]) == [
        r["id"] for r in rows if first[:3].lower() in r["first_name"].lower()
    ]
    prefix = rows[2]["last_name"][:2]
    assert api.ids("/patients", [("q[]", f"last_name:~~{prefix}%")]) == [
        r["id"] for r in rows if r["last_name"].lower().startswith(prefix.lower())
    ]
    assert api.ids("/patients", [("q[]", "preferred_first_name:?")]) == [
        r["id"] for r in rows if r["preferred_first_name"]
    ]
    assert api.ids("/patients", [("q[]", "old_reference_id:!?")]) == [
        r["id"] for r in rows if not r["old_reference_id"]
    ]
    assert api.ids("/appointment_types", [("q[]", "category:=Consultation")]) and all(
        t["category"] == "Consultation"
        for t in api.all("/appointment_types", [("q[]", "category:=Consultation")])
    )


def test_boolean_operators(api):
    appts = api.all("/individual_appointments")
    dna = api.all("/individual_appointments", [("q[]", "did_not_arrive:=true")])
    assert dna and [a["id"] for a in dna] == [a["id"] for a in appts if a["did_not_arrive"]]
    rows = api.all("/patients")
    assert api.ids("/patients", [("q[]", "accepted_privacy_policy:!=true")]) == [
        r["id"] for r in rows if r["accepted_privacy_policy"] is False
    ]
    assert api.ids("/practitioners", [("q[]", "show_in_online_bookings:=true")]) == api.ids("/practitioners")


@pytest.mark.parametrize(
    "q",
    [
        "phone:=1",  # not a filterable field
        "archived:*",
        "updated_at:=2024-01-01T00:00:00Z",  # DateTime has no "="
        "updated_at:>=2024-01-01",  # not a DateTime value
        "updated_at:>=2024-13-01T00:00:00Z",
        "updated_at:>=2024-01-01T00:00:00.000Z",
        "id:=12,abc",
        "id:~1",
        "first_name:>A",
        "accepted_privacy_policy:=yes",
        "date_of_birth:=1990-02-30",
        "first_name",
        "email:?x",
    ],
)
def test_invalid_filters_answer_422(api, q):
    r = api.get("/patients", [("q[]", q)])
    assert r.status_code == 422
    assert r.json()["message"] == "Validation Failed" and "q" in r.json()["errors"]


def test_unlisted_fields_are_rejected_per_resource(api):
    assert api.get("/practitioners", [("q[]", "archived_at:*")]).status_code == 422
    assert api.get("/individual_appointments", [("q[]", "notes:~x")]).status_code == 422
    assert api.get("/businesses", [("q[]", "business_name:=x")]).status_code == 422
    r = api.get("/patients", {"sort": "shoe_size:asc"})
    assert r.status_code == 422 and "sort" in r.json()["errors"]


def test_sorting(api, acc):
    rows = api.all("/patients", [("sort", "updated_at:desc")])
    assert [r["updated_at"] for r in rows] == sorted((r["updated_at"] for r in rows), reverse=True)
    rows = api.all("/patients", [("sort", "updated_at:asc")])
    assert [r["updated_at"] for r in rows] == sorted(r["updated_at"] for r in rows)
    rows = api.all("/patients", [("sort", "last_name:asc,first_name:desc")])
    keys = [(r["last_name"].casefold(), r["first_name"].casefold()) for r in rows]
    for a, b in zip(keys, keys[1:], strict=False):
        assert a[0] < b[0] or (a[0] == b[0] and a[1] >= b[1]), (a, b)
    rows = api.all("/individual_appointments", [("sort", "starts_at:desc")])
    assert [r["starts_at"] for r in rows] == sorted((r["starts_at"] for r in rows), reverse=True)
    assert api.ids("/patients", [("order", "desc")]) == acc.patient_ids(include_archived=False)[::-1]


# ---- single records and routing ----------------------------------------------------------------
def test_single_records_and_404s(api, acc):
    pid = acc.patient_ids(include_archived=False)[0]
    assert api.ok(f"/patients/{pid}")["id"] == pid
    archived = next(p for p in acc.patient_ids() if p not in set(acc.patient_ids(include_archived=False)))
    r = api.get(f"/patients/{archived}")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json") and r.json()
    assert api.ok(f"/patients/{archived}", [("q[]", "archived_at:*")])["archived_at"]
    for path in (
        "/patients/1",
        "/patients/abc",
        "/individual_appointments/42",
        "/nope",
        "/patients/1/x",
        "/group_appointments",
    ):
        assert api.get(path).status_code == 404, path
    inactive = api.ok("/practitioners/inactive")["practitioners"][0]
    assert api.ok(f"/practitioners/{inactive['id']}")["active"] is False
    cancelled = next(a for a in api.all("/individual_appointments", [("q[]", "cancelled_at:?")]))
    assert api.ok(f"/individual_appointments/{cancelled['id']}")["cancelled_at"]
    assert api.s.post(api.base + "/patients", json={}, timeout=10).status_code == 405
    assert requests.get(api.base.rsplit("/", 2)[0] + "/elsewhere", timeout=10).status_code == 404


def test_headers_json_and_server_date(api):
    before = time.time()
    r = api.get("/patients")
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Date"].count("GMT") == 1
    served = parsedate_to_datetime(r.headers["Date"]).timestamp()
    assert before - 2 <= served <= time.time() + 1
    json.loads(r.text)


# ---- auth ------------------------------------------------------------------------------------------
def test_missing_or_bad_credentials_get_401_text(server):
    for auth in (None, ("", ""), ("other-au1", "")):
        r = requests.get(server.url("au4") + "/user", auth=auth, headers={"User-Agent": UA}, timeout=10)
        assert r.status_code == 401
        assert r.text == "HTTP Basic: Access denied." and r.headers["Content-Type"].startswith("text/plain")
    r = requests.get(
        server.url("au4") + "/user", headers={"User-Agent": UA, "Authorization": "Basic !!"}, timeout=10
    )
    assert r.status_code == 401


def test_keys_restriction_and_revocation():
    sim = Simulator(patients=5, appointments=5, keys=["good-au1", "second"])
    with SimulatorServer(sim) as server:
        assert Client(server, "good-au1").get("/user").status_code == 200
        assert Client(server, "second").get("/user").status_code == 200
        assert Client(server, "stranger-au1").get("/user").status_code == 401
        sim.revoke_key("good-au1")
        assert Client(server, "good-au1").get("/user").status_code == 401
        assert Client(server, "second").get("/user").status_code == 200
    open_sim = Simulator(patients=5, appointments=5)
    with SimulatorServer(open_sim) as server:
        assert Client(server, "anything-at-all").get("/user").status_code == 200
        open_sim.revoke_key("anything-at-all")
        assert Client(server, "anything-at-all").get("/user").status_code == 401


def test_user_agent_without_contact_email_gets_403(server):
    for ua in ("python-requests/2.32", "Routiq Admin", "Routiq (no email)", ""):
        assert Client(server, ua=ua).get("/user").status_code == 403, ua
    assert Client(server, ua="Routiq Admin (ops@example.com)").get("/user").status_code == 200


def test_shard_must_match_the_key(server):
    assert Client(server, KEY, shard="au1").get("/user").status_code == 401
    assert Client(server, "plainkey", shard="au1").get("/user").status_code == 200
    assert Client(server, "plainkey", shard="au4").get("/user").status_code == 401
    upper = Client(server, "abc-UK2")
    body = upper.ok("/patients", {"per_page": 1})
    assert upper.base.endswith("/uk2/v1")
    assert body["links"]["self"].startswith(f"http://127.0.0.1:{server.port}/uk2/v1/patients?")
    assert body["patients"][0]["links"]["self"].startswith(f"http://127.0.0.1:{server.port}/uk2/v1/")
    assert server.base_url == f"http://127.0.0.1:{server.port}/{{shard}}/v1"


# ---- rate limit --------------------------------------------------------------------------------------
def test_rate_limit_429_reset_header_and_recovery(sim, api, server):
    sim.set_rate_limit(5)
    sim.rate_limit_window = 2.0
    assert [api.get("/user").status_code for _ in range(5)] == [200] * 5
    other = Client(server, "someone-else-au4")
    assert other.get("/user").status_code == 200  # the limit is per account
    time.sleep(1.2)  # so that 429s, were they counted, would still fill the window at reset time
    limited = [api.get("/user") for _ in range(3)]
    assert [r.status_code for r in limited] == [429] * 3
    reset = int(limited[-1].headers["X-RateLimit-Reset"])
    assert time.time() <= reset <= time.time() + 2
    assert limited[0].json()["message"]
    assert sim.max_requests_in_window(KEY) == 5
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    assert [api.get("/user").status_code for _ in range(5)] == [200] * 5
    assert api.get("/user").status_code == 429
    statuses = [e[5] for e in sim.request_log if e[2] == KEY]
    assert statuses.count(429) == 4 and statuses.count(200) == 10


def test_default_limit_is_200_per_minute(sim, api):
    assert sim.rate_limit_per_minute == 200
    codes = [api.get("/user").status_code for _ in range(201)]
    assert codes[:200] == [200] * 200 and codes[200] == 429
    assert sim.max_requests_in_window(KEY) == 200


def test_request_log_stats_and_reset(sim, api):
    api.get("/patients", {"per_page": 2})
    api.get("/nope")
    mono, wall, key, method, path, status = sim.request_log[0]
    assert key == KEY and method == "GET" and path == "/au4/v1/patients?per_page=2" and status == 200
    assert abs(wall - time.time()) < 5 and mono <= time.monotonic()
    assert sim.request_log[1][5] == 404
    assert sim.max_requests_in_window() == 2
    sim.reset_stats()
    assert sim.request_log == [] and sim.max_requests_in_window() == 0


# ---- faults --------------------------------------------------------------------------------------
def test_fault_server_error_after_and_path(sim, api):
    sim.inject("server_error", count=1, path="/patients", after=2, status=503)
    codes = [api.get("/patients").status_code for _ in range(2)]
    assert api.get("/user").status_code == 200  # other paths do not count toward `after`
    codes += [api.get("/patients").status_code for _ in range(2)]
    assert codes == [200, 200, 503, 200]
    sim.inject("server_error", count=2)
    r = api.get("/user")
    assert r.status_code == 500 and api.get("/businesses").status_code == 500
    assert api.get("/user").status_code == 200


def test_fault_for_one_key_only(sim, server):
    sim.inject("server_error", count=1, key="victim-au4", status=502)
    assert Client(server).get("/user").status_code == 200
    assert Client(server, "victim-au4").get("/user").status_code == 502


def test_fault_rate_limit_burst(sim, api):
    sim.inject("rate_limit", count=2, reset_seconds=5)
    first = api.get("/patients")
    assert first.status_code == 429 and api.get("/patients").status_code == 429
    assert abs(int(first.headers["X-RateLimit-Reset"]) - (time.time() + 5)) <= 2
    assert api.get("/patients").status_code == 200
    assert sim.max_requests_in_window(KEY) == 1


def test_fault_latency_timeout_and_latency_ms():
    sim = Simulator(patients=5, appointments=5, latency_ms=150)
    with SimulatorServer(sim) as server:
        api = Client(server)
        start = time.monotonic()
        assert api.get("/user").status_code == 200
        assert time.monotonic() - start >= 0.15
        start = time.monotonic()
        assert Client(server, "elsewhere-au2", shard="au1").get("/user").status_code == 401
        assert time.monotonic() - start >= 0.15  # errors are slow too
        sim.latency_ms = 0
        sim.inject("latency", ms=250)
        start = time.monotonic()
        assert api.get("/user").status_code == 200
        assert time.monotonic() - start >= 0.25
        sim.inject("timeout", seconds=1.0)
        with pytest.raises(requests.exceptions.ReadTimeout):
            api.get("/user", timeout=0.3)
        sim.inject("timeout", seconds=0.3)
        start = time.monotonic()
        assert api.get("/user").status_code == 200
        assert time.monotonic() - start >= 0.3


def test_fault_malformed_json_and_wrong_shape(sim, api):
    sim.inject("malformed_json")
    r = api.get("/patients")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    sim.inject("wrong_shape")
    body = api.ok("/patients")
    assert "patients" not in body and body == {"unexpected": True}
    assert "patients" in api.ok("/patients")


def test_clear_faults_and_unknown_kind(sim, api):
    sim.inject("server_error", count=None)
    assert api.get("/user").status_code == 500 and api.get("/user").status_code == 500
    sim.clear_faults()
    assert api.get("/user").status_code == 200
    with pytest.raises(ValueError):
        sim.inject("earthquake")


# ---- mutations -----------------------------------------------------------------------------------
def test_patient_mutations_bump_updated_at_and_show_in_incremental_reads(sim, api, acc):
    watermark = iso(max(time.time() - 1, sim.anchor))  # generated data ends before the anchor
    incremental = [("q[]", f"updated_at:>={watermark}"), ("q[]", "archived_at:*"), ("sort", "updated_at:asc")]
    assert api.ids("/patients", incremental) == []
    added = acc.add_patient(first_name="Ada", last_name="Lovelace", email="ada@example.com")
    assert added["created_at"] == added["updated_at"] and ts(added["updated_at"]) >= ts(watermark)
    target = acc.patient_ids(include_archived=False)[0]
    before = acc.get("patients", target)
    updated = acc.update_patient(target, last_name="Hopper")
    assert updated["last_name"] == "Hopper" and updated["label"].endswith(" Hopper")
    assert (
        ts(updated["updated_at"]) > ts(before["updated_at"]) and updated["created_at"] == before["created_at"]
    )
    victim = acc.patient_ids(include_archived=False)[1]
    archived = acc.archive_patient(victim)
    assert archived["archived_at"] and archived["archived_at"] == archived["updated_at"]
    assert set(api.ids("/patients", incremental)) == {added["id"], target, victim}
    assert api.ok(f"/patients/{added['id']}")["email"] == "ada@example.com"
    assert api.ids("/patients", [("q[]", "last_name:=Hopper")]) == [target]
    assert victim not in api.ids("/patients")
    assert api.get(f"/patients/{victim}").status_code == 404
    assert api.ids("/patients")[-1] == added["id"]  # newest last in created_at order
    with pytest.raises(KeyError):
        acc.update_patient("123", first_name="x")


def test_appointment_mutations(sim, api, acc):
    pid = acc.patient_ids(include_archived=False)[5]
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    booked = acc.add_appointment(patient_id=pid, starts_at=starts, notes="first visit")
    assert booked["starts_at"] == iso(starts.timestamp()) and booked["notes"] == "first visit"
    assert link_id(booked["patient"]) == pid
    assert booked["patient_name"] == acc.get("patients", pid)["label"]
    window = [
        ("q[]", f"starts_at:>={iso(starts.timestamp() - 60)}"),
        ("q[]", f"starts_at:<{iso(starts.timestamp() + 60)}"),
    ]
    assert booked["id"] in api.ids("/individual_appointments", window)
    assert booked["id"] in api.ids("/individual_appointments", [("q[]", f"patient_id:={pid}")])
    moved = acc.update_appointment(booked["id"], starts_at=iso(starts.timestamp() + 3600))
    assert ts(moved["starts_at"]) == starts.timestamp() + 3600
    cancelled = acc.cancel_appointment(booked["id"])
    assert cancelled["cancelled_at"] and cancelled["cancellation_reason"] == 50
    assert cancelled["cancellation_reason_description"] == "Other"
    assert booked["id"] not in api.ids("/individual_appointments")
    assert booked["id"] in api.ids("/individual_appointments", [("q[]", "cancelled_at:*")])
    other = acc.appointment_ids(include_archived=False, include_cancelled=False)[0]
    acc.archive_appointment(other)
    assert api.get(f"/individual_appointments/{other}").status_code == 404
    since = [
        ("q[]", f"updated_at:>={iso(max(time.time() - 5, sim.anchor))}"),
        ("q[]", "archived_at:*"),
        ("q[]", "cancelled_at:*"),
    ]
    assert set(api.ids("/individual_appointments", since)) == {booked["id"], other}
    with pytest.raises(KeyError):
        acc.add_appointment(patient_id="999")


def test_hooks_can_change_data_between_pages(sim, api, acc):
    calls = []

    def hook(key, path, query, status):
        calls.append((key, path, query, status))
        if path.endswith("/patients") and "page=1" in query:
            acc.add_patient(first_name="Late", last_name="Arrival")

    sim.add_hook(hook)
    first = api.ok("/patients", {"page": 1, "per_page": 50})
    second = api.ok("/patients", {"page": 2, "per_page": 50})
    assert second["total_entries"] == first["total_entries"] + 1
    assert calls[0] == (KEY, "/au4/v1/patients", "page=1&per_page=50", 200)
    assert len(calls) == 2 and sim.hook_errors == []


# ---- control endpoints, large clinics, CLI ------------------------------------------------------
def test_sim_control_endpoints(sim, server, api):
    root = f"http://127.0.0.1:{server.port}/_sim"
    r = requests.post(
        f"{root}/accounts/{KEY}/patients", json={"first_name": "Grace", "last_name": "Hopper"}, timeout=10
    )
    assert r.status_code == 201
    patient = r.json()
    assert patient["links"]["self"].startswith(f"http://127.0.0.1:{server.port}/au4/v1/patients/")
    assert api.ok(f"/patients/{patient['id']}")["first_name"] == "Grace"
    r = requests.patch(
        f"{root}/accounts/{KEY}/patients/{patient['id']}", json={"first_name": "G"}, timeout=10
    )
    assert r.json()["first_name"] == "G" and api.ok(f"/patients/{patient['id']}")["first_name"] == "G"
    r = requests.post(f"{root}/accounts/{KEY}/appointments", json={"patient_id": patient["id"]}, timeout=10)
    appt = r.json()
    assert r.status_code == 201 and link_id(appt["patient"]) == patient["id"]
    r = requests.patch(f"{root}/accounts/{KEY}/appointments/{appt['id']}", json={"notes": "hi"}, timeout=10)
    assert r.json()["notes"] == "hi"
    assert requests.post(f"{root}/accounts/{KEY}/appointments/{appt['id']}/cancel", timeout=10).json()[
        "cancelled_at"
    ]
    assert requests.post(f"{root}/accounts/{KEY}/appointments/{appt['id']}/archive", timeout=10).json()[
        "archived_at"
    ]
    assert requests.post(f"{root}/accounts/{KEY}/patients/{patient['id']}/archive", timeout=10).json()[
        "archived_at"
    ]
    assert api.get(f"/patients/{patient['id']}").status_code == 404
    assert requests.patch(f"{root}/accounts/{KEY}/patients/1", json={}, timeout=10).status_code == 404
    assert requests.get(f"{root}/accounts/{KEY}", timeout=10).json()["counts"]["patients"] == 121

    body = {"fault": "server_error", "count": 1, "path": "/businesses", "after": 1, "status": 504}
    assert requests.post(f"{root}/faults", json=body, timeout=10).status_code == 201
    assert [api.get("/businesses").status_code for _ in range(3)] == [200, 504, 200]
    requests.post(f"{root}/faults", json={"fault": "server_error", "count": 3}, timeout=10)
    assert requests.delete(f"{root}/faults", timeout=10).status_code == 200
    assert api.get("/user").status_code == 200
    assert requests.post(f"{root}/faults", json={"fault": "nope"}, timeout=10).status_code == 400

    assert requests.post(f"{root}/rate_limit", json={"per_minute": 2}, timeout=10).status_code == 200
    sim.reset_rate_limits()
    assert [api.get("/user").status_code for _ in range(3)] == [200, 200, 429]
    stats = requests.get(f"{root}/stats", timeout=10).json()
    assert (
        stats["requests"] == len(sim.request_log) and stats["max_per_minute"] == sim.max_requests_in_window()
    )
    assert stats["by_status"]["429"] == 1
    assert requests.post(f"{root}/accounts/{KEY}/revoke", timeout=10).status_code == 200
    assert api.get("/user").status_code == 401


def rss_bytes():
    """Current resident set size (Linux), or 0 where /proc is missing."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def test_large_clinic_is_cheap_and_serves_pages():
    rss = rss_bytes()
    sim = Simulator(patients=100_000, appointments=300_000, seed=2)
    with SimulatorServer(sim) as server:
        api = Client(server, "bigclinic-au2")
        body = api.ok("/patients", {"per_page": 100, "page": 500})
        assert len(body["patients"]) == 100 and 93_000 < body["total_entries"] < 97_000
        recent = [
            ("q[]", f"updated_at:>={iso(time.time() - 7 * 86400)}"),
            ("q[]", "archived_at:*"),
            ("q[]", "cancelled_at:*"),
            ("sort", "updated_at:asc"),
            ("per_page", "100"),
        ]
        body = api.ok("/individual_appointments", recent)
        stamps = [a["updated_at"] for a in body["individual_appointments"]]
        assert body["total_entries"] > 1000 and stamps == sorted(stamps)
        ids = [p["id"] for p in body["individual_appointments"][:3]]
        got = api.ok(
            "/individual_appointments",
            [("q[]", "id:=" + ",".join(ids)), ("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")],
        )
        assert sorted(a["id"] for a in got["individual_appointments"]) == sorted(ids)
    assert rss_bytes() - rss < 250 * 2**20


def test_serve_prints_the_base_url_and_answers(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    code = (
        "from routiq_admin.cliniko.simulator import serve; "
        "serve(port=0, patients=3, appointments=3, keys=['cli-key-au1'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        line = proc.stdout.readline()
        base = re.search(r"(http://\S+/\{shard\}/v1)", line).group(1)
        r = requests.get(
            base.replace("{shard}", "au1") + "/user",
            auth=("cli-key-au1", ""),
            headers={"User-Agent": UA},
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["id"]
        r = requests.get(
            base.replace("{shard}", "au1") + "/user",
            auth=("other", ""),
            headers={"User-Agent": UA},
            timeout=10,
        )
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(5)


def test_account_get_returns_a_fresh_copy(acc):
    pid = acc.patient_ids()[0]
    record = acc.get("patients", pid)
    record["first_name"] = "changed"
    assert acc.get("patients", pid)["first_name"] != "changed"
    assert acc.get("patients", "1") is None and acc.get("businesses", "nope") is None
    assert acc.get("individual_appointments", acc.appointment_ids()[0])["id"] == acc.appointment_ids()[0]
