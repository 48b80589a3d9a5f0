"""Tables and docs/benchmarks.md for bench/run.py."""

import math
from datetime import UTC, datetime

from . import common

TARGET_E2E = 3.0
TARGET_SQLITE = 20_000
TARGET_PG = 10_000


# -- formatting --------------------------------------------------------------------------------


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def fmt_s(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f} s"


def e2e_tables(runs):
    rows = []
    for i, r in enumerate(runs, 1):
        f, s = r["first"], r["second"]
        rows.append(
            [
                i,
                f["status"],
                fmt_s(f["seconds"]),
                fmt_s(f["queue_wait_seconds"]),
                f["cliniko_requests"],
                f"{f['db']['patients']} / {f['db']['appointments']}",
                s["status"],
                fmt_s(s["seconds"]),
                s["cliniko_requests"],
            ]
        )
    firsts = [r["first"]["seconds"] for r in runs]
    seconds = [r["second"]["seconds"] for r in runs]
    rows.append(
        [
            "**median**",
            "",
            f"**{common.median(firsts):.2f} s**",
            "",
            "",
            "",
            "",
            f"**{common.median(seconds):.2f} s**",
            "",
        ]
    )
    timing = table(
        [
            "run",
            "first sync",
            "trigger → completed",
            "queue → started",
            "requests",
            "stored patients / appts",
            "incremental",
            "trigger → completed",
            "requests",
        ],
        rows,
    )
    # requests vs floor, from the first run
    from .e2e import RESOURCES

    r = runs[0]
    counts = r["first"]["entity_counts"]
    fetched = {
        "businesses": counts.get("businesses", {}).get("fetched", 0),
        "practitioners": None,
        "practitioners/inactive": None,
        "appointment_types": counts.get("appointment_types", {}).get("fetched", 0),
        "patients": counts.get("patients", {}).get("fetched", 0),
        "individual_appointments": counts.get("appointments", {}).get("fetched", 0),
    }
    made, made2 = r["first"]["requests"], r["second"]["requests"]
    rows, floor_total = [], 0
    for resource, _ in RESOURCES:
        n = fetched[resource]
        floor = 1 if n is None else max(1, math.ceil(n / 100))
        floor_total += floor
        records = (
            f"{counts.get('practitioners', {}).get('fetched', 0)} (active + inactive)" if n is None else n
        )
        rows.append([resource, records, floor, made.get(resource, 0), made2.get(resource, 0)])
    extra = {k: v for k, v in made.items() if k not in dict(RESOURCES)}
    for k, v in extra.items():
        rows.append([k, "", 0, v, made2.get(k, 0)])
    rows.append(
        [
            "**total**",
            "",
            f"**{floor_total}**",
            f"**{sum(made.values())}**",
            f"**{sum(made2.values())}**",
        ]
    )
    requests = table(
        ["resource", "records", "floor ceil(n/100)", "first sync made", "incremental made"], rows
    )
    check = (
        f"Simulator request log: {r['first']['simulator_requests']} requests "
        f"({r['first']['rate_limited']} answered 429); the run's `cliniko_requests`: "
        f"{r['first']['cliniko_requests']}."
    )
    return (
        timing,
        requests,
        check,
        common.median(firsts),
        common.median(seconds),
        sum(made.values()),
        floor_total,
    )


