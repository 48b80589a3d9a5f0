"""`make bench` / `python -m bench.run`: the sync engine's performance figures (issue 4).

Full run (about 10 minutes on 2 cores): the guide's clinic end to end through one real RQ
worker (3 fresh first syncs + an incremental run each), requests against the floor, the
100,000-patient / 300,000-appointment ingest rate and memory on SQLite and PostgreSQL, and an
unchanged incremental run at that size. Writes docs/benchmarks.md unless --no-write.

`--quick` (under two minutes on a quiet machine) does the same at small sizes and writes nothing
by default; CI runs it (`make bench BENCH_ARGS=--quick`) so the bench cannot rot.

Fleet (section 5, `bench/fleet.py`): guide clinics started at once through real `python -m
workers.worker` processes and gunicorn, the simulator in its own process; activity on
never-analyzed PostgreSQL tables (section 6, `bench/activity.py`); our side of issue 14's
comparison with dlt, in-process (section 8, `bench/versus_dlt.py`).
"""

import argparse
import json
import os
import sys
import time

from . import common

ROOT_DOC = os.path.join(common.ROOT, "docs", "benchmarks.md")


def log(message=""):
    print(message, flush=True)


# -- measurements ----------------------------------------------------------------------------


def measure_e2e(redis, workdir, args):
    from . import e2e

    log(
        f"[1/4] guide clinic end to end ({args.runs} runs, {args.latency_ms} ms latency, one RQ worker, SQLite)"
    )
    return e2e.guide_clinic(
        redis,
        workdir,
        patients=args.guide_patients,
        appointments=args.guide_appointments,
        latency_ms=args.latency_ms,
        runs=args.runs,
        log=log,
    )


