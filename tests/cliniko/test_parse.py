"""Raw Cliniko records -> model column values."""

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import String

from routiq_admin import models
from routiq_admin.cliniko import parse
from routiq_admin.cliniko.errors import InvalidDataFormat

BASE = "https://api.au4.cliniko.com/v1"
LOCAL_COLUMNS = {"id", "organization_id", "synced_at", "previous_patient_cliniko_id"}
COMPUTED = {
    "recent_appointment_count",
    "upcoming_appointment_count",
    "total_appointment_count",
    "last_appointment_at",
    "next_appointment_at",
    "activity_status",
}
ROWS = {
    models.Business: parse.business_row,
    models.Practitioner: parse.practitioner_row,
    models.AppointmentType: parse.appointment_type_row,
    models.Patient: parse.patient_row,
    models.Appointment: parse.appointment_row,
}


def link(path):
    return {"links": {"self": f"{BASE}/{path}"}}


APPOINTMENT = {
    "id": "1390726237298631770",
    "starts_at": "2024-04-02T14:45:00Z",
    "ends_at": "2024-04-02T15:30:00Z",
    "created_at": "2024-04-02T20:04:46Z",
    "updated_at": "2024-04-02T20:04:46Z",
    "archived_at": None,
    "cancelled_at": None,
    "cancellation_reason": None,
    "cancellation_reason_description": "",
    "did_not_arrive": False,
    "patient_arrived": False,
    "patient_name": "Peter Patientman",
    "repeat_rule": {},
    "patient": link("patients/1390710863102485699"),
    "practitioner": link("practitioners/1390053863163176768"),
    "appointment_type": link("appointment_types/1390053865100944805"),
    "business": link("businesses/1390053865344214699"),
    "links": {"self": f"{BASE}/individual_appointments/1390726237298631770"},
}


@pytest.mark.parametrize("model", ROWS)
def test_rows_produce_exactly_the_model_columns(model):
    row = ROWS[model]({"id": "1"})
    assert set(row) == {c.name for c in model.__table__.columns} - LOCAL_COLUMNS - COMPUTED
    for column in model.__table__.columns:
        if (
            isinstance(column.type, String)
            and column.name in row
            and column.name
            not in (
                "patient_cliniko_id",
                "practitioner_cliniko_id",
                "appointment_type_cliniko_id",
                "business_cliniko_id",
            )
        ):
            assert parse.LENGTHS[column.name] == column.type.length, column.name


def test_appointment_row():
    row = parse.appointment_row(APPOINTMENT)
    assert row == {
        "cliniko_id": "1390726237298631770",
        "cliniko_created_at": datetime(2024, 4, 2, 20, 4, 46, tzinfo=UTC),
        "cliniko_updated_at": datetime(2024, 4, 2, 20, 4, 46, tzinfo=UTC),
        "patient_cliniko_id": "1390710863102485699",
        "practitioner_cliniko_id": "1390053863163176768",
        "appointment_type_cliniko_id": "1390053865100944805",
        "business_cliniko_id": "1390053865344214699",
        "starts_at": datetime(2024, 4, 2, 14, 45, tzinfo=UTC),
        "ends_at": datetime(2024, 4, 2, 15, 30, tzinfo=UTC),
        "patient_name": "Peter Patientman",
        "did_not_arrive": False,
        "patient_arrived": False,
        "cancelled_at": None,
        "cancellation_reason": None,
        "cancellation_reason_description": None,
        "archived_at": None,
        "deleted_at": None,
    }


def test_cancelled_appointment_and_missing_relations():
    raw = {
        **APPOINTMENT,
        "cancelled_at": "2024-04-01T09:00:00+10:00",
        "cancellation_reason": 50,
        "cancellation_reason_description": "Other",
        "patient": None,
        "business": {"links": {}},
    }
    del raw["practitioner"]
    row = parse.appointment_row(raw)
    assert row["cancelled_at"] == datetime(2024, 3, 31, 23, 0, tzinfo=UTC)
    assert (row["cancellation_reason"], row["cancellation_reason_description"]) == (50, "Other")
    assert row["patient_cliniko_id"] is row["practitioner_cliniko_id"] is row["business_cliniko_id"] is None
    assert (
        parse.appointment_row({**APPOINTMENT, "patient": None, "patient_id": 42})["patient_cliniko_id"]
        == "42"
    )


