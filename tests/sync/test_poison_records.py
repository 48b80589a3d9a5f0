"""Records the database cannot store: unstorable text is cleaned on both databases, a record it
still refuses is counted failed while the rest of its page lands, and logs never carry values."""

import subprocess

import pytest
from sqlalchemy import select, text

from routiq_admin.extensions import db
from routiq_admin.models import Patient
from routiq_admin.sync.runs import start_sync
from tests.conftest import start_process, subprocess_env

from .conftest import ORG_ID, count, run_inline, wait_finished


def _patient(cliniko_id):
    db.session.rollback()
    return db.session.execute(
        select(Patient).where(Patient.organization_id == ORG_ID, Patient.cliniko_id == str(cliniko_id))
    ).scalar_one_or_none()


def _ddl(*statements):
    db.session.rollback()
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


@pytest.fixture
def refuse_poison(sync_app):
    """Make the database refuse patients named 'Poison' (a CHECK on PostgreSQL, a trigger on SQLite)."""
    if db.engine.dialect.name == "postgresql":
        _ddl("ALTER TABLE patients ADD CONSTRAINT poison CHECK (first_name IS DISTINCT FROM 'Poison')")
        yield
        _ddl("ALTER TABLE patients DROP CONSTRAINT poison")
    else:
        _ddl(
            "CREATE TRIGGER poison BEFORE INSERT ON patients WHEN NEW.first_name = 'Poison' "
            "BEGIN SELECT RAISE(ABORT, 'poison'); END"
        )
        yield
        _ddl("DROP TRIGGER poison")


def test_nul_and_lone_surrogate_are_cleaned_and_the_run_completes(org, account):
    nul = account.add_patient(first_name="Nul\u0000Byte", last_name="O\u0000K")
    surrogate = account.add_patient(first_name="Lone\ud800Surrogate", email="a\udfff@example.com")
    run = run_inline(org)
    assert run.status == "completed", run.errors
    assert run.entity_counts["patients"]["failed"] == 0
    assert count(Patient) == account.count("patients")
    stored = _patient(nul["id"])
    assert (stored.first_name, stored.last_name) == ("NulByte", "OK")
    stored = _patient(surrogate["id"])
    assert (stored.first_name, stored.email) == ("LoneSurrogate", "a@example.com")
    again = run_inline(org)  # the next sync goes through the same records just as well
    assert again.status == "completed", again.errors


def test_a_record_the_database_refuses_fails_alone(org, account, refuse_poison):
    poison = account.add_patient(first_name="Poison", last_name="Pill")
    run = run_inline(org)
    assert run.status == "completed", run.errors
    counts = run.entity_counts["patients"]
    assert counts["failed"] == 1
    assert counts["created"] == account.count("patients") - 1
    assert count(Patient) == account.count("patients") - 1
    assert _patient(poison["id"]) is None
    messages = [e["message"] for e in run.errors if e["entity"] == "patients"]
    assert messages == [f"Cliniko record {poison['id']} could not be stored"]
    assert run.records_failed == 1


def test_the_worker_log_has_no_sql_values_after_a_database_error(
    org, account, base_config, sim_server, tmp_path
):
    _ddl("ALTER TABLE patients RENAME COLUMN phone TO phone_gone")
    log_path = tmp_path / "worker.log"
    env = subprocess_env(base_config, CLINIKO_BASE_URL=sim_server.base_url, LOG_LEVEL="DEBUG")
    try:
        with open(log_path, "wb") as log:
            proc = start_process(["-m", "workers.worker"], env, stdout=log, stderr=subprocess.STDOUT)
            try:
                run = wait_finished(start_sync(org, "comprehensive", "manual").id, timeout=90)
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    finally:
        _ddl("ALTER TABLE patients RENAME COLUMN phone_gone TO phone")
    assert run.status == "failed" and run.errors[-1]["error_type"] == "database_error"
    output = log_path.read_text(errors="replace")
    assert "database error in sync" in output  # the failure itself is logged
    assert "[parameters" not in output
    leaked = []
    for cliniko_id in account.patient_ids()[:100]:
        record = account.get("patients", cliniko_id)
        for phone in record.get("patient_phone_numbers") or ():
            if phone["number"] in output:
                leaked.append(phone["number"])
        if record.get("date_of_birth") and record["date_of_birth"] in output:
            leaked.append(record["date_of_birth"])
    assert leaked == []
