"""Sync engine fixtures and helpers: the simulator's account, in-process runs, request logs,
slow simulators and real RQ worker processes."""

from datetime import datetime
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from routiq_admin.extensions import db
from routiq_admin.models import (
    Appointment,
    AppointmentType,
    Business,
    Patient,
    Practitioner,
    SyncMark,
    SyncRun,
)
from routiq_admin.sync.engine import SyncEngine
from routiq_admin.sync.runs import start_sync
from tests.conftest import app_for, serve_simulator, start_process, stop, subprocess_env, wait_for
from tests.factories import make_org

KEY = "sync-test-key-au1"
ORG_ID = "org_sync_test"
TABLES = {
    "businesses": Business,
    "practitioners": Practitioner,
    "appointment_types": AppointmentType,
    "patients": Patient,
    "appointments": Appointment,
}


@pytest.fixture
def sim(sim_server):
    """The simulator behind `sim_server` (651 patients, 296 appointments per key)."""
    return sim_server.simulator


@pytest.fixture
def account(sim):
    """The simulated clinic our organization's key opens."""
    return sim.account(KEY)


@pytest.fixture
def org(sync_app):
    """An organization whose Cliniko key opens `account` on the simulator."""
    return make_org(ORG_ID, "Sync Test Clinic", api_key=KEY)


def run_inline(org, mode="comprehensive", *, full=False, kind="sync"):
    """Start a run through start_sync (row + real RQ enqueue), execute its job here; return the row."""
    run = start_sync(org, mode, "manual", full=full, kind=kind)
    SyncEngine(run.id, run.job_id).run()
    return reload(run.id)


def wait_finished(run_id, timeout=60):
    """Wait until a run (executed elsewhere) is completed, failed or cancelled; return its row."""
    return wait_for(
        lambda: (r := reload(run_id)).status in ("completed", "failed", "cancelled") and r,
        timeout=timeout,
        message=f"run {run_id} to finish",
    )


def reload(run_id):
    """Read a run row afresh (another process or thread may have written it)."""
    db.session.rollback()
    return db.session.get(SyncRun, run_id, populate_existing=True)


def count(model, org_id=ORG_ID):
    db.session.rollback()
    return db.session.execute(select(func.count()).where(model.organization_id == org_id)).scalar()


def distinct_ids(model, org_id=ORG_ID):
    return set(db.session.execute(select(model.cliniko_id).where(model.organization_id == org_id)).scalars())


def synced_at(model, org_id=ORG_ID):
    db.session.rollback()
    return dict(
        db.session.execute(
            select(model.cliniko_id, model.synced_at).where(model.organization_id == org_id)
        ).all()
    )


def mark(entity, org_id=ORG_ID):
    db.session.rollback()
    row = db.session.get(SyncMark, (org_id, entity), populate_existing=True)
    return row.watermark if row else None


def requests(sim, key=KEY):
    """The simulator's request log for one key: path (after /v1), q[] filters, other params, status."""
    out = []
    for _mono, _wall, k, method, target, status in list(sim.request_log):
        if k != key:
            continue
        path, _, query = target.partition("?")
        params = parse_qs(query)
        out.append(
            SimpleNamespace(
                method=method,
                path=path.split("/v1", 1)[1],
                q=params.pop("q[]", []),
                params={name: values[0] for name, values in params.items()},
                status=status,
            )
        )
    return out


def parse_ts(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def window_bounds(sim, key=KEY):
    """The starts_at window [lo, hi) the engine asked Cliniko for (from the request log)."""
    lo = hi = None
    for req in requests(sim, key):
        if req.path != "/individual_appointments":
            continue
        for f in req.q:
            if f.startswith("starts_at:>="):
                lo = parse_ts(f[len("starts_at:>=") :])
            elif f.startswith("starts_at:<"):
                hi = parse_ts(f[len("starts_at:<") :])
    return lo, hi


def appointments_in(account, lo, hi):
    """Ids of the account's appointments (archived and cancelled included) starting in [lo, hi)."""
    out = {}
    for aid in account.appointment_ids():
        rec = account.get("appointments", aid)
        if lo <= parse_ts(rec["starts_at"]) < hi:
            out[aid] = rec
    return out


def patient_id_of(appointment):
    return appointment["patient"]["links"]["self"].rstrip("/").rsplit("/", 1)[1]


@pytest.fixture
def slow_server():
    """A larger, slower simulator (150 ms per request) so a run lasts a few seconds."""
    yield from serve_simulator(patients=2000, appointments=1000, latency_ms=150)


@pytest.fixture
def slow_app(make_app, slow_server):
    """An app pointed at the slow simulator, with its context pushed."""
    yield from app_for(make_app, slow_server)


@pytest.fixture
def start_worker(base_config):
    """Start real `python -m workers.worker` processes pointed at a simulator server."""
    procs = []

    def start(server, **extra):
        env = subprocess_env(base_config, CLINIKO_BASE_URL=server.base_url, **extra)
        proc = start_process(["-m", "workers.worker"], env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture
def by_worker(sim_server, start_worker):
    """Run syncs through one real RQ worker process (started on first use); return the row."""
    workers = []

    def run(org, mode="comprehensive", *, full=False):
        if not workers:
            workers.append(start_worker(sim_server))
        return wait_finished(start_sync(org, mode, "manual", full=full).id)

    return run