def test_patient_row():
    raw = {
        "id": 1390710863102485699,
        "first_name": "Peter",
        "last_name": "Patientman",
        "preferred_first_name": "",
        "title": "Mr",
        "email": "peter@example.com",
        "date_of_birth": "1980-02-29",
        "sex": "Male",
        "address_1": "1 High St",
        "city": "Sydney",
        "state": "NSW",
        "post_code": "2000",
        "country": "Australia",
        "time_zone": "Australia/Sydney",
        "patient_phone_numbers": [
            {"phone_type": "Home", "number": "02 9999 0000", "normalized_number": "61299990000"},
            {"phone_type": "Mobile", "number": "0412 345 678", "normalized_number": "61412345678"},
        ],
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00.123Z",
        "archived_at": "",
        "deleted_at": None,
        "merged_at": "",
    }
    row = parse.patient_row(raw)
    assert row["cliniko_id"] == "1390710863102485699"
    assert row["date_of_birth"] == date(1980, 2, 29)
    assert row["phone"] == "0412 345 678"
    assert row["phone_numbers"] == [
        {"phone_type": "Home", "number": "02 9999 0000"},
        {"phone_type": "Mobile", "number": "0412 345 678"},
    ]
    assert row["preferred_first_name"] is None
    assert row["archived_at"] is row["deleted_at"] is row["merged_at"] is None
    assert row["cliniko_updated_at"] == datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "phones, phone, numbers",
    [
        (None, None, None),
        ([], None, None),
        (
            [{"phone_type": "Work", "number": "1"}, {"phone_type": "Home", "number": "2"}],
            "1",
            [{"phone_type": "Work", "number": "1"}, {"phone_type": "Home", "number": "2"}],
        ),
        (
            [{"phone_type": "Mobile", "number": None}, "junk", {"number": "3"}],
            "3",
            [{"phone_type": None, "number": "3"}],
        ),
    ],
)
def test_phone_numbers(phones, phone, numbers):
    row = parse.patient_row({"id": "1", "patient_phone_numbers": phones})
    assert (row["phone"], row["phone_numbers"]) == (phone, numbers)


def test_missing_fields_are_none():
    row = parse.patient_row({"id": "7"})
    assert row["cliniko_id"] == "7"
    assert all(value is None for key, value in row.items() if key != "cliniko_id")
    assert parse.practitioner_row({"id": "7"})["active"] is None


def test_truncates_to_column_lengths_and_tolerates_odd_values():
    row = parse.patient_row(
        {"id": "1", "first_name": "x" * 500, "post_code": 2000, "date_of_birth": "not a date"}
    )
    assert len(row["first_name"]) == 120 and row["post_code"] == "2000" and row["date_of_birth"] is None
    assert len(parse.appointment_row({**APPOINTMENT, "patient_name": "y" * 300})["patient_name"]) == 240
    row = parse.appointment_type_row({"id": "1", "duration_in_minutes": "45", "color": "#4caf50ff00ff00ff00"})
    assert row["duration_in_minutes"] == 45 and len(row["color"]) == 16


def test_reference_rows():
    business = parse.business_row(
        {
            "id": "5",
            "business_name": "Sydney Health",
            "time_zone_identifier": "Australia/Sydney",
            "city": "Sydney",
            "country": "Australia",
            "archived_at": None,
            "deleted_at": "2025-01-01T00:00:00Z",
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-02T00:00:00Z",
        }
    )
    assert business["time_zone_identifier"] == "Australia/Sydney"
    assert business["deleted_at"] == datetime(2025, 1, 1, tzinfo=UTC)
    practitioner = parse.practitioner_row(
        {
            "id": "6",
            "first_name": "Sarah",
            "last_name": "Mitchell",
            "title": "Dr",
            "designation": "Physiotherapist",
            "display_name": "Dr Sarah Mitchell",
            "active": True,
        }
    )
    assert practitioner["display_name"] == "Dr Sarah Mitchell" and practitioner["active"] is True
    kind = parse.appointment_type_row(
        {
            "id": "8",
            "name": "Review",
            "category": "Follow-up",
            "duration_in_minutes": 30,
            "color": "#ff9800",
            "archived_at": "2023-05-05T05:05:05Z",
        }
    )
    assert (kind["name"], kind["duration_in_minutes"]) == ("Review", 30)
    assert kind["archived_at"] == datetime(2023, 5, 5, 5, 5, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw", [None, [], "1", {}, {"id": ""}, {"id": None}, {"id": 1.5}, {"id": True}, {"id": "9" * 40}]
)
@pytest.mark.parametrize("row", ROWS.values())
def test_records_without_a_valid_id_are_rejected(row, raw):
    with pytest.raises(InvalidDataFormat) as err:
        row(raw)
    assert err.value.error_code == "CLINIKO_INVALID_DATA"


@pytest.mark.parametrize("value", ["yesterday", 12345, "2024-13-45T00:00:00Z"])
def test_invalid_timestamps_are_rejected(value):
    with pytest.raises(InvalidDataFormat):
        parse.appointment_row({**APPOINTMENT, "archived_at": value})