def ingest_table(results):
    rows = []
    for r in results:
        if "error" in r:
            first_line = r["error"].splitlines()[0][:80]
            rows.append([r["label"], "error", first_line, "", "", "", "", "", "", ""])
            continue
        t = r["timings"]
        pages = r["pages"]
        ph = r["phase_seconds"]
        records = r["records"]
        rest = r["ingest_seconds"] - ph["upsert"] - ph["progress_commit"]
        pr = t["patients"]["records"] / t["patients"]["seconds"]
        ar = t["appointments"]["records"] / t["appointments"]["seconds"]
        rows.append(
            [
                f"{r['database']} ({r['driver']})",
                r["label"],
                f"{r['patients']:,} / {r['appointments']:,}",
                f"**{r['records_per_second']:,.0f}**",
                f"{pr:,.0f} / {ar:,.0f}",
                f"{ph['upsert'] / records * 1e6:.0f} µs",
                f"{(ph['progress_commit'] - ph['db_commit']) / pages * 1e3:.2f} ms",
                f"{ph['db_commit'] / pages * 1e3:.2f} ms",
                f"{max(rest, 0) / records * 1e6:.0f} µs",
                f"{r['rss_after_mb']:.0f} MiB (+{r['rss_delta_mb']:.1f} during the run)"
                + (
                    f"; traced peak {r['tracemalloc_peak_mb']:.1f} MiB"
                    if r.get("tracemalloc_peak_mb")
                    else ""
                ),
            ]
        )
    return table(
        [
            "database",
            "configuration",
            "patients / appts",
            "records/s",
            "patients/s / appts/s",
            "upsert per record",
            "progress UPDATE per page",
            "COMMIT per page",
            "parse + rest per record",
            "process peak RSS (growth during the run)",
        ],
        rows,
    )


def big_table(big):
    rows = []

    def row(name, r):
        if r is None:
            return
        reqs = dict(r["requests"])
        reached = f"{r['watched']['seconds']:.1f} s" if r.get("watched") else "—"
        if r["status"] == "timeout":
            total = f"not finished (gave up after {r['observed_seconds']:.0f} s)"
        else:
            total = f"{r['status']}, {r['seconds']:.2f} s"
        rows.append(
            [
                name,
                total,
                reached,
                r["cliniko_requests"],
                ", ".join(f"{k} {v}" for k, v in reqs.items()),
            ]
        )

    row("first full sync", big.get("first"))
    row("incremental, unchanged", big.get("second"))
    return table(
        [
            "run (HTTP, one worker, SQLite)",
            "trigger → completed",
            "trigger → activity step",
            "requests",
            "per resource",
        ],
        rows,
    )


def tick_table(results):
    """The scheduler tick over a fleet (bench/tick.py)."""
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["database"], "—", "—", "—", r["error"][:80]])
            continue
        rows.append(
            [
                f"{r['database']}, {r['orgs']:,} orgs",
                f"{fmt_s(r['all_due_seconds'])} ({r['all_due_started']} started, cap {r['max_starts']})",
                f"{r['none_due_seconds'] * 1000:.0f} ms",
                fmt_s(r["old_activity_pass_seconds"]),
                "≤ 5 s: " + _met(r["all_due_seconds"] <= 5),
            ]
        )
    return table(["database", "tick, all due", "tick, none due", "old per-org activity pass", "target"], rows)


def _met(ok):
    return "yes" if ok else "**no**"


