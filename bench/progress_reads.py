"""CPU of one progress read: GET /api/v1/sync/progress/<id> through the Flask test client.

`python -m bench.progress_reads [--requests 500] [--database-url none|postgresql://…] [--profile F]`:
a token, a run, 20 warm-up reads, then N timed reads (CPU and wall per request) in this process;
with --profile, a further N under cProfile written to F. No network: what the app itself costs.
"""

import argparse
import os
import time

from . import common


def measure(database_url, redis_url, workdir, requests=500, profile=None):
    """Return {"cpu_ms", "wall_ms"} per progress read (and write a cProfile file if asked)."""
    config = common.app_config(database_url, redis_url, os.path.join(workdir, "instance"))
    config["TESTING"] = False  # the production request path (error handlers, no test shortcuts)
    app = common.make_app(config)
    common.migrate(app)
    from routiq_admin.extensions import db
    from routiq_admin.models import ApiToken
    from routiq_admin.sync.runs import create_run

    with app.app_context():
        org = common.make_org()
        row, clear = ApiToken.issue(name="bench reader", organization_id=org.id, all_organizations=False)
        db.session.add(row)
        db.session.commit()
        sync_id = create_run(org).sync_id
        db.session.remove()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {clear}"}
    url = f"/api/v1/sync/progress/{sync_id}"
    for _ in range(20):
        assert client.get(url, headers=headers).status_code == 200
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        client.get(url, headers=headers)
    result = {
        "cpu_ms": (time.process_time() - cpu) / requests * 1000,
        "wall_ms": (time.perf_counter() - wall) / requests * 1000,
    }
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            client.get(url, headers=headers)
        profiler.disable()
        profiler.dump_stats(profile)
    with app.app_context():
        db.engine.dispose()
    return result


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.progress_reads", description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--database-url", default=common.PG_DEFAULT, help="PostgreSQL server, or 'none' (SQLite)")
    p.add_argument("--pg-database", default="routiq_bench_progress")
    p.add_argument("--profile", help="also write cProfile stats of N more reads to this file")
    args = p.parse_args(argv)
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            if args.database_url.lower() == "none":
                url, name = f"sqlite:///{workdir}/progress.db", "sqlite"
                r = measure(url, redis.url, workdir, args.requests, args.profile)
            else:
                name = "postgresql"
                with common.postgres_database(args.database_url, args.pg_database) as url:
                    r = measure(url, redis.url, workdir, args.requests, args.profile)
        finally:
            redis.stop()
    print(
        f"{name}: {r['cpu_ms']:.2f} ms CPU, {r['wall_ms']:.2f} ms wall per progress read ({args.requests} reads)"
    )


if __name__ == "__main__":
    main()
