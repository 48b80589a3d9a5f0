"""Database ingest rate: the real SyncEngine on parsed 100-record pages, without HTTP.

Runs `SyncEngine.run()` (comprehensive, full) with its Cliniko client swapped for an
in-process one that renders the simulator's records page by page (the same dicts the HTTP
client would decode, generated lazily so nothing holds the clinic in memory). Everything
else is the engine's own code: parse, `Upserter.upsert`, and the guarded progress UPDATE +
commit after every page. The time spent rendering pages (Cliniko's side of the wire) is
measured and subtracted; the rest of `_ingest` is the ingest time.

Run in a fresh process per measurement (`python -m bench.ingest ...`, prints one JSON line)
so `ru_maxrss` is that ingest's own peak.
"""

import argparse
import json
import os
import sys
import time
import tracemalloc
from contextlib import contextmanager
from datetime import UTC, datetime

from . import common

PER_PAGE = 100
BIG = ("patients", "individual_appointments")


class InProcessClient:
    """The slice of ClinikoClient the engine uses, served from a simulator Account."""

    def __init__(self, account, base_url="https://api.au1.cliniko.com/v1"):
        self.account = account
        self.base = base_url
        self.requests_made = 0
        self.rate_limit_waits = 0
        self.rate_limit_wait_seconds = 0.0
        self.render_seconds = 0.0

    def close(self):
        pass

    def prefetch(self, pages):
        """In memory a first page is at hand whenever it is asked for: nothing to start early."""
        return pages

    def _pages(self, resource, filters=(), inactive=None, path=None):
        from werkzeug.datastructures import MultiDict

        from routiq_admin.cliniko.client import Page

        acc = self.account
        if resource in BIG:
            # Every record (archived and cancelled included, as the engine asks), in id order,
            # rendered one page at a time.
            total = acc.tables[resource].n
            for number, start in enumerate(range(0, max(total, 1), PER_PAGE), 1):
                t0 = time.perf_counter()
                records = [
                    acc._render(resource, i, self.base) for i in range(start, min(total, start + PER_PAGE))
                ]
                self.requests_made += 1
                # In memory, the next page is always at hand (as a prefetched one would be).
                ready = start + PER_PAGE < total
                page = Page(records, total, number, datetime.now(UTC), ready_next=ready)
                self.render_seconds += time.perf_counter() - t0
                yield page
            return
        number = 1
        while True:
            t0 = time.perf_counter()
            args = MultiDict([("per_page", PER_PAGE), ("page", number), *(("q[]", f) for f in filters)])
            body = acc.list_page(resource, args, self.base, path or resource, inactive)
            self.requests_made += 1
            page = Page(body[resource], body["total_entries"], number, datetime.now(UTC))
            self.render_seconds += time.perf_counter() - t0
            yield page
            if "next" not in body["links"]:
                return
            number += 1

    def fetch_businesses(self):
        return self._pages("businesses", ["archived_at:*"])

    def fetch_practitioners(self, *, inactive=False):
        return self._pages(
            "practitioners", inactive=inactive, path="practitioners/inactive" if inactive else None
        )

    def fetch_appointment_types(self):
        return self._pages("appointment_types", ["archived_at:*"])

    def fetch_patients(self, *, updated_since=None, include_archived=True, ids=None):
        if updated_since is not None or ids is not None or not include_archived:
            raise NotImplementedError("the ingest bench only does full fetches")
        return self._pages("patients")

    def fetch_appointments(self, *, updated_since=None, include_archived=True, include_cancelled=True, **kw):
        if updated_since is not None or kw or not (include_archived and include_cancelled):
            raise NotImplementedError("the ingest bench only does full fetches")
        return self._pages("individual_appointments")


def bench_engine_class():
    from routiq_admin.sync.engine import SyncEngine

    class BenchEngine(SyncEngine):
        """The real engine, timed per entity, with the in-process client."""

        def __init__(self, run_id, job_id, client, activity=True):
            super().__init__(run_id, job_id)
            self._bench_client = client
            self._activity = activity
            self.timings = {}
            self.step_seconds = {}
            self.phase = {"upsert": 0.0, "progress_commit": 0.0, "db_commit": 0.0}

        def _client(self, org):
            return self._bench_client

        def _commit(self, operation, page=None):
            t0 = time.perf_counter()
            try:
                return super()._commit(operation, page)
            finally:
                self.phase["progress_commit"] += time.perf_counter() - t0

        def _ingest(self, entity, pages, label):
            t0, r0 = time.perf_counter(), self._bench_client.render_seconds
            before = self.counts.get(entity, {}).get("fetched", 0)
            try:
                return super()._ingest(entity, pages, label)
            finally:
                net = time.perf_counter() - t0 - (self._bench_client.render_seconds - r0)
                slot = self.timings.setdefault(entity, {"seconds": 0.0, "records": 0})
                slot["seconds"] += net
                slot["records"] += self.counts.get(entity, {}).get("fetched", 0) - before

        def _step_activity(self):
            if not self._activity:  # not part of the ingest rate; measured on its own
                self._entity = None
                self._commit("Patient activity skipped (bench)")
                return
            t0 = time.perf_counter()
            super()._step_activity()
            self.step_seconds["activity"] = time.perf_counter() - t0

    return BenchEngine


