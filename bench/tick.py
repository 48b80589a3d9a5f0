"""The scheduler tick over a fleet: `python -m bench.tick [--orgs 1000] [--database-url URL]`.

Builds N organizations (each with a few patients and appointments), then times, in one process
against a real Redis queue: a tick where every organization is due (it starts at most
SCHEDULER_MAX_STARTS_PER_TICK), a tick where none is (the steady state between runs), and, for
comparison, what the old tick did on every pass: refresh every organization's activity serially.
"""

import argparse
import json
import os
import time
from datetime import timedelta

from . import common


def _seed(orgs, patients, appointments):
    from sqlalchemy import insert

    from routiq_admin.extensions import db
    from routiq_admin.models import Appointment, Organization, Patient, utcnow

    now = utcnow()
    probe = Organization(id="org_probe", name="probe")
    probe.set_api_key(common.BENCH_KEY)
    encrypted, last4, shard = probe.cliniko_api_key_encrypted, probe.cliniko_key_last4, probe.cliniko_shard
    rows = [
        {
            "id": f"org_{i:05d}",
            "name": f"Clinic {i}",
            "cliniko_api_key_encrypted": encrypted,
            "cliniko_key_last4": last4,
            "cliniko_shard": shard,
            "sync_enabled": True,
            "created_at": now,
            "full_sync_at": "02:30",
            "quiet_weekdays_only": False,
            "consecutive_failures": 0,
        }
        for i in range(orgs)
    ]
    db.session.execute(insert(Organization), rows)
    for i in range(orgs):
        org_id = f"org_{i:05d}"
        db.session.execute(
            insert(Patient),
            [{"organization_id": org_id, "cliniko_id": str(p), "synced_at": now} for p in range(patients)],
        )
        db.session.execute(
            insert(Appointment),
            [
                {
                    "organization_id": org_id,
                    "cliniko_id": str(a),
                    "patient_cliniko_id": str(a % patients),
                    "starts_at": now + timedelta(days=(a % 60) - 30),
                    "synced_at": now,
                }
                for a in range(appointments)
            ],
        )
    db.session.commit()


def measure(database_url, redis_url, workdir, orgs=1000, patients=20, appointments=10, log=print):
    """Return the tick's figures over `orgs` organizations on one database."""
    from sqlalchemy import delete, update

    from routiq_admin.extensions import db
    from routiq_admin.models import Organization, SyncRun, utcnow
    from routiq_admin.sync.activity import refresh_activity
    from routiq_admin.sync.tick import tick

    app = common.make_app(common.app_config(database_url, redis_url, workdir))
    common.migrate(app)
    out = {
        "database": database_url.split(":", 1)[0],
        "orgs": orgs,
        "patients": patients,
        "appointments": appointments,
    }
    with app.app_context():
        _seed(orgs, patients, appointments)
        limit = app.config["SCHEDULER_MAX_STARTS_PER_TICK"]
        started = time.perf_counter()
        summary = tick()
        out["all_due_seconds"] = time.perf_counter() - started
        out["all_due_started"] = len(summary["started"])
        out["max_starts"] = limit
        # every organization just ran: none is due until its next run
        db.session.execute(delete(SyncRun))
        db.session.execute(update(Organization).values(next_run_at=utcnow() + timedelta(hours=1)))
        db.session.commit()
        times = []
        for _ in range(5):
            started = time.perf_counter()
            summary = tick()
            times.append(time.perf_counter() - started)
            assert summary["started"] == []
        out["none_due_seconds"] = common.median(times)
        started = time.perf_counter()
        for org_id in db.session.execute(db.select(Organization.id)).scalars().all():
            refresh_activity(org_id)
            db.session.commit()
        out["old_activity_pass_seconds"] = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    log(
        f"    {out['database']}: all due {out['all_due_seconds']:.2f} s ({out['all_due_started']} started), "
        f"none due {out['none_due_seconds'] * 1000:.0f} ms, old per-org activity pass {out['old_activity_pass_seconds']:.2f} s"
    )
    return out


def run(redis_url, workdir, args, log=print):
    """Measure on SQLite, and on PostgreSQL unless its URL is 'none'."""
    results = []
    log(f"  scheduler tick over {args.tick_orgs:,} organizations …")
    results.append(
        measure(f"sqlite:///{os.path.join(workdir, 'tick.db')}", redis_url, workdir, args.tick_orgs, log=log)
    )
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    if args.database_url.lower() != "none":
        try:
            with common.postgres_database(args.database_url, args.pg_database + "_tick") as url:
                results.append(measure(url, redis_url, workdir, args.tick_orgs, log=log))
        except Exception as exc:  # PostgreSQL unreachable: report, do not lose the rest
            log(f"    PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            results.append({"database": "postgresql", "error": f"{type(exc).__name__}: {exc}"[:500]})
    return results


def main():
    p = argparse.ArgumentParser(prog="python -m bench.tick", description=__doc__.splitlines()[0])
    p.add_argument("--orgs", dest="tick_orgs", type=int, default=1000)
    p.add_argument("--database-url", default=common.PG_DEFAULT)
    p.add_argument("--pg-database", default=common.PG_BENCH_DB)
    args = p.parse_args()
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            print(json.dumps(run(redis.url, workdir, args), indent=1))
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
