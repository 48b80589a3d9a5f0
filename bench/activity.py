"""The activity step on PostgreSQL tables that were never analyzed (right after a bulk load).

Loads a clinic with the real engine (activity skipped, so nothing runs ANALYZE), then times
`refresh_activity` alone: the first pass (every patient written), an unchanged pass over the
whole clinic (no row written), an unchanged incremental pass (only the candidates: none), an
incremental pass a day later (the window edges moved: a day's appointments' patients), and the
unchanged ones again after ANALYZE. The statements' plans must not depend on statistics.

Without the clock margin (one host, one clock): with it, the rows the load wrote in the minute
before the first pass would be candidates again, as they would not be for a run minutes later.
"""

import os
import time

from . import common, ingest


def never_analyzed(server_url, pg_database, workdir, *, patients=20_000, appointments=60_000, log=print):
    from datetime import timedelta

    from sqlalchemy import text

    from routiq_admin.extensions import db
    from routiq_admin.models import utcnow
    from routiq_admin.sync.activity import refresh_activity

    with common.postgres_database(server_url, pg_database) as url:
        loaded = ingest.run_subprocess(url, patients, appointments)
        instance = os.path.join(workdir, "activity-instance")
        app = common.make_app(common.app_config(url, None, instance, ACTIVITY_CLOCK_MARGIN_SECONDS=0))
        result = {"patients": patients, "appointments": appointments, "load_status": loaded["status"]}
        with app.app_context():
            stats = db.session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('patients', 'appointments') "
                    "AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
                )
            ).scalar()
            result["analyzed_before"] = bool(stats)
            db.session.commit()

            def timed(label, **kwargs):
                started = time.perf_counter()
                written = refresh_activity("org_bench", **kwargs)
                db.session.commit()
                result[label] = {"seconds": time.perf_counter() - started, "written": written}

            timed("first")
            timed("unchanged", full=True)
            timed("unchanged_incremental")
            timed("day_later_incremental", now=utcnow() + timedelta(days=1))
            timed("back_incremental")  # the clock back to now: the same patients again
            db.session.execute(text("ANALYZE patients, appointments"))
            db.session.commit()
            timed("unchanged_after_analyze", full=True)
            timed("unchanged_incremental_after_analyze")
            db.session.remove()
            db.engine.dispose()
    log(
        f"    activity step, never-analyzed PostgreSQL tables, {patients:,} / {appointments:,}: "
        f"first {result['first']['seconds']:.2f} s ({result['first']['written']:,} written), "
        f"unchanged {result['unchanged']['seconds']:.2f} s ({result['unchanged']['written']} written), "
        f"unchanged incremental {result['unchanged_incremental']['seconds']:.3f} s "
        f"({result['unchanged_incremental']['written']} written), "
        f"a day later incremental {result['day_later_incremental']['seconds']:.3f} s "
        f"({result['day_later_incremental']['written']} written); "
        f"after ANALYZE {result['unchanged_after_analyze']['seconds']:.2f} s, "
        f"incremental {result['unchanged_incremental_after_analyze']['seconds']:.3f} s"
        f" (statistics before: {result['analyzed_before']}); load {os.getloadavg()[0]:.2f}"
    )
    return result


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.activity", description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=20_000)
    p.add_argument("--appointments", type=int, default=60_000)
    p.add_argument("--database-url", default=common.PG_DEFAULT)
    p.add_argument("--pg-database", default="routiq_bench_activity")
    a = p.parse_args()
    with common.scratch_dir() as workdir:
        never_analyzed(
            a.database_url, a.pg_database, workdir, patients=a.patients, appointments=a.appointments
        )
