"""Our side of issue 14's comparison with dlt's `rest_api` source, in dlt's conditions.

In-process, as dlt's figures were taken: this process makes the run row (`create_run`) and
runs `SyncEngine(run_id, job_id).run()` itself (no RQ); the simulator is its own process
(`flask cliniko simulate --latency-ms …`), so the CPU figure is this process's alone. Per
scenario: first syncs, each on a fresh database, then unchanged incremental runs on the last
one; medians. Rows written = rows that the run's INSERT/UPDATE/DELETE statements on the
Cliniko tables changed (their `rowcount`: the upserts and the activity step).
"""

import os
import re
import resource
import time

from . import common, dlt_side
from .e2e import dispose, scratch_app
from .fleet import Simulator

# dlt's own figures on this machine, from issue 14 (in-process medians, measured by another
# session with dlt's rest_api source against this simulator: per_page=100, links.next,
# incremental on updated_at, merge on id, parallelized=True).
DLT_GUIDE_INCREMENTAL_SECONDS = 0.70  # guide clinic, SQLite, 100 ms per request
DLT_BIG_INCREMENTAL_SECONDS = 1.06  # 20,000 / 60,000, PostgreSQL, 20 ms per request
DLT_BIG_FIRST_SECONDS = 63.0  # 20,000 / 60,000, PostgreSQL, 20 ms per request
# Issue 14's targets: our time over dlt's.
TARGET_GUIDE_INCREMENTAL = 0.8
TARGET_BIG_INCREMENTAL = 0.5
TARGET_BIG_FIRST = 0.5
# dlt's figure and our target per (scenario, kind); None: issue 14 gives no dlt figure.
DLT = {
    ("guide", "first"): None,
    ("guide", "incremental"): (DLT_GUIDE_INCREMENTAL_SECONDS, TARGET_GUIDE_INCREMENTAL),
    ("big", "first"): (DLT_BIG_FIRST_SECONDS, TARGET_BIG_FIRST),
    ("big", "incremental"): (DLT_BIG_INCREMENTAL_SECONDS, TARGET_BIG_INCREMENTAL),
}
RATE_LIMIT = 100_000  # per minute, simulator and client: dlt's run was not throttled either
PG_DATABASE = "routiq_bench_dlt"
DATA_TABLES = {"businesses", "practitioners", "appointment_types", "patients", "appointments"}
_WRITE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)


