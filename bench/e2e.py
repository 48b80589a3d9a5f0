"""End to end: start_sync (enqueue) -> one real RQ worker -> the simulator over HTTP -> `completed`.

Each run gets a fresh SQLite database, a fresh simulator and a fresh worker (the worker is
started and idle before the clock starts), so the first run is a first full sync; a second,
incremental run follows on the same database with nothing changed in the simulator.
"""

import math
import os
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from . import common

# The fetches a comprehensive sync makes, in order: (request_log resource, entity counted).
RESOURCES = (
    ("businesses", "businesses"),
    ("practitioners", "practitioners"),
    ("practitioners/inactive", "practitioners (inactive)"),
    ("appointment_types", "appointment_types"),
    ("patients", "patients"),
    ("individual_appointments", "appointments"),
)


def _resource(path):
    """Map a request_log path (`/au1/v1/patients?...`) to its list resource."""
    parts = urlsplit(path)
    segments = parts.path.strip("/").split("/")[2:]  # drop shard and v1
    name = "/".join(segments)
    query = parse_qs(parts.query)
    if name == "patients" and any(q.startswith("id:=") for q in query.get("q[]", [])):
        return "patients (by id)"
    return name


def request_breakdown(log_entries):
    """Count requests per resource (429s counted separately)."""
    counts, limited = Counter(), 0
    for entry in log_entries:
        if entry[5] == 429:
            limited += 1
            continue
        counts[_resource(entry[4])] += 1
    return counts, limited


def floors(totals):
    """The fewest requests each fetch can take: ceil(records/100), at least one."""
    return {name: max(1, math.ceil(n / 100)) for name, n in totals.items()}


def _one_sync(app, org_id, sim, full=False, timeout=600, watch_step=None, step_budget=None, interval=0.02):
    """Trigger a comprehensive sync through start_sync (enqueue) and wait for a final status.

    Times from just before start_sync to the run's completed_at. With `watch_step`, also
    records when the run's current_step first became that step (and the requests made by
    then). Past `timeout`, or `step_budget` seconds after the watched step began, the result
    has status "timeout" (the run is left running).
    """
    from datetime import UTC, datetime

    from routiq_admin.extensions import db
    from routiq_admin.models import Organization, SyncRun
    from routiq_admin.sync.plan import FINISHED_STATUSES
    from routiq_admin.sync.runs import start_sync

    sim.reset_stats()
    with app.app_context():
        org = db.session.get(Organization, org_id)
        started_wall = datetime.now(UTC)
        started = time.monotonic()
        run_id = start_sync(org, "comprehensive", "manual", full=full).id
        watched = None
        while True:
            db.session.rollback()
            run = db.session.get(SyncRun, run_id, populate_existing=True)
            elapsed = time.monotonic() - started
            if watch_step and watched is None and run.current_step == watch_step:
                watched = {"seconds": elapsed, "cliniko_requests": run.cliniko_requests}
            if run.status in FINISHED_STATUSES or elapsed > timeout:
                break
            if watched and step_budget is not None and elapsed - watched["seconds"] > step_budget:
                break
            time.sleep(interval)
        finished = run.status in FINISHED_STATUSES
        result = {
            "run_id": run_id,
            "status": run.status if finished else "timeout",
            "seconds": (run.completed_at - started_wall).total_seconds() if finished else None,
            "observed_seconds": elapsed,
            "queue_wait_seconds": (run.started_at - started_wall).total_seconds() if run.started_at else None,
            "cliniko_requests": run.cliniko_requests,
            "entity_counts": run.entity_counts,
            "records_processed": run.records_processed,
            "current_step": run.current_step,
            "errors": run.errors,
            "watched": watched,
        }
        db.session.rollback()
    result["requests"], result["rate_limited"] = request_breakdown(list(sim.request_log))
    result["simulator_requests"] = sum(result["requests"].values()) + result["rate_limited"]
    return result


def scratch_app(url, redis, rundir, server, rate_limit):
    """Return (config, migrated app, organization id) for one run against `server`."""
    config = common.app_config(
        url,
        redis.url,
        os.path.join(rundir, "instance"),
        server.base_url,
        CLINIKO_RATE_LIMIT_PER_MINUTE=rate_limit,
    )
    app = common.make_app(config)
    common.migrate(app)
    with app.app_context():
        org_id = common.make_org().id
    return config, app, org_id


def dispose(app):
    """Close the app's session and database connections (the scratch database goes afterwards)."""
    from routiq_admin.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _abandon(app, worker, run_id):
    """Kill the worker and its work horse mid-run, and mark the scratch run failed."""
    from routiq_admin.extensions import db
    from routiq_admin.models import SyncRun, utcnow

    worker.kill()
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        run.status, run.completed_at, run.current_step = "failed", utcnow(), "Abandoned by the bench"
        db.session.commit()


def _db_counts(app, org_id):
    from sqlalchemy import func, select

    from routiq_admin.extensions import db
    from routiq_admin.models import Appointment, Patient

    with app.app_context():
        p = db.session.execute(select(func.count()).where(Patient.organization_id == org_id)).scalar()
        a = db.session.execute(select(func.count()).where(Appointment.organization_id == org_id)).scalar()
        db.session.rollback()
    return {"patients": p, "appointments": a}


