"""Patients that local appointments reference but we do not have: exact, per organization, linear."""

from sqlalchemy import event, insert

from routiq_admin.extensions import db
from routiq_admin.models import Appointment, Patient
from routiq_admin.sync.records import missing_patient_ids
from tests.factories import make_org


def _load(org_id, patients, appointments):
    """Insert patients (cliniko ids) and appointments ((cliniko id, patient cliniko id)) in bulk."""
    if patients:
        db.session.execute(
            insert(Patient), [{"organization_id": org_id, "cliniko_id": pid} for pid in patients]
        )
    if appointments:
        db.session.execute(
            insert(Appointment),
            [
                {"organization_id": org_id, "cliniko_id": aid, "patient_cliniko_id": pid}
                for aid, pid in appointments
            ],
        )
    db.session.commit()


def test_only_this_organizations_unknown_patients_once_each(app):
    with app.app_context():
        make_org("org_a")
        make_org("org_b", api_key="other-key-au1")
        _load("org_a", ["1"], [("10", "1"), ("11", "2"), ("12", "2"), ("13", "3"), ("14", None)])
        _load("org_b", ["2"], [("20", "9")])
        # Patient 2 exists, but in another organization; an appointment without a patient asks for none.
        assert missing_patient_ids("org_a") == ["2", "3"]
        assert missing_patient_ids("org_b") == ["9"]


def test_never_analyzed_tables_are_not_joined_row_by_row(app):
    with app.app_context():
        make_org("org_big")
        patients = [str(i) for i in range(2000)]
        _load("org_big", patients[:-5], [(str(10_000 + i), patients[i % 2000]) for i in range(6000)])
        assert missing_patient_ids("org_big") == sorted(patients[-5:])
        if db.engine.dialect.name == "postgresql":
            # Freshly loaded tables have no statistics; the plan must not loop over patients per row.
            sent = []

            def capture(conn, cursor, statement, parameters, context, executemany):
                sent.append((statement, parameters))

            event.listen(db.engine, "before_cursor_execute", capture)
            try:
                missing_patient_ids("org_big")
            finally:
                event.remove(db.engine, "before_cursor_execute", capture)
            statement, parameters = sent[-1]
            plan = db.session.connection().exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
            assert not any("Nested Loop" in line for line in plan), plan
