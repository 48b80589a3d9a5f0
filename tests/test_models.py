"""Schema and model rules, on whichever database the session runs."""

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from routiq_admin.extensions import db
from routiq_admin.models import (
    ApiToken,
    Patient,
    SyncRun,
    User,
    get_for_org,
    hash_token,
    shard_from_key,
)
from tests.factories import make_org, make_token


def test_migrations_match_the_models(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "organizations",
        "users",
        "memberships",
        "api_tokens",
        "sync_runs",
        "sync_marks",
        "patients",
        "appointments",
        "practitioners",
        "appointment_types",
        "businesses",
    } <= tables


def test_duplicate_cliniko_id_in_one_org_is_rejected(app):
    org = make_org()
    other = make_org("org_other", api_key=None)
    db.session.add_all(
        [
            Patient(organization_id=org.id, cliniko_id="1390710863102485699"),
            Patient(organization_id=other.id, cliniko_id="1390710863102485699"),
        ]
    )
    db.session.commit()
    db.session.add(Patient(organization_id=org.id, cliniko_id="1390710863102485699"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert get_for_org(Patient, other.id, cliniko_id="1390710863102485699") is not None


def _run(org, sync_id, status):
    return SyncRun(sync_id=sync_id, organization_id=org.id, trigger="manual", mode="active", status=status)


def test_database_refuses_a_second_active_run(app):
    org = make_org()
    db.session.add_all([_run(org, "s1", "completed"), _run(org, "s2", "failed"), _run(org, "s3", "running")])
    db.session.commit()
    db.session.add(_run(org, "s4", "starting"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    other = make_org("org_other", api_key=None)
    db.session.add(_run(other, "s5", "starting"))
    db.session.commit()
    run = db.session.execute(select(SyncRun).filter_by(sync_id="s3")).scalar_one()
    run.status = "completed"
    db.session.commit()
    db.session.add(_run(org, "s6", "starting"))
    db.session.commit()


def test_passwords_are_hashed(app):
    user = User(email="a@example.com")
    user.set_password("correct horse")
    assert "correct horse" not in user.password_hash
    assert user.check_password("correct horse")
    assert not user.check_password("wrong")


def test_tokens_are_stored_only_as_sha256(app):
    org = make_org()
    row, clear = make_token(org)
    stored = db.session.execute(select(ApiToken)).scalar_one()
    assert stored.token_hash == hash_token(clear) != clear
    for column in ApiToken.__table__.columns:
        assert clear != str(getattr(stored, column.key))
    with pytest.raises(ValueError):
        ApiToken.issue(organization_id=org.id, all_organizations=True)


def test_api_key_encrypted_at_rest_and_masked(app):
    org = make_org(api_key="MS0xLTExMjM0NTY3ABCD1234-au4")
    raw = db.session.execute(
        select(db.metadata.tables["organizations"].c.cliniko_api_key_encrypted)
    ).scalar_one()
    assert "MS0xLTExMjM0NTY3" not in raw
    assert org.api_key == "MS0xLTExMjM0NTY3ABCD1234-au4"
    assert org.cliniko_shard == "au4"
    assert org.masked_key == "••••1234"
    org.set_api_key("")
    assert org.api_key is None and org.masked_key is None


@pytest.mark.parametrize(
    "key, shard",
    [
        ("abc-au4", "au4"),
        ("abc-UK2", "uk2"),
        ("abc", "au1"),
        ("abc-eu1", "eu1"),
        ("a-b-ca1", "ca1"),
        ("abc-au", "au1"),
    ],
)
def test_shard_from_key(key, shard):
    assert shard_from_key(key) == shard


def test_models_load_without_the_cliniko_http_client():
    # The shard comes from a dependency-free module; the models must not pull in requests and threads.
    code = "import sys, routiq_admin.models; print(sorted({'routiq_admin.cliniko.client', 'requests'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