def guide_clinic(
    redis,
    workdir,
    *,
    patients=651,
    appointments=296,
    latency_ms=100,
    runs=3,
    seed=1,
    database_url=None,
    rate_limit=200,
    timeout=600,
    log=print,
):
    """Measure `runs` first full syncs (fresh database each) and an incremental run after each."""
    from routiq_admin.cliniko.simulator import Simulator, SimulatorServer

    results = []
    for index in range(runs):
        rundir = os.path.join(workdir, f"e2e-{patients}-{index}")
        os.makedirs(rundir, exist_ok=True)
        url = database_url or f"sqlite:///{os.path.join(rundir, 'routiq.db')}"
        redis.flush()  # fresh rate-limit windows and queue
        sim = Simulator(
            patients=patients,
            appointments=appointments,
            seed=seed,
            latency_ms=latency_ms,
            rate_limit_per_minute=rate_limit,
        )
        sim.account(common.BENCH_KEY)  # generate the clinic before the clock starts
        server = SimulatorServer(sim).start()
        worker = None
        try:
            config, app, org_id = scratch_app(url, redis, rundir, server, rate_limit)
            worker = common.Worker(config, os.path.join(rundir, "worker.log"))
            first = _one_sync(app, org_id, sim, timeout=timeout)
            first["db"] = _db_counts(app, org_id)
            if first["status"] != "completed":
                raise RuntimeError(f"first sync ended {first['status']}: {first['errors']}")
            second = _one_sync(app, org_id, sim, timeout=timeout)
            second["db"] = _db_counts(app, org_id)
            totals = {
                "businesses": sim.account(common.BENCH_KEY).count("businesses"),
                "patients": patients,
                "appointments": appointments,
            }
            results.append({"first": first, "second": second, "totals": totals})
            log(
                f"  run {index + 1}/{runs}: first {first['status']} {first['seconds']:.2f} s "
                f"({first['cliniko_requests']} requests), incremental {second['status']} "
                f"{second['seconds']:.2f} s ({second['cliniko_requests']} requests)"
            )
            dispose(app)
        finally:
            if worker is not None:
                worker.stop()
            server.stop()
    return results


ACTIVITY_STEP = "Updating patient activity"


def big_clinic(
    redis,
    workdir,
    *,
    patients=100_000,
    appointments=300_000,
    seed=1,
    rate_limit=100_000,
    first_budget=300,
    incremental_budget=120,
    activity_budget=60,
    log=print,
):
    """A big clinic: first full sync over HTTP with one worker, then an unchanged incremental
    run; each within a time budget. A run over budget is abandoned (worker killed, run marked
    failed in the scratch database); a first sync that did not even reach the activity step is
    completed by the ingest path instead (bench/ingest.py, same engine in-process).
    """
    from routiq_admin.cliniko.simulator import Simulator, SimulatorServer

    rundir = os.path.join(workdir, f"big-{patients}")
    os.makedirs(rundir, exist_ok=True)
    url = f"sqlite:///{os.path.join(rundir, 'routiq.db')}"
    redis.flush()
    started = time.monotonic()
    sim = Simulator(patients=patients, appointments=appointments, seed=seed, rate_limit_per_minute=rate_limit)
    sim.account(common.BENCH_KEY)
    result = {
        "patients": patients,
        "appointments": appointments,
        "simulator_build_seconds": time.monotonic() - started,
        "first_budget": first_budget,
        "incremental_budget": incremental_budget,
        "activity_budget": activity_budget,
    }
    server = SimulatorServer(sim).start()
    worker = None
    try:
        config, app, org_id = scratch_app(url, redis, rundir, server, rate_limit)
        worker = common.Worker(config, os.path.join(rundir, "worker.log"))

        first = _one_sync(
            app, org_id, sim, timeout=first_budget, watch_step=ACTIVITY_STEP, step_budget=activity_budget
        )
        result["first"] = first
        log(f"  first full sync over HTTP: {_describe(first)}")
        if first["status"] == "timeout":
            _abandon(app, worker, first["run_id"])
            worker = None
            if first["watched"] is None:
                log("  first sync did not reach the activity step in budget: seeding by the ingest path")
                result["seed"] = _seed_by_ingest(app, org_id, sim)
            worker = common.Worker(config, os.path.join(rundir, "worker.log"))
        first["db"] = _db_counts(app, org_id)

        second = _one_sync(
            app,
            org_id,
            sim,
            timeout=incremental_budget,
            watch_step=ACTIVITY_STEP,
            step_budget=activity_budget,
        )
        result["second"] = second
        log(f"  incremental (as shipped): {_describe(second)}")
        if second["status"] == "timeout":
            _abandon(app, worker, second["run_id"])
            worker = None
        dispose(app)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    return result


def _describe(r):
    requests = dict(r["requests"])
    if r["status"] == "timeout":
        reached = (
            f"reached the activity step after {r['watched']['seconds']:.1f} s"
            if r["watched"]
            else f"still in '{r['current_step']}'"
        )
        return f"not finished within {r['observed_seconds']:.0f} s ({reached}); requests {requests}"
    return f"{r['status']} in {r['seconds']:.2f} s; requests {requests}"


def _seed_by_ingest(app, org_id, sim):
    """First full sync by the real engine in this process on the in-process client
    (bench/ingest.py): same records, same marks; its activity step is skipped."""
    from datetime import UTC, datetime

    from routiq_admin.extensions import db
    from routiq_admin.models import Organization, SyncRun
    from routiq_admin.sync.runs import create_run

    from .ingest import InProcessClient, bench_engine_class

    with app.app_context():
        org = db.session.get(Organization, org_id)
        started_wall = datetime.now(UTC)
        run = create_run(org, mode="comprehensive", trigger="manual", full=True, job_id="bench-seed")
        client = InProcessClient(sim.account(common.BENCH_KEY))
        engine = bench_engine_class()(run.id, "bench-seed", client, activity=False)
        status = engine.run()
        db.session.rollback()
        run = db.session.get(SyncRun, run.id)
        result = {
            "status": status,
            "seconds": (run.completed_at - started_wall).total_seconds(),
            "pages": client.requests_made,
            "entity_counts": run.entity_counts,
        }
        db.session.rollback()
    return result
