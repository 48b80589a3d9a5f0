"""Upserter: values stored exactly as the ORM stores them, and honest created/updated/unchanged."""

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import select

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient
from routiq_admin.sync.upsert import Upserter
from tests.factories import make_org

SYDNEY = timezone(timedelta(hours=10))


def patient(cliniko_id, **fields):
    row = {
        "cliniko_id": cliniko_id,
        "cliniko_created_at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "cliniko_updated_at": datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": date(1990, 12, 10),
        "phone_numbers": [{"phone_type": "Mobile", "number": "0400 000 000"}],
        "archived_at": None,
    }
    row.update(fields)
    return row


def stored_patients(org_id):
    rows = db.session.execute(
        select(Patient).where(Patient.organization_id == org_id).order_by(Patient.cliniko_id)
    ).scalars()
    return {p.cliniko_id: p for p in rows.unique()}


def test_values_round_trip_like_the_orm(app):
    org = make_org("org_upsert")
    upserter = Upserter(Patient, org.id)
    offset = datetime(2025, 1, 1, 20, 0, tzinfo=SYDNEY)  # 10:00 UTC
    rows = [patient("1"), patient("2", phone_numbers=None, date_of_birth=None, archived_at=offset)]

    assert upserter.upsert(rows) == (2, 0, 0)
    db.session.commit()
    db.session.expire_all()
    got = stored_patients(org.id)
    assert got["1"].cliniko_updated_at == datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    assert got["1"].cliniko_created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got["1"].date_of_birth == date(1990, 12, 10)
    assert got["1"].phone_numbers == [{"phone_type": "Mobile", "number": "0400 000 000"}]
    assert got["1"].activity_status == "inactive" and got["1"].total_appointment_count == 0
    assert got["2"].phone_numbers is None and got["2"].date_of_birth is None
    assert got["2"].archived_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)

    # A row the ORM wrote compares equal to the same values upserted: nothing is rewritten.
    db.session.add(Patient(organization_id=org.id, **patient("3")))
    db.session.commit()
    assert upserter.upsert([patient("3"), *rows]) == (0, 0, 3)


def test_counts_created_updated_unchanged_and_keeps_local_columns(app):
    org = make_org("org_upsert_counts")
    upserter = Upserter(Patient, org.id)
    assert upserter.upsert([patient(str(i)) for i in range(5)]) == (5, 0, 0)
    db.session.commit()
    db.session.execute(
        Patient.__table__.update()
        .where(Patient.organization_id == org.id, Patient.cliniko_id == "0")
        .values(activity_status="active", total_appointment_count=7)
    )
    db.session.commit()

    changed = [patient("0", first_name="Augusta"), patient("1"), patient("5"), patient("1")]
    assert upserter.upsert(changed) == (1, 1, 1)  # the repeated id counts once
    db.session.commit()
    db.session.expire_all()
    got = stored_patients(org.id)
    assert len(got) == 6
    assert got["0"].first_name == "Augusta"
    assert (got["0"].activity_status, got["0"].total_appointment_count) == ("active", 7)
    assert upserter.upsert([]) == (0, 0, 0)


def test_same_cliniko_id_in_two_organizations_stays_apart(app):
    a, b = make_org("org_upsert_a"), make_org("org_upsert_b")
    row = {
        "cliniko_id": "42",
        "cliniko_created_at": None,
        "cliniko_updated_at": datetime(2025, 1, 1, tzinfo=UTC),
        "starts_at": datetime(2025, 2, 1, 9, tzinfo=UTC),
        "did_not_arrive": False,
        "patient_arrived": True,
    }
    assert Upserter(Appointment, a.id).upsert([row]) == (1, 0, 0)
    assert Upserter(Appointment, b.id).upsert([{**row, "did_not_arrive": True}]) == (1, 0, 0)
    db.session.commit()
    stored = {x.organization_id: x for x in db.session.execute(select(Appointment)).scalars()}
    assert stored[a.id].did_not_arrive is False and stored[a.id].patient_arrived is True
    assert stored[b.id].did_not_arrive is True
    assert stored[a.id].starts_at == datetime(2025, 2, 1, 9, tzinfo=UTC)
