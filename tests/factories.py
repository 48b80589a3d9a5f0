"""Tiny factories for tests."""

import itertools
from datetime import timedelta

from routiq_admin.extensions import db
from routiq_admin.models import DEFAULT_SCOPES, ApiToken, Membership, Organization, SyncRun, User, utcnow

_runs = itertools.count(1)


def make_org(org_id="org_test", name="Test Clinic", api_key="test-key-au1", **fields):
    org = Organization(id=org_id, name=name, **fields)
    if api_key:
        org.set_api_key(api_key)
    db.session.add(org)
    db.session.commit()
    return org


def make_user(email="staff@example.com", password="pw-123456", *, org=None, role=None, superuser=False):
    user = User(email=email, is_superuser=superuser)
    user.set_password(password)
    db.session.add(user)
    if org is not None:
        db.session.add(Membership(user=user, organization_id=org.id, role=role or "viewer"))
    db.session.commit()
    return user


def make_token(org=None, *, all_orgs=False, name="test token", scopes=DEFAULT_SCOPES):
    row, clear = ApiToken.issue(
        name=name, organization_id=org.id if org else None, all_organizations=all_orgs, scopes=scopes
    )
    db.session.add(row)
    db.session.commit()
    return row, clear


def login(client, email="staff@example.com", password="pw-123456"):
    return client.post("/login", data={"email": email, "password": password})


def make_run(org_id, status, *, age=timedelta(minutes=1), duration=60.0, **fields):
    """Insert a SyncRun row directly (no worker): created `age` ago, finished ones lasting `duration` s."""
    created = utcnow() - age
    n = next(_runs)
    finished = status in ("completed", "failed", "cancelled")
    values = {
        "sync_id": f"sync_{org_id}_{created:%Y%m%d_%H%M%S}_{n}",
        "organization_id": org_id,
        "kind": "sync",
        "trigger": "scheduled",
        "mode": "comprehensive",
        "full": False,
        "status": status,
        "total_steps": 4,
        "completed_steps": 4 if status == "completed" else 1,
        "progress_percentage": 100.0 if status == "completed" else 40.0 if finished else 42.5,
        "current_step": "Completed" if status == "completed" else "Processing patients",
        "current_operation": None if finished else "Fetching page 2 of patients",
        "created_at": created,
        "started_at": None if status == "starting" else created,
        "heartbeat_at": None if status == "starting" else created,
        "completed_at": created + timedelta(seconds=duration) if finished else None,
        "errors": [],
        "entity_counts": {},
        "run_metadata": {},
        "job_id": f"job-{n}",
    }
    run = SyncRun(**{**values, **fields})
    db.session.add(run)
    db.session.commit()
    return run
