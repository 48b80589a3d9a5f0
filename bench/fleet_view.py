"""The fleet view at 1,000 organizations: how long the organizations list takes to render.

`python -m bench.fleet_view [--size 1000] [--repeat 20] [--database-url postgresql://…]` builds the
test suite's fleet (tests/web/fleet_data.py: ten kinds of clinic, their runs, a member of two in
three and a superuser) in a scratch database and times full pages and htmx fragments through the
Flask test client (no network). Target: the first page under 300 ms (median). The CPU column
(this process's CPU time: Python and, on SQLite, the queries) holds on a loaded machine where the
wall clock does not.
"""

import argparse
import os
import statistics
import time

from . import common

TARGET_MS = 300
VIEWS = (
    ("first page, superuser (all clinics)", "boss@example.com", "/", False),
    ("first page, member (two in three)", "member@example.com", "/", False),
    ("filter failing", "boss@example.com", "/?state=failing", True),
    ("filter stale, sort last success", "boss@example.com", "/?state=stale&sort=last_success", True),
    ("search 'Clinic 05'", "boss@example.com", "/?q=Clinic+05", True),
    ("sort failures, page 5", "boss@example.com", "/?sort=failures&page=5", True),
)


def measure(database_url, redis_url, workdir, size=1000, repeat=20, history=0):
    """Return one row per view: median and worst milliseconds over `repeat` requests."""
    from tests.factories import login
    from tests.web import fleet_data

    config = common.app_config(
        database_url, redis_url, os.path.join(workdir, "instance"), WTF_CSRF_ENABLED=False
    )
    app = common.make_app(config)
    common.migrate(app)
    rows = []
    with app.app_context():
        fleet_data.build(size, history)
        for label, email, path, htmx in VIEWS:
            client = app.test_client()
            login(client, email, fleet_data.PASSWORD)
            headers = {"HX-Request": "true"} if htmx else {}
            for _ in range(2):  # warm-up: templates compiled, connections pooled
                assert client.get(path, headers=headers).status_code == 200
            times, cpu = [], []
            for _ in range(repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
                assert response.status_code == 200
            rows.append(
                {
                    "view": label,
                    "path": path,
                    "median_ms": statistics.median(times),
                    "max_ms": max(times),
                    "cpu_ms": statistics.median(cpu),
                }
            )
    database = database_url.split(":", 1)[0]
    return {"size": size, "repeat": repeat, "history": history, "database": database, "views": rows}


def render(result):
    """Return the markdown table of one measure() result."""
    lines = [
        f"{result['size']:,} organizations ({result.get('history', 0)} older runs each) on {result['database']}, "
        f"{result['repeat']} requests per view "
        f"(Flask test client, no network); target: first page < {TARGET_MS} ms (median).",
        "",
        "| view | path | median | worst | CPU of this process (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result["views"]:
        lines.append(
            f"| {r['view']} | `{r['path']}` | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms | "
            f"{r.get('cpu_ms', 0):.0f} ms |"
        )
    return "\n".join(lines)


def met(result):
    """Tell whether the first page (superuser, every clinic) rendered under the target."""
    return result["views"][0]["median_ms"] < TARGET_MS


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.fleet_view", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--history", type=int, default=0, help="older completed runs per organization")
    p.add_argument("--database-url", help="PostgreSQL server for a scratch database (default: SQLite)")
    args = p.parse_args(argv)
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            if args.database_url:
                with common.postgres_database(args.database_url, common.PG_BENCH_DB + "_fleet") as url:
                    result = measure(url, redis.url, workdir, args.size, args.repeat, args.history)
            else:
                result = measure(
                    f"sqlite:///{workdir}/fleet.db", redis.url, workdir, args.size, args.repeat, args.history
                )
        finally:
            redis.stop()
    print(render(result))
    print(f"\nfirst page under {TARGET_MS} ms: {'yes' if met(result) else 'NO'}")


if __name__ == "__main__":
    main()