def measure_ingest(workdir, args):
    from . import ingest

    n, m = args.big_patients, args.big_appointments
    small_n, small_m = args.small_patients, args.small_appointments
    results = []

    def sqlite(name, patients, appointments, **kw):
        path = os.path.join(workdir, f"ingest-{name}.db")
        log(f"  SQLite {name}: {patients:,} patients / {appointments:,} appointments …")
        r = ingest.run_subprocess(f"sqlite:///{path}", patients, appointments, **kw)
        r["label"] = name
        results.append(r)
        log(f"    {r['records_per_second']:,.0f} records/s, peak RSS +{r['rss_delta_mb']:.1f} MiB")
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return r

    def postgres(name, patients, appointments, **kw):
        log(f"  PostgreSQL {name}: {patients:,} patients / {appointments:,} appointments …")
        with common.postgres_database(args.database_url, args.pg_database) as url:
            r = ingest.run_subprocess(url, patients, appointments, **kw)
        r["label"] = name
        results.append(r)
        log(f"    {r['records_per_second']:,.0f} records/s, peak RSS +{r['rss_delta_mb']:.1f} MiB")
        return r

    log("[3/4] ingest rate and memory (no HTTP; parse + upsert + progress commit per 100-record page)")
    sqlite("as shipped", n, m)
    sqlite("as shipped, small", small_n, small_m)
    if args.what_ifs:
        sqlite("what-if WAL + synchronous=NORMAL", n, m, sqlite_wal=True)
    if args.tracemalloc:
        sqlite("tracemalloc", n, m, trace_memory=True)  # slower: every allocation traced
        sqlite("tracemalloc, small", small_n, small_m, trace_memory=True)
    if args.database_url.lower() != "none":
        try:
            postgres("as shipped (psycopg 3)", n, m)
            postgres("as shipped, small", small_n, small_m)
        except Exception as exc:  # PostgreSQL unreachable: report, do not lose the rest
            log(f"    PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            results.append({"label": "postgresql", "error": f"{type(exc).__name__}: {exc}"[:500]})
    return results


def measure_activity(workdir, args):
    """The activity step alone (SQLite), at the small and the big size."""
    from . import ingest

    out = []
    for n, m in ((args.small_patients, args.small_appointments), (args.big_patients, args.big_appointments)):
        log(f"  activity step alone at {n:,} / {m:,} (SQLite) …")
        path = os.path.join(workdir, f"activity-{n}.db")
        r = ingest.run_subprocess(f"sqlite:///{path}", n, m, activity=True)
        out.append({"patients": n, "appointments": m, "seconds": r["activity_seconds"]})
        log(f"    {r['activity_seconds']:.2f} s")
        for suffix in ("", "-journal"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    return out


def measure_fleet(redis, workdir, args):
    from . import fleet

    pg = args.database_url.lower() != "none"
    workers = tuple(args.fleet_workers) if pg else (1,)  # SQLite lets one writer in at a time
    log(
        f"[5] fleet: {', '.join(map(str, args.fleet_sizes))} guide clinics with {workers} real workers, "
        f"{args.latency_ms} ms latency, {'PostgreSQL' if pg else 'SQLite'}; progress under {args.fleet_pollers} pollers"
    )
    return fleet.fleet(
        redis,
        workdir,
        sizes=args.fleet_sizes,
        workers=workers,
        pollers=args.fleet_pollers,
        latency_ms=args.latency_ms,
        server_url=args.database_url,
        pg_database=args.pg_database + "_fleet",
        quick=args.quick,
        log=log,
    )


def measure_activity_pg(workdir, args):
    from . import activity

    if args.database_url.lower() == "none":
        return None
    log("[6] the activity step on never-analyzed PostgreSQL tables")
    return activity.never_analyzed(
        args.database_url,
        args.pg_database + "_activity",
        workdir,
        patients=args.analyze_patients,
        appointments=args.analyze_appointments,
        log=log,
    )


def measure_big(redis, workdir, args):
    from . import e2e

    log(
        f"[4/4] big clinic over HTTP ({args.big_patients:,} / {args.big_appointments:,}, no latency, "
        f"rate limit {args.big_rate_limit:,}/min, one RQ worker, SQLite)"
    )
    return e2e.big_clinic(
        redis,
        workdir,
        patients=args.big_patients,
        appointments=args.big_appointments,
        rate_limit=args.big_rate_limit,
        first_budget=args.first_budget,
        incremental_budget=args.incremental_budget,
        activity_budget=args.activity_budget,
        log=log,
    )


def measure_fleet_view(redis, workdir, args):
    from . import fleet_view as fleet

    log("[7] fleet view at 1,000 organizations, 100 older runs each (SQLite, Flask test client)")
    repeat = 5 if args.quick else 20
    result = fleet.measure(f"sqlite:///{workdir}/fleet.db", redis.url, workdir, repeat=repeat, history=100)
    log(fleet.render(result))
    return result


def measure_versus_dlt(redis, workdir, args):
    from . import versus_dlt

    log("[8] versus dlt's rest_api source: our engine in-process, dlt's conditions (issue 14)")
    return versus_dlt.measure(
        redis,
        workdir,
        quick=args.quick,
        server_url=args.database_url,
        pg_database=args.pg_database + "_dlt",
        dlt_python=args.dlt_python,
        log=log,
    )


def measure_tick(redis, workdir, args):
    from . import tick

    log(f"[5/5] scheduler tick over {args.tick_orgs:,} organizations")
    return tick.run(redis.url, workdir, args, log=log)


# -- main ----------------------------------------------------------------------------------------


def measure_api(redis, workdir, args):
    from . import api_pages

    patients, appointments = (2000, 4000) if args.quick else (20000, 40000)
    urls = ["sqlite"] + ([args.database_url] if args.database_url.lower() != "none" else [])
    log(f"[api] data API pages, {patients:,} patients / {appointments:,} appointments, limit=500")
    return api_pages.run(redis, workdir, urls, patients, appointments)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", help="small sizes, under two minutes; writes nothing by default"
    )
    p.add_argument(
        "--database-url",
        default=common.PG_DEFAULT,
        help="PostgreSQL server to create the scratch database on ('none' skips PostgreSQL); "
        f"default {common.PG_DEFAULT}",
    )
    p.add_argument("--pg-database", default=common.PG_BENCH_DB, help="scratch database (created and dropped)")
    p.add_argument(
        "--only",
        default="e2e,ingest,activity,big,api,fleet,activity-pg,fleet-view,tick,versus-dlt",
        help="comma list of: e2e, ingest, activity, big, api, fleet, activity-pg, fleet-view, tick, versus-dlt",
    )
    p.add_argument(
        "--dlt-python", help="versus-dlt: an interpreter with dlt installed, to run dlt's side too"
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--latency-ms", type=int, default=100)
    p.add_argument("--no-what-ifs", dest="what_ifs", action="store_false", help="skip the what-if variants")
    p.add_argument("--no-tracemalloc", dest="tracemalloc", action="store_false")
    p.add_argument("--output", help=f"markdown report path (default {ROOT_DOC} for a full run)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--json", help="also dump the raw results here")
    p.add_argument("--from-json", help="measure nothing: re-render the report from a --json dump")
    args = p.parse_args(argv)
    args.guide_patients, args.guide_appointments = 651, 296
    if args.quick:
        args.runs = min(args.runs, 1)
        args.big_patients, args.big_appointments = 5_000, 15_000
        args.small_patients, args.small_appointments = 1_000, 3_000
        args.what_ifs = False
        args.tracemalloc = False
        args.first_budget, args.incremental_budget, args.activity_budget = 60, 30, 10
        args.fleet_sizes, args.fleet_workers, args.fleet_pollers = [4], (1, 4), [10]
        args.analyze_patients, args.analyze_appointments = 2_000, 6_000
    else:
        args.big_patients, args.big_appointments = 100_000, 300_000
        args.small_patients, args.small_appointments = 10_000, 30_000
        args.first_budget, args.incremental_budget, args.activity_budget = 300, 120, 60
        args.fleet_sizes, args.fleet_workers, args.fleet_pollers = [24, 200], (1, 2, 4), [20, 50]
        args.analyze_patients, args.analyze_appointments = 20_000, 60_000
    args.big_rate_limit = 100_000
    args.tick_orgs = 200 if args.quick else 1000
    args.sections = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.output is None and not args.quick:
        args.output = ROOT_DOC
    if args.no_write:
        args.output = None
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        for key, value in results.get("args", {}).items():
            if key not in ("output", "no_write", "json", "from_json"):
                setattr(args, key, value)
        command = results.get("command", "python -m bench.run")
        log(render(results, args, command))
        if args.output:
            write_document(args.output, render(results, args, command, document=True))
            log(f"\nwrote {os.path.relpath(args.output, common.ROOT)}")
        return
    started = time.monotonic()
    facts = common.machine()
    facts["loadavg_start"] = facts.pop("loadavg")
    command = "python -m bench.run" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")
    log(
        f"Routiq sync benchmark — {facts['nproc']} cores, Python {facts['python']}, load {facts['loadavg_start']}"
    )
    results = {
        "machine": facts,
        "command": command,
        "args": {k: v for k, v in vars(args).items() if k != "sections"},
    }
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            if "e2e" in args.sections:
                results["e2e"] = measure_e2e(redis, workdir, args)
            if "ingest" in args.sections:
                results["ingest"] = measure_ingest(workdir, args)
            if "activity" in args.sections:
                results["activity"] = measure_activity(workdir, args)
            if "big" in args.sections:
                results["big"] = measure_big(redis, workdir, args)
            if "api" in args.sections:
                results["api"] = measure_api(redis, workdir, args)
            if "fleet" in args.sections:
                results["fleet"] = measure_fleet(redis, workdir, args)
            if "activity-pg" in args.sections:
                results["activity_pg"] = measure_activity_pg(workdir, args)
            if "fleet-view" in args.sections:
                results["fleet_view"] = measure_fleet_view(redis, workdir, args)
            if "tick" in args.sections:
                results["tick"] = measure_tick(redis, workdir, args)
            if "versus-dlt" in args.sections:
                results["versus_dlt"] = measure_versus_dlt(redis, workdir, args)
        finally:
            redis.stop()
    facts["loadavg_end"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    facts["wall_minutes"] = (time.monotonic() - started) / 60
    report = render(results, args, command)
    log()
    log(report)
    if args.output:
        write_document(args.output, render(results, args, command, document=True))
        log(f"\nwrote {os.path.relpath(args.output, common.ROOT)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, default=str, indent=1)


# Below this line docs/benchmarks.md is written by hand (analyses, profiles): a new run keeps it.
NOTES_MARKER = "<!-- make bench keeps everything below this line: notes written by hand -->"


def write_document(path, generated):
    """Write the generated report, keeping the hand-written notes below NOTES_MARKER."""
    notes = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) :]
    with open(path, "w") as f:
        f.write(generated.rstrip("\n") + "\n\n" + (notes or NOTES_MARKER + "\n"))


def render(results, args, command, document=False):
    from .report import render_document, render_summary

    out = render_document(results, args, command) if document else render_summary(results, args)
    if results.get("api"):
        from .api_pages import render_markdown

        out = out.rstrip("\n") + "\n\n" + render_markdown(results["api"])
    return out


if __name__ == "__main__":
    main()