def summary_rows(e2e_first, e2e_second, made, floor, ingest_results, big, args, fleet=None, dlt=None):
    def find(db, label):
        for r in ingest_results:
            if r.get("database") == db and r.get("label") == label and "error" not in r:
                return r
        return None

    size = f"{args.big_patients // 1000}k/{args.big_appointments // 1000}k"
    small = f"{args.small_patients // 1000}k/{args.small_appointments // 1000}k"
    rows = []
    if made is not None:
        rows += [
            [
                f"guide clinic, trigger → completed (median of {args.runs})",
                "≤ 3 s (seed system: 360 s)",
                f"{e2e_first:.2f} s",
                _met(e2e_first <= TARGET_E2E),
            ],
            ["guide clinic, unchanged incremental run (median)", "—", f"{e2e_second:.2f} s", ""],
            [
                "requests vs floor (guide clinic)",
                f"= floor ({floor}, incl. 4 reference)",
                str(made),
                _met(made == floor),
            ],
        ]
    for db, label, name, target in (
        ("sqlite", "as shipped", f"SQLite ingest, {size}", TARGET_SQLITE),
        ("sqlite", "what-if WAL + synchronous=NORMAL", f"SQLite ingest, {size}, what-if WAL", TARGET_SQLITE),
        ("postgresql", "as shipped (psycopg 3)", f"PostgreSQL ingest, {size} (psycopg 3)", TARGET_PG),
    ):
        r = find(db, label)
        if r:
            rate = r["records_per_second"]
            rows.append([name, f"≥ {target:,}/s", f"{rate:,.0f}/s", _met(rate >= target)])
    traced, traced_small = find("sqlite", "tracemalloc"), find("sqlite", "tracemalloc, small")
    big_rss, small_rss = find("sqlite", "as shipped"), find("sqlite", "as shipped, small")
    if traced and traced_small:
        a, b = traced["tracemalloc_peak_mb"], traced_small["tracemalloc_peak_mb"]
        rows.append(
            [
                f"peak traced memory, {size} vs {small} ingest",
                "does not grow with size",
                f"{a:.1f} vs {b:.1f} MiB",
                _met(a < 2 * b + 5),
            ]
        )
    if big_rss and small_rss:
        a, b = big_rss["rss_delta_mb"], small_rss["rss_delta_mb"]
        rows.append(
            [
                f"peak RSS growth, {size} vs {small} ingest",
                "does not grow with size",
                f"+{a:.1f} vs +{b:.1f} MiB",
                _met(a - b < 20),
            ]
        )
    if big:
        sec = big.get("second")
        if sec:
            per = dict(sec["requests"])
            rows.append(
                [
                    f"unchanged incremental at {size}: requests",
                    "≤ 1 per entity",
                    ", ".join(f"{k} {v}" for k, v in per.items()),
                    _met(max(per.values(), default=0) <= 1),
                ]
            )
            t = "not finished" if sec["status"] == "timeout" else f"{sec['seconds']:.2f} s"
            rows.append(
                [
                    f"unchanged incremental at {size}: time",
                    "—",
                    t,
                    "**no**" if sec["status"] == "timeout" else "",
                ]
            )
    if fleet:
        first = fleet["views"][0]
        rows.append(
            [
                f"fleet view, first page at {fleet['size']:,} orgs (median)",
                "< 300 ms",
                f"{first['median_ms']:.0f} ms",
                _met(first["median_ms"] < 300),
            ]
        )
    if dlt:
        from .versus_dlt import summary_rows as dlt_rows

        rows += dlt_rows(dlt)
    return table(["figure", "target", "measured", "met"], rows)


def fleet_table(rows):
    def ms(progress, key):
        return "—" if not progress else f"{progress[key]:.0f}"

    base = {r["clinics"]: r["wall_seconds"] for r in rows if r["workers"] == 1 and not r["pollers"]}
    out = []
    for r in rows:
        one = base.get(r["clinics"])
        speedup = f"{one / r['wall_seconds']:.2f}×" if one and r["wall_seconds"] and r["workers"] > 1 else ""
        p = r.get("progress")
        out.append(
            [
                r["clinics"],
                r["workers"],
                r["pollers"] or "",
                ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items())),
                fmt_s(r["wall_seconds"], 1),
                speedup,
                f"{r['wall_seconds'] / r['clinics']:.2f} s" if r["wall_seconds"] else "—",
                f"{fmt_s(r['per_clinic_p50'])} / {fmt_s(r['per_clinic_p95'])}",
                f"{r['cpu_per_job']:.2f} s",
                f"{r['simulator_cpu_per_job']:.2f} / {r['other_cpu_per_job']:.2f} s"
                if "other_cpu_per_job" in r
                else "",
                f"{r['requests_per_job']:.1f}",
                f"{ms(p, 'p50_ms')} / {ms(p, 'p95_ms')} / {ms(p, 'p99_ms')}" if p else "",
                r["load_before"].split()[0],
            ]
        )
    headers = [
        "clinics",
        "workers",
        "pollers",
        "runs",
        "wall",
        "vs 1 worker",
        "wall per clinic",
        "run p50 / p95",
        "worker CPU per job",
        "simulator / rest of machine CPU per job",
        "requests per job",
        "progress p50 / p95 / p99 ms",
        "load (1 min) at start",
    ]
    return table(headers, out)


