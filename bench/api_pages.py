"""The data API's page time (issue 16): p95 of a 500-row page ≤ 50 ms.

Seeds one organization with N patients and M appointments (plain inserts: this measures
reading, not syncing), then walks every page of `GET …/patients?limit=500` (unfiltered, by
activity, by updated_since) and `…/appointments?limit=500` with cursors through the Flask
test client: the whole request path (bearer lookup, rate limiter in Redis, scope and org
checks, the keyset query, serialization, JSON), without a socket.

`python -m bench.api_pages [--database-url sqlite|postgresql://…] [--patients N] [--appointments M]`
prints one JSON line; `python -m bench.run --only api` puts it in the report.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta

from . import common

TARGET_MS = 50.0
LIMIT = 500
ACTIVITY = ("active", "recently_active", "upcoming_only", "inactive")


def _seed(org_id, patients, appointments):
    from routiq_admin.extensions import db
    from routiq_admin.models import Appointment, Patient, utcnow

    rng, now = random.Random(16), utcnow()
    batch = 5000
    for start in range(0, patients, batch):
        rows = [
            {
                "organization_id": org_id,
                "cliniko_id": str(10**12 + i),
                "first_name": f"First{i}",
                "last_name": f"Last{rng.randrange(10**6)}",
                "email": f"p{i}@example.com",
                "activity_status": rng.choice(ACTIVITY),
                "recent_appointment_count": rng.randrange(3),
                "upcoming_appointment_count": rng.randrange(3),
                "total_appointment_count": rng.randrange(30),
                "last_appointment_at": now - timedelta(days=rng.randrange(1, 90)),
                "next_appointment_at": now + timedelta(days=rng.randrange(1, 90)),
                "cliniko_updated_at": now - timedelta(days=rng.randrange(400)),
                "synced_at": now - timedelta(minutes=rng.randrange(60 * 24 * 30)),
            }
            for i in range(start, min(start + batch, patients))
        ]
        db.session.execute(Patient.__table__.insert(), rows)
    for start in range(0, appointments, batch):
        rows = [
            {
                "organization_id": org_id,
                "cliniko_id": str(2 * 10**12 + i),
                "patient_cliniko_id": str(10**12 + rng.randrange(patients)),
                "starts_at": now + timedelta(hours=rng.randrange(-24 * 365, 24 * 90)),
                "ends_at": now + timedelta(hours=rng.randrange(-24 * 365, 24 * 90)),
                "synced_at": now - timedelta(minutes=rng.randrange(60 * 24 * 30)),
            }
            for i in range(start, min(start + batch, appointments))
        ]
        db.session.execute(Appointment.__table__.insert(), rows)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE patients")
            conn.exec_driver_sql("ANALYZE appointments")
            conn.commit()
    return now


def _walk(client, path, token, params, min_samples):
    """Walk every page of `path` (again, until min_samples requests); return wall and CPU times in ms.

    The CPU time (this thread's) leaves out waiting for a core on a loaded machine, and the
    database server's and Redis's own work.
    """
    times, cpu, rows = [], [], 0
    while len(times) < min_samples:
        cursor = None
        while True:
            query = {**params, "limit": LIMIT, **({"cursor": cursor} if cursor else {})}
            t0, c0 = time.perf_counter(), time.thread_time()
            response = client.get(path, query_string=query, headers={"Authorization": f"Bearer {token}"})
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
            body = response.get_json()
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {body}")
            rows += len(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
    return times, cpu, rows


def p95(values):
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def measure(database_url, redis_url, workdir, patients=20000, appointments=40000, min_samples=40):
    """Seed, walk the pages, and return the figures of every scenario."""
    from routiq_admin.extensions import db
    from routiq_admin.models import SCOPES, ApiToken, utcnow
    from routiq_admin.timefmt import iso

    instance = os.path.join(workdir, "instance-api")
    os.makedirs(instance, exist_ok=True)
    config = common.app_config(
        database_url, redis_url, instance, API_RATE_LIMIT_READ_PER_MINUTE=10**9, SQLALCHEMY_ECHO=False
    )
    app = common.make_app(config)
    common.migrate(app)
    with app.app_context():
        org = common.make_org("org_bench_api")
        row, token = ApiToken.issue(name="bench", organization_id=org.id, scopes=SCOPES)
        db.session.add(row)
        db.session.commit()
        now = _seed(org.id, patients, appointments)
        client = app.test_client()
        base = f"/api/v1/organizations/{org.id}"
        client.get(f"{base}/patients", headers={"Authorization": f"Bearer {token}"})  # warm up
        scenarios = [
            ("patients", f"{base}/patients", {}),
            ("patients, activity=active", f"{base}/patients", {"activity": "active"}),
            (
                "patients, updated_since 7 days",
                f"{base}/patients",
                {"updated_since": iso(now - timedelta(days=7))},
            ),
            ("appointments", f"{base}/appointments", {}),
        ]
        out = []
        for name, path, params in scenarios:
            times, cpu, rows = _walk(client, path, token, params, min_samples)
            out.append(
                {
                    "scenario": name,
                    "requests": len(times),
                    "rows": rows,
                    "p50_ms": statistics.median(times),
                    "p95_ms": p95(times),
                    "max_ms": max(times),
                    "cpu_p50_ms": statistics.median(cpu),
                    "cpu_p95_ms": p95(cpu),
                }
            )
        db.session.remove()
        db.engine.dispose()
    return {
        "database": database_url.split(":", 1)[0],
        "loadavg": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
        "patients": patients,
        "appointments": appointments,
        "measured_at": iso(utcnow()),
        "scenarios": out,
        "target_ms": TARGET_MS,
        "met": all(s["p95_ms"] <= TARGET_MS for s in out),
    }


def render_markdown(results):
    """Return the report section for one or more measure() results."""
    lines = [
        "## Data API: 500-row pages (issue 16)",
        "",
        "`python -m bench.api_pages` (or `python -m bench.run --only api`): every page of each scenario "
        f"walked with cursors through the Flask test client, `limit={LIMIT}`; target p95 ≤ {TARGET_MS:.0f} ms. "
        "CPU: this process's time per request (without waiting for a core, nor the database server's "
        "or Redis's work). Load average at the end of each database: "
        + ", ".join(f"{r['database']} {r['loadavg']}" for r in results)
        + ".",
        "",
        "| database | patients / appts | scenario | requests | p50 | p95 | max | CPU p50 / p95 | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        for s in result["scenarios"]:
            lines.append(
                f"| {result['database']} | {result['patients']:,} / {result['appointments']:,} | {s['scenario']} "
                f"| {s['requests']} | {s['p50_ms']:.1f} ms | {s['p95_ms']:.1f} ms | {s['max_ms']:.1f} ms "
                f"| {s['cpu_p50_ms']:.1f} / {s['cpu_p95_ms']:.1f} ms "
                f"| {'yes' if s['p95_ms'] <= TARGET_MS else '**no**'} |"
            )
    return "\n".join(lines) + "\n"


def run(redis, workdir, database_urls, patients, appointments):
    """Measure on each database URL (a PostgreSQL server URL gets a scratch database)."""
    results = []
    for url in database_urls:
        if url.startswith("postgresql"):
            with common.postgres_database(url, common.PG_BENCH_DB + "_api") as scratch:
                results.append(measure(scratch, redis.url, workdir, patients, appointments))
        else:
            path = os.path.join(workdir, "api-pages.db")
            results.append(measure(f"sqlite:///{path}", redis.url, workdir, patients, appointments))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", action="append", help="sqlite (default) or a PostgreSQL server URL")
    p.add_argument("--patients", type=int, default=20000)
    p.add_argument("--appointments", type=int, default=40000)
    args = p.parse_args(argv)
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            results = run(redis, workdir, args.database_url or ["sqlite"], args.patients, args.appointments)
        finally:
            redis.stop()
    print(json.dumps(results))
    print(render_markdown(results), file=sys.stderr)


if __name__ == "__main__":
    main()