def cpu_now():
    """This process's CPU so far (user + system, every thread), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class WriteCounter:
    """Sums the rowcount of INSERT/UPDATE/DELETE statements on the Cliniko tables."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.rows = 0
        self.engine = engine
        event.listen(engine, "after_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, parameters, context, executemany):
        match = _WRITE.match(statement)
        if match and match.group(1).lower() in DATA_TABLES and cursor.rowcount > 0:
            self.rows += cursor.rowcount

    def close(self):
        from sqlalchemy import event

        event.remove(self.engine, "after_cursor_execute", self._count)


def one_run(app, org_id, profile=None):
    """Make a run row and run the engine in this process; return its figures."""
    from routiq_admin.extensions import db
    from routiq_admin.models import Organization, SyncRun
    from routiq_admin.sync.engine import SyncEngine
    from routiq_admin.sync.runs import create_run

    with app.app_context():
        org = db.session.get(Organization, org_id)
        run_id = create_run(org, mode="comprehensive", trigger="manual", job_id=None).id
        job_id = db.session.get(SyncRun, run_id).job_id
        db.session.commit()
        counter = WriteCounter(db.engine)
        try:
            cpu, started = cpu_now(), time.perf_counter()
            if profile is not None:
                status = profile.runcall(SyncEngine(run_id, job_id).run)
            else:
                status = SyncEngine(run_id, job_id).run()
            wall, cpu = time.perf_counter() - started, cpu_now() - cpu
        finally:
            counter.close()
        db.session.rollback()
        run = db.session.get(SyncRun, run_id)
        result = {
            "status": status,
            "wall": wall,
            "cpu": cpu,
            "requests": run.cliniko_requests,
            "rows_written": counter.rows,
            "records_processed": run.records_processed,
            "errors": [e["message"] for e in run.errors or []][:3],
        }
        db.session.rollback()
    if status != "completed":
        raise RuntimeError(f"sync ended {status}: {result['errors']}")
    return result


def scenario(
    redis,
    workdir,
    *,
    name,
    patients,
    appointments,
    latency_ms,
    first_runs,
    incremental_runs,
    server_url=None,
    pg_database=PG_DATABASE,
    database_url=None,
    dlt_python=None,
    log=print,
):
    """First syncs (fresh database each) then unchanged incremental runs on the last; figures.

    server_url: a scratch PostgreSQL database per first sync, else a SQLite file each;
    database_url: this (empty) database instead, for one first sync (the tests).
    """
    import contextlib

    url = database_url or server_url or "sqlite"
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    out = {
        "name": name,
        "database": database,
        "patients": patients,
        "appointments": appointments,
        "latency_ms": latency_ms,
        "first": [],
        "incremental": [],
        "load_before": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }
    sim = Simulator(workdir, latency_ms, patients, appointments, rate_limit=RATE_LIMIT)
    try:
        for index in range(first_runs):
            rundir = os.path.join(workdir, f"dlt-{name}-{index}")
            os.makedirs(rundir, exist_ok=True)
            last = index == first_runs - 1
            with contextlib.ExitStack() as stack:
                if database_url:
                    url = database_url
                elif server_url:
                    url = stack.enter_context(common.postgres_database(server_url, pg_database))
                else:
                    url = f"sqlite:///{os.path.join(rundir, 'routiq.db')}"
                redis.flush()
                _, app, org_id = scratch_app(url, redis, rundir, sim, RATE_LIMIT)
                try:
                    first = one_run(app, org_id)
                    out["first"].append(first)
                    log(f"    {name}: first sync {index + 1}/{first_runs}: {_describe(first)}")
                    for inc in range(incremental_runs if last else 0):
                        r = one_run(app, org_id)
                        out["incremental"].append(r)
                        log(f"    {name}: unchanged incremental {inc + 1}/{incremental_runs}: {_describe(r)}")
                finally:
                    dispose(app)
        if dlt_python:
            rundir = os.path.join(workdir, f"dlt-side-{name}")
            os.makedirs(rundir, exist_ok=True)
            with contextlib.ExitStack() as stack:
                if server_url:
                    url = stack.enter_context(common.postgres_database(server_url, pg_database + "_side"))
                else:
                    url = f"sqlite:///{os.path.join(rundir, 'dlt.db')}"
                base_url = sim.base_url.replace("{shard}", "au1")
                out["dlt_side"] = dlt_side.measure(dlt_python, base_url, common.BENCH_KEY, url, rundir, log)
    finally:
        sim.stop()
    out["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return out


def _describe(r):
    return (
        f"{r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['requests']} requests, "
        f"{r['rows_written']:,} rows written"
    )


def measure(
    redis,
    workdir,
    *,
    quick=False,
    server_url=common.PG_DEFAULT,
    pg_database=PG_DATABASE,
    dlt_python=None,
    log=print,
):
    """Both scenarios of issue 14 (the PostgreSQL one skipped when server_url is 'none')."""
    dlt_python = dlt_side.interpreter(dlt_python)
    result = {"quick": quick, "scenarios": [], "dlt": dlt_side.status(dlt_python)}
    result["scenarios"].append(
        scenario(
            redis,
            workdir,
            name="guide",
            patients=651,
            appointments=296,
            latency_ms=100,
            first_runs=1 if quick else 3,
            incremental_runs=3,
            dlt_python=dlt_python,
            log=log,
        )
    )
    if server_url.lower() != "none":
        patients, appointments = (2_000, 6_000) if quick else (20_000, 60_000)
        result["scenarios"].append(
            scenario(
                redis,
                workdir,
                name="big",
                patients=patients,
                appointments=appointments,
                latency_ms=20,
                first_runs=1 if quick else 3,
                incremental_runs=3,
                server_url=server_url,
                pg_database=pg_database,
                dlt_python=dlt_python,
                log=log,
            )
        )
    log(f"    {result['dlt']}")
    return result


# -- report ------------------------------------------------------------------------------------


def _median(runs, key):
    return common.median([r[key] for r in runs])


def rows(result):
    """One row per (scenario, first / incremental): medians, dlt's figure, ratio, target, met."""
    out = []
    for s in result["scenarios"]:
        size = f"{s['patients']:,} / {s['appointments']:,}"
        for kind, label in (("first", "first sync"), ("incremental", "unchanged incremental")):
            runs = s[kind]
            if not runs:
                continue
            wall = _median(runs, "wall")
            dlt = DLT[(s["name"], kind)]
            if s["name"] == "big" and (s["patients"], s["appointments"]) != (20_000, 60_000):
                dlt = None  # dlt's figures are for 20k/60k: a --quick clinic gets no ratio
            ratio = wall / dlt[0] if dlt else None
            here = [r for r in (s.get("dlt_side") or {}).get("runs", ()) if r["kind"] == kind]
            out.append(
                {
                    "figure": f"{label}, {size}, {s['database']}, {s['latency_ms']} ms",
                    "runs": len(runs),
                    "wall": wall,
                    "cpu": _median(runs, "cpu"),
                    "requests": _median(runs, "requests"),
                    "rows_written": _median(runs, "rows_written"),
                    "dlt": dlt[0] if dlt else None,
                    "ratio": ratio,
                    "target": dlt[1] if dlt else None,
                    "met": None if ratio is None else ratio <= dlt[1],
                    "dlt_here": _median(here, "wall") if here else None,
                    "dlt_here_cpu": _median(here, "cpu") if here else None,
                    "dlt_here_requests": _median(here, "requests") if here else None,
                }
            )
    return out


def render(result):
    """The section's markdown: the table, then how it was measured."""
    from .report import fmt_s, table

    body, measured = [], rows(result)
    side = any(r["dlt_here"] is not None for r in measured)
    for r in measured:
        here = []
        if side and r["dlt_here"] is None:
            here = ["—", "—"]
        elif side:
            here = [
                f"{r['dlt_here']:.2f} s ({r['dlt_here_cpu']:.2f} s CPU, {r['dlt_here_requests']:g} requests)",
                f"{r['wall'] / r['dlt_here']:.2f}×",
            ]
        body.append(
            [
                r["figure"],
                r["runs"],
                f"**{r['wall']:.2f} s**",
                fmt_s(r["cpu"]),
                f"{r['requests']:g}",
                f"{r['rows_written']:,.0f}",
                fmt_s(r["dlt"]),
                "—" if r["ratio"] is None else f"{r['ratio']:.2f}×",
                "—" if r["target"] is None else f"≤ {r['target']}×",
                "—" if r["met"] is None else ("yes" if r["met"] else "**no**"),
                *here,
            ]
        )
    headers = ["run (in-process)", "runs", "wall (median)", "CPU", "requests", "rows written"]
    headers += ["dlt (issue 14)", "ours / dlt", "target", "met"]
    headers += ["dlt here, same run (median)", "ours / dlt here"] if side else []
    loads = ", ".join(f"{s['name']} {s['load_before'].split()[0]}" for s in result["scenarios"])
    return (
        table(headers, body)
        + f"\n\n{result['dlt']}. Load (1 min) at the start of each scenario: {loads}.\n\n"
        "In-process, as dlt's figures were taken: the bench makes the run row (`create_run`) and "
        "times `SyncEngine(run_id, job_id).run()` in its own process (no RQ, no worker start); the "
        f"simulator is its own process (`flask cliniko simulate`, rate limit {RATE_LIMIT:,}/min); "
        "CPU is the bench process's user + system time over the run (the database server's is not "
        "counted). Each first sync has a fresh database; the unchanged incremental runs follow on "
        "the last one. Rows written: the rowcount of the run's INSERT/UPDATE/DELETE statements on "
        "the Cliniko tables (upserts and the activity step)."
    )


def summary_rows(result):
    """Rows for the report's summary table (figure, target, measured, met)."""
    out = []
    for r in rows(result):
        if r["ratio"] is not None:
            met = "yes" if r["met"] else "**no**"
            out.append(
                [
                    f"vs dlt: {r['figure']}",
                    f"≤ {r['target']}× dlt",
                    f"{r['wall']:.2f} s = {r['ratio']:.2f}×",
                    met,
                ]
            )
    return out


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.versus_dlt", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--database-url", default=common.PG_DEFAULT, help="PostgreSQL server, or 'none'")
    p.add_argument("--pg-database", default=PG_DATABASE, help="scratch database (created and dropped)")
    p.add_argument("--dlt-python", help="an interpreter with dlt installed: run dlt's side too")
    p.add_argument(
        "--profile",
        metavar="PATH",
        help="only profile one unchanged incremental run at 20k/60k on PostgreSQL (cProfile dump)",
    )
    args = p.parse_args(argv)
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            if args.profile:
                profile_incremental(redis, workdir, args)
            else:
                result = measure(
                    redis,
                    workdir,
                    quick=args.quick,
                    server_url=args.database_url,
                    pg_database=args.pg_database,
                    dlt_python=args.dlt_python,
                )
                print(render(result))
        finally:
            redis.stop()


def profile_incremental(redis, workdir, args):
    """A first sync at 20k/60k, one warm unchanged run, then one under cProfile."""
    import cProfile
    import pstats

    patients, appointments = (2_000, 6_000) if args.quick else (20_000, 60_000)
    sim = Simulator(workdir, 20, patients, appointments, rate_limit=RATE_LIMIT)
    try:
        with common.postgres_database(args.database_url, args.pg_database) as url:
            _, app, org_id = scratch_app(url, redis, workdir, sim, RATE_LIMIT)
            print("first sync:", _describe(one_run(app, org_id)))
            print("unchanged incremental:", _describe(one_run(app, org_id)))
            profile = cProfile.Profile()
            print("profiled unchanged incremental:", _describe(one_run(app, org_id, profile=profile)))
            dispose(app)
    finally:
        sim.stop()
    profile.dump_stats(args.profile)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