def activity_pg_table(a):
    rows = [
        [label, fmt_s(a[key]["seconds"]), f"{a[key]['written']:,}"]
        for label, key in (
            ("first pass (every patient gets values)", "first"),
            ("unchanged, still never analyzed", "unchanged"),
            ("unchanged, incremental, never analyzed", "unchanged_incremental"),
            ("a day later, incremental, never analyzed", "day_later_incremental"),
            ("unchanged, after ANALYZE", "unchanged_after_analyze"),
            ("unchanged, incremental, after ANALYZE", "unchanged_incremental_after_analyze"),
        )
        if key in a
    ]
    return table(["refresh_activity", "time", "patient rows written"], rows)


def _pick(results, db, prefix):
    for r in results or ():
        if r.get("database") == db and r.get("label", "").startswith(prefix) and "error" not in r:
            return r
    return None


def _sections(results, args):
    """(title, markdown) pairs for every measured section."""
    out = []
    e2e_first = e2e_second = made = floor = None
    if results.get("e2e"):
        timing, requests, check, e2e_first, e2e_second, made, floor = e2e_tables(results["e2e"])
        out.append(("1. Guide clinic end to end (651 patients, 296 appointments, comprehensive)", timing))
        out.append(("2. Requests vs the floor (first run)", requests + "\n\n" + check))
    if results.get("ingest"):
        out.append(("3. Ingest rate and memory (no HTTP)", ingest_table(results["ingest"])))
    if results.get("activity"):
        rows = [
            [f"{a['patients']:,} / {a['appointments']:,}", fmt_s(a["seconds"])] for a in results["activity"]
        ]
        out.append(
            ("3b. The activity step alone (SQLite)", table(["patients / appts", "refresh_activity"], rows))
        )
    if results.get("big"):
        big = results["big"]
        title = f"4. Unchanged-clinic incremental run at {big['patients']:,} / {big['appointments']:,}"
        out.append((title, big_table(big)))
    if results.get("fleet"):
        out.append(
            ("5. Fleet: guide clinics through real workers (PostgreSQL)", fleet_table(results["fleet"]))
        )
    if results.get("activity_pg"):
        a = results["activity_pg"]
        title = f"6. The activity step on never-analyzed PostgreSQL tables, {a['patients']:,} / {a['appointments']:,}"
        out.append((title, activity_pg_table(a)))
    if results.get("fleet_view"):
        from .fleet_view import render as fleet_view_table

        out.append(("7. Fleet view at 1,000 organizations", fleet_view_table(results["fleet_view"])))
    if results.get("tick"):
        out.append(("Scheduler tick", tick_table(results["tick"])))
    if results.get("versus_dlt"):
        from . import versus_dlt

        out.append(
            (
                "8. Versus dlt's rest_api source, in-process (issue 14)",
                versus_dlt.render(results["versus_dlt"]),
            )
        )
    summary = summary_rows(
        e2e_first,
        e2e_second,
        made,
        floor,
        results.get("ingest") or [],
        results.get("big"),
        args,
        fleet=results.get("fleet_view"),
        dlt=results.get("versus_dlt"),
    )
    return summary, out


def render_summary(results, args):
    summary, sections = _sections(results, args)
    parts = []
    if summary:
        parts += ["== Summary ==", summary]
    for title, body in sections:
        parts += ["", f"== {title} ==", body]
    m = results["machine"]
    parts += [
        "",
        f"machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, {m['packages']}; "
        f"load average {m['loadavg_start']} at start, {m['loadavg_end']} at end; {m['wall_minutes']:.1f} min",
    ]
    return "\n".join(parts)