@contextmanager
def phase_timers(engine):
    """Time Upserter.upsert and the DBAPI commit (measurement only: behaviour unchanged)."""
    from routiq_admin.extensions import db
    from routiq_admin.sync import upsert as upsert_module

    original = upsert_module.Upserter.upsert

    def timed_upsert(self, rows):
        t0 = time.perf_counter()
        try:
            return original(self, rows)
        finally:
            engine.phase["upsert"] += time.perf_counter() - t0

    dialect = db.engine.dialect
    do_commit = dialect.do_commit

    def timed_commit(dbapi_connection):
        t0 = time.perf_counter()
        try:
            return do_commit(dbapi_connection)
        finally:
            engine.phase["db_commit"] += time.perf_counter() - t0

    upsert_module.Upserter.upsert = timed_upsert
    dialect.do_commit = timed_commit
    try:
        yield
    finally:
        upsert_module.Upserter.upsert = original
        del dialect.do_commit


def ingest(
    database_url,
    patients,
    appointments,
    *,
    seed=1,
    trace_memory=False,
    profile=None,
    workdir=None,
    activity=False,
    sqlite_wal=False,
):
    """Full comprehensive sync of a simulated clinic into `database_url` (migrated here)."""
    import tempfile

    from routiq_admin.cliniko.simulator import Simulator
    from routiq_admin.extensions import db
    from routiq_admin.models import Appointment, Patient, SyncRun
    from routiq_admin.sync.runs import create_run

    instance = tempfile.mkdtemp(prefix="routiq-bench-instance-", dir=workdir)
    config = common.app_config(database_url, None, instance)
    app = common.make_app(config)
    common.migrate(app)
    if sqlite_wal:
        with app.app_context():
            common.use_sqlite_wal(db.engine)
    sim = Simulator(patients=patients, appointments=appointments, seed=seed, rate_limit_per_minute=None)
    account = sim.account(common.BENCH_KEY)
    # Warm up: render one page of each big resource, so lazily built simulator state is not
    # counted as the ingest's memory.
    for resource in BIG:
        [
            account._render(resource, i, "https://x/v1")
            for i in range(min(PER_PAGE, account.tables[resource].n))
        ]
    with app.app_context():
        org = common.make_org()
        run = create_run(org, mode="comprehensive", trigger="manual", full=True, job_id="bench-ingest")
        run_id = run.id
        client = InProcessClient(account)
        engine = bench_engine_class()(run_id, "bench-ingest", client, activity=activity)
        rss_before = common.maxrss_mb()
        if trace_memory:
            tracemalloc.start()
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        with phase_timers(engine):
            t0 = time.perf_counter()
            status = engine.run()
            wall = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        traced_peak = None
        if trace_memory:
            traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        rss_after = common.maxrss_mb()
        db.session.rollback()
        run = db.session.get(SyncRun, run_id)
        from sqlalchemy import func, select

        stored = {
            "patients": db.session.execute(
                select(func.count()).where(Patient.organization_id == org.id)
            ).scalar(),
            "appointments": db.session.execute(
                select(func.count()).where(Appointment.organization_id == org.id)
            ).scalar(),
        }
        result = {
            "database": db.engine.dialect.name,
            "sqlite_wal": bool(sqlite_wal),
            "driver": db.engine.dialect.driver,
            "patients": patients,
            "appointments": appointments,
            "status": status,
            "errors": run.errors,
            "stored": stored,
            "pages": client.requests_made,
            "timings": engine.timings,
            "activity_seconds": engine.step_seconds.get("activity"),
            "phase_seconds": engine.phase,
            "render_seconds": client.render_seconds,
            "engine_wall_seconds": wall,
            "rss_before_mb": rss_before,
            "rss_after_mb": rss_after,
            "rss_delta_mb": rss_after - rss_before,
            "tracemalloc_peak_mb": traced_peak,
        }
        big = [engine.timings.get(e, {"seconds": 0.0, "records": 0}) for e in ("patients", "appointments")]
        records = sum(t["records"] for t in big)
        seconds = sum(t["seconds"] for t in big)
        result["records"] = records
        result["ingest_seconds"] = seconds
        result["records_per_second"] = records / seconds if seconds else None
        db.session.remove()
        db.engine.dispose()
    import shutil

    shutil.rmtree(instance, ignore_errors=True)
    return result


def run_subprocess(
    database_url,
    patients,
    appointments,
    *,
    trace_memory=False,
    profile=None,
    activity=False,
    sqlite_wal=False,
    timeout=3600,
):
    """Run one ingest in a fresh Python process; return its JSON result."""
    import subprocess

    args = [
        sys.executable,
        "-m",
        "bench.ingest",
        "--database-url",
        database_url,
        "--patients",
        str(patients),
        "--appointments",
        str(appointments),
    ]
    if trace_memory:
        args.append("--tracemalloc")
    if profile:
        args += ["--profile", profile]
    if activity:
        args.append("--activity")
    if sqlite_wal:
        args.append("--sqlite-wal")
    env = dict(os.environ, PYTHONPATH=common.ROOT, LOG_LEVEL="WARNING")
    done = subprocess.run(args, cwd=common.ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"ingest subprocess failed ({done.returncode}): {last}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="a fresh database (migrated here)")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=300_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--profile", help="write cProfile stats of the engine run to this file")
    parser.add_argument("--activity", action="store_true", help="also run (and time) the activity step")
    parser.add_argument(
        "--sqlite-wal",
        action="store_true",
        help="what-if: SQLite in WAL mode with synchronous=NORMAL (the app does not set this)",
    )
    args = parser.parse_args(argv)
    result = ingest(
        args.database_url,
        args.patients,
        args.appointments,
        trace_memory=args.tracemalloc,
        profile=args.profile,
        activity=args.activity,
        sqlite_wal=args.sqlite_wal,
    )
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