def render_document(results, args, command):
    summary, sections = _sections(results, args)
    m = results["machine"]
    now = m.get("measured_at") or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Sync benchmarks",
        "",
        f"Generated by `{command}` (`make bench`) on {now}; {m['wall_minutes']:.1f} minutes.",
        "Not a timed test: figures move with the machine's load (see below).",
        "",
        "## How to run",
        "",
        "```",
        "make bench                      # full run (~10 min), rewrites this file",
        "python -m bench.run --quick     # small sizes, under a minute, prints only",
        "python -m bench.run --only ingest --database-url none   # SQLite ingest only",
        "python -m bench.ingest --database-url sqlite:////tmp/x.db --patients 100000 --appointments 300000 --profile /tmp/ingest.prof",
        "```",
        "",
        "PostgreSQL: `--database-url` names the server (default "
        f"`{common.PG_DEFAULT}`); the bench creates the scratch database `{common.PG_BENCH_DB}`, "
        "uses it, and drops it. SQLite files, Redis (embedded) and the simulator live in a temp dir.",
        "",
        "## Machine",
        "",
        f"- `nproc`: {m['nproc']} ({m['cpu']})",
        f"- Python {m['python']} on {m['platform']}",
        f"- {m['packages']}; SQLite {sqlite_version()}; PostgreSQL server {pg_version(args)}",
        f"- load average {m['loadavg_start']} at start, {m['loadavg_end']} at end",
        "- `free -h`:",
        "",
        "```",
        m["free_h"],
        "```",
        "",
    ]
    if summary:
        lines += ["## Summary", "", summary, ""]
    for title, body in sections:
        lines += [f"## {title}", "", body, ""]
    lines += [analysis(results).strip(), "", METHOD.strip(), ""]
    return "\n".join(lines)


def sqlite_version():
    import sqlite3

    return sqlite3.sqlite_version


def pg_version(args):
    if getattr(args, "database_url", "none").lower() == "none":
        return "(skipped)"
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(args.database_url)
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
            autovacuum = conn.execute(text("SHOW autovacuum")).scalar()
        engine.dispose()
        return f"{version} (autovacuum {autovacuum})"
    except Exception:  # noqa: BLE001 - informational only
        return "(unreachable)"


def _figures(results):
    """Numbers the analysis quotes, from this run ("—" when not measured)."""
    f = {}
    ing = results.get("ingest") or []

    def find(db, label):
        return next(
            (r for r in ing if r.get("database") == db and r.get("label") == label and "error" not in r), None
        )

    def per(r):
        ph, pages, records = r["phase_seconds"], r["pages"], r["records"]
        rest = max(0.0, r["ingest_seconds"] - ph["upsert"] - ph["progress_commit"])
        return {
            "rate": f"{r['records_per_second']:,.0f}",
            "upsert": f"{ph['upsert'] / records * 1e6:.0f}",
            "update": f"{(ph['progress_commit'] - ph['db_commit']) / pages * 1e3:.1f}",
            "commit": f"{ph['db_commit'] / pages * 1e3:.1f}",
            "rest": f"{rest / records * 1e6:.0f}",
        }

    dash = {"rate": "—", "upsert": "—", "update": "—", "commit": "—", "rest": "—"}
    for key, db, label in (
        ("sq", "sqlite", "as shipped"),
        ("sqs", "sqlite", "as shipped, small"),
        ("wal", "sqlite", "what-if WAL + synchronous=NORMAL"),
        ("pg", "postgresql", "as shipped (psycopg 3)"),
    ):
        r = find(db, label)
        for k, v in (per(r) if r else dash).items():
            f[f"{key}_{k}"] = v
    big_rss, small_rss = find("sqlite", "as shipped"), find("sqlite", "as shipped, small")
    f["rss_big"] = f"{big_rss['rss_delta_mb']:.1f}" if big_rss else "—"
    f["rss_small"] = f"{small_rss['rss_delta_mb']:.1f}" if small_rss else "—"
    t, ts = find("sqlite", "tracemalloc"), find("sqlite", "tracemalloc, small")
    f["traced"] = f"{t['tracemalloc_peak_mb']:.1f}" if t else "—"
    f["traced_small"] = f"{ts['tracemalloc_peak_mb']:.1f}" if ts else "—"
    runs = results.get("e2e") or []
    f["e2e"] = f"{common.median([r['first']['seconds'] for r in runs]):.1f}" if runs else "—"
    f["queue"] = f"{common.median([r['first']['queue_wait_seconds'] for r in runs]):.2f}" if runs else "—"
    act = sorted(results.get("activity") or [], key=lambda a: a["patients"])
    for key, a in zip(("act_small", "act_big"), (act[:1] + act[-1:]) if act else (), strict=False):
        f[key] = f"{a['seconds']:.2f} s at {a['patients'] // 1000}k / {a['appointments'] // 1000}k"
    f.setdefault("act_small", "—")
    f.setdefault("act_big", "—")
    big = results.get("big") or {}
    sec = big.get("second")
    f["big_inc"] = f"{sec['seconds']:.2f}" if sec and sec.get("seconds") is not None else "—"
    f["big_inc_appts"] = sec["requests"].get("individual_appointments", "—") if sec else "—"
    first = big.get("first")
    f["big_first"] = f"{first['seconds']:.1f}" if first and first.get("seconds") is not None else "—"
    f["big_first_requests"] = first["cliniko_requests"] if first else "—"
    return f


def analysis(results):
    return ANALYSIS.format(**_figures(results))


ANALYSIS = """
## Where the time goes

Figures here come from the tables above unless marked *(dev)*: those were measured on this
machine while changing the code (2026-11-29) and are not re-measured by the bench. Table 3's
breakdown is measured inside the real engine (`SyncEngine._ingest`): `Upserter.upsert`, the
guarded progress `UPDATE … RETURNING` of `_commit`, and the DBAPI `COMMIT`; "parse + rest" is
the remainder (parse, counters, marks).

**Guide clinic.** {e2e} s from trigger to `completed` (RQ hand-off {queue} s); most of the rest
is Cliniko's latency: 14 requests in 5 round trips (the four reference lists together; the
first pages of patients and appointments together; the patients' other 6 pages 3 at a time,
the appointments' first page taken ahead holding the fourth slot; the appointments' last 2).
The notes below the tables have the job's timeline and profile.

**SQLite ingest: {sq_rate}/s at 100k / 300k, {sqs_rate}/s at 10k / 30k.** Per record the
upsert takes {sq_upsert} µs and parse and the rest {sq_rest} µs; a commit costs {sq_commit} ms.
What got it here, each measured at 100k / 300k *(dev; this machine ran the code as it stood on
2026-11-28 at 8,000–9,000/s)*:
- prefetched pages share a commit for up to 1 s (README, "Decisions"); every commit rewrites
  the index pages its rows touched, and `ix_appointments_org_patient_starts` and
  `ix_appointments_org_starts` receive keys in random order, so a commit per page paid for the
  same pages again and again (0.25 s: 16,700/s; 1 s: 20,000/s);
- the SQLite upsert is one prepared statement run by `executemany`, with values converted
  once in `sync/upsert.py` (SQLAlchemy's per-parameter bind processing, eight `UTCDateTime`
  columns per appointment through a TypeDecorator, was half of the upsert time);
- a 16 MiB page cache per SQLite connection instead of SQLite's 2 MiB (+10–20 %), a fixed
  bound: it does not grow with the clinic;
- `cliniko/parse.py` builds each row in one dict without `urlsplit` (13.6 → 8.0 µs per
  appointment).
What is left is mostly SQLite maintaining three indexes on `appointments` *(dev: SQLite alone costs
~10 µs per record with only the unique index, ~34 µs with all three)*.
WAL + `synchronous=NORMAL` (what-if row: {wal_rate}/s) saves fsyncs, not page writes.

**PostgreSQL ingest: {pg_rate}/s at 100k / 300k.** A page travels as one JSON parameter that
`jsonb_populate_recordset(NULL::appointments, …)` unpacks into the table's own row type. The
previous form, `INSERT … SELECT unnest(array)` with one array per column, spent most of its
time in psycopg's text array dumper, which quotes every element with a regular expression in
Python *(dev: 8,900/s; JSON: 12,600/s)*. On the server a page of 100 appointments takes
*(dev, `EXPLAIN ANALYZE`)* ~3 ms: four B-tree indexes, the heap, and the per-row foreign-key
check on `organization_id` (~0.65 ms).

**Activity step.** {act_small}, {act_big} (table 3b): the index `(organization_id,
patient_cliniko_id, starts_at)` (migration 0002) turns each patient's counts into seeks.

**Memory.** Pages are streamed: the client yields pages, at most 4 ahead, and the engine keeps
counters, the newest mark and at most 50 errors. Peak traced Python allocations during the run:
{traced} MiB at 100k / 300k, {traced_small} MiB at 10k / 30k. Process RSS grew by {rss_big} MiB
and {rss_small} MiB during those runs: SQLite's page cache filling towards its fixed 16 MiB bound
(the process's earlier peak, the simulator's clinic built before the run, hides it at 100k).

**Big clinic over HTTP.** The first full sync made {big_first_requests} requests, the floor,
in {big_first} s; the unchanged incremental run made one request per entity
(appointments: {big_inc_appts}) and took {big_inc} s; its activity step recomputes only the
patients that may have changed (section 6).
"""

METHOD = """
## How each figure is measured

1. **End to end** (`bench/e2e.py`): per run a fresh SQLite file (migrated with
   `flask_migrate.upgrade`), a fresh `Simulator(651, 296, latency_ms=100)` served over HTTP by
   `SimulatorServer`, the embedded Redis, and one `python -m workers.worker` process with the
   environment tests/conftest.py gives workers; the worker is idle before the clock starts.
   Time = the run's `completed_at` minus the wall clock just before `start_sync(org,
   "comprehensive", "manual")` (which commits the row and enqueues the job). Then a second
   `start_sync` on the same database with nothing changed (incremental).
2. **Requests**: the simulator's `request_log` for that run, by resource, next to the run's
   `cliniko_requests`; floor = ceil(records / 100) per list, at least 1.
3. **Ingest** (`bench/ingest.py`, one fresh process per row): the real `SyncEngine.run()`
   (comprehensive, full) with its Cliniko client replaced by an in-process one that renders
   the simulator's records 100 per page (the same dicts the HTTP client decodes; generated
   lazily). Every next page is at hand, as a prefetched one is, so pages share a commit for up
   to 1 s as they do behind the HTTP client's prefetch. Rendering time is measured and
   subtracted; the activity step is skipped (table 3b and 4 measure it). records/s = (patients + appointments) / their `_ingest` time. Memory =
   the process's `ru_maxrss` after minus before the run (the simulator's clinic is built
   before); "traced" = `tracemalloc` peak in a separate run.
4. **Big clinic** (`bench/e2e.py: big_clinic`): `Simulator(100_000, 300_000,
   rate_limit_per_minute=100_000)` over HTTP, no latency, `CLINIKO_RATE_LIMIT_PER_MINUTE=100000`,
   one worker, SQLite. Each run has a time budget; a run over it is abandoned (worker and work
   horse killed, run marked failed) and reported as not finished; pages and marks it committed
   stay, so the incremental run that follows is still a true unchanged incremental run.
5. **Fleet** (`bench/fleet.py`): per scenario a fresh PostgreSQL database, N organizations
   (one Cliniko key each, so one rate-limit budget each), the simulator as its own process
   (`flask cliniko simulate --latency-ms 100`), W `python -m workers.worker` processes idle
   before the clock starts, and for the progress rows gunicorn (`gunicorn.conf.py`, warmed
   up) with P pollers in the bench process, each reading one run's
   `/api/v1/sync/progress/<sync_id>` with its organization's bearer token every 0.25 s.
   Wall = the last `completed_at` minus the wall clock before the first `start_sync`; run
   p50/p95 = `completed_at - started_at` per run; worker CPU per job = the workers' utime +
   stime + reaped children's (their work horses), from `/proc/<pid>/stat`, over the scenario,
   divided by N. SQLite is not used for the fleet: it lets one writer in at a time, and a
   second worker's page commit fails with "database is locked".
6. **Activity on never-analyzed tables** (`bench/activity.py`): the engine loads the clinic
   into a fresh PostgreSQL database with the activity step skipped (nothing runs ANALYZE;
   `pg_stat_user_tables` confirms no statistics), then `refresh_activity` alone is timed:
   first pass, unchanged pass over the whole clinic (`full=True`), unchanged incremental pass,
   an incremental pass a day later (the window edges moved), and the unchanged passes again
   after `ANALYZE`.
"""
