"""A fleet: N guide-sized clinics synced at once through real `python -m workers.worker` processes.

The Procfile's processes, each its own OS process: the simulator (`flask cliniko simulate`, one
clinic per key, `--latency-ms`), W workers, and for the progress figures gunicorn serving the
app while P pollers read `/api/v1/sync/progress/<sync_id>` over HTTP. Every scenario starts from
a fresh database, so every run is a first full comprehensive sync.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from . import common

# A poller reads its run's progress this often (the guide's monitorSync polls every 2 s; we poll
# faster so a short run still yields hundreds of samples).
POLL_INTERVAL = 0.25
PG_DATABASE = "routiq_bench_fleet"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """CPU of a process and its reaped children (utime + stime + cutime + cstime), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """CPU time the whole machine has spent busy (every core, every process), in seconds."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]


class Simulator:
    """`flask cliniko simulate` in its own process (any key opens a clinic of the given size)."""

    def __init__(self, workdir, latency_ms, patients=651, appointments=296, rate_limit=None):
        port = _free_port()
        self.log = open(os.path.join(workdir, f"simulator-{patients}.log"), "ab")
        env = dict(os.environ, PYTHONPATH=common.ROOT, APP_ENV="test", INSTANCE_PATH=workdir)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "cliniko", "simulate"]
            + ["--port", str(port), "--latency-ms", str(latency_ms)]
            + ["--patients", str(patients), "--appointments", str(appointments)]
            + (["--rate-limit", str(rate_limit)] if rate_limit else []),
            cwd=common.ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{port}/{{shard}}/v1"
        try:
            _wait_port(port, self.proc, "simulator")
        except RuntimeError:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class Web:
    """gunicorn (the Procfile's `web`) on a free port."""

    def __init__(self, config, workdir):
        self.port = _free_port()
        self.log = open(os.path.join(workdir, "web.log"), "ab")
        env = common.worker_env(config)
        env.update(PORT=str(self.port), LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"]
            + ["--access-logfile", os.devnull],
            cwd=common.ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        _wait_port(self.port, self.proc, "gunicorn")
        self._warm_up()

    def _warm_up(self, timeout=120):
        """Wait until the app answers, then keep both gunicorn workers busy once (they import lazily)."""
        from concurrent.futures import ThreadPoolExecutor

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/login", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: requests.get(self.base_url + "/login", timeout=60), range(32)))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def _wait_port(port, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class Pollers:
    """P threads, each reading one run's progress over HTTP every POLL_INTERVAL until stopped."""

    def __init__(self, base_url, targets):
        import requests

        self.latencies, self.errors, self.error_kinds = [], 0, {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

        def poll(token, sync_id):
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            url = f"{base_url}/api/v1/sync/progress/{sync_id}"
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = session.get(url, timeout=10).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                ok = status == 200
                took = time.perf_counter() - started
                with self._lock:
                    if ok:
                        self.latencies.append(took)
                    else:
                        self.errors += 1
                        self.error_kinds[str(status)] = self.error_kinds.get(str(status), 0) + 1
                self._stop.wait(max(0.0, POLL_INTERVAL - took))

        self.threads = [threading.Thread(target=poll, args=t, daemon=True) for t in targets]
        for t in self.threads:
            t.start()

    def stop(self):
        self._stop.set()
        for t in self.threads:
            t.join(15)
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": len(ms),
            "errors": self.errors,
            "error_kinds": self.error_kinds,
            "p50_ms": percentile(ms, 50),
            "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99),
        }


def _wait_idle(redis_url, procs, timeout=60):
    """Wait until every worker reports idle (its horse reaped, so its CPU is in cutime)."""
    import redis
    from rq import Worker as RQWorker

    conn = redis.Redis.from_url(redis_url)
    pids = {w.proc.pid for w in procs}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {w.pid: w.get_state() for w in RQWorker.all(connection=conn) if w.pid in pids}
        if len(states) == len(pids) and all(s == "idle" for s in states.values()):
            return
        time.sleep(0.05)


def scenario(redis, workdir, sim, *, clinics, workers, pollers=0, database_url=None, timeout=900, log=print):
    """One fleet run: fresh database, `clinics` orgs, `workers` workers, optional pollers; figures."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from routiq_admin.extensions import db
    from routiq_admin.models import ApiToken, Organization, SyncRun
    from routiq_admin.sync.plan import FINISHED_STATUSES
    from routiq_admin.sync.runs import start_sync

    name = f"fleet-{clinics}-{workers}-{pollers}"
    rundir = os.path.join(workdir, name)
    os.makedirs(rundir, exist_ok=True)
    url = database_url or f"sqlite:///{os.path.join(rundir, 'routiq.db')}"
    redis.flush()
    config = common.app_config(url, redis.url, os.path.join(rundir, "instance"), sim.base_url)
    app = common.make_app(config)
    common.migrate(app)
    tokens = []
    with app.app_context():
        for i in range(clinics):
            org = Organization(id=f"org_fleet_{i:03d}", name=f"Fleet Clinic {i}")
            org.set_api_key(f"fleet-{i:03d}-au1")
            db.session.add(org)
            db.session.flush()
            row, clear = ApiToken.issue(name="bench poller", organization_id=org.id, all_organizations=False)
            db.session.add(row)
            tokens.append(clear)
        db.session.commit()
    procs, web, polling = [], None, None
    load_before = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    try:
        procs = [common.Worker(config, os.path.join(rundir, f"worker-{i}.log")) for i in range(workers)]
        if pollers:
            web = Web(config, rundir)
        _wait_idle(redis.url, procs)
        cpu_before = sum(cpu_seconds(w.proc.pid) for w in procs)
        sim_cpu_before = cpu_seconds(sim.proc.pid)
        machine_before = machine_cpu_seconds()
        with app.app_context():
            started_wall = datetime.now(UTC)
            started = time.monotonic()
            runs = [start_sync(org, "comprehensive", "manual") for org in db.session.query(Organization)]
            ids = [r.id for r in runs]
            sync_ids = [r.sync_id for r in runs]
            db.session.commit()
            if pollers:
                polling = Pollers(
                    web.base_url, [(tokens[i % clinics], sync_ids[i % clinics]) for i in range(pollers)]
                )
            while True:
                db.session.rollback()
                done = (
                    db.session.execute(
                        select(SyncRun).where(SyncRun.id.in_(ids), SyncRun.status.in_(FINISHED_STATUSES))
                    )
                    .scalars()
                    .all()
                )
                if len(done) == len(ids) or time.monotonic() - started > timeout:
                    break
                time.sleep(0.05)
            wall_observed = time.monotonic() - started
            progress = polling.stop() if polling else None
            polling = None
            rows = [
                SimpleNamespace(
                    status=r.status,
                    started_at=r.started_at,
                    completed_at=r.completed_at,
                    cliniko_requests=r.cliniko_requests,
                    errors=r.errors,
                )
                for r in db.session.execute(select(SyncRun).where(SyncRun.id.in_(ids))).scalars()
            ]
            db.session.rollback()
        machine_cpu = machine_cpu_seconds() - machine_before
        _wait_idle(redis.url, procs)
        cpu = sum(cpu_seconds(w.proc.pid) for w in procs) - cpu_before
        sim_cpu = cpu_seconds(sim.proc.pid) - sim_cpu_before
    finally:
        if polling:
            polling.stop()
        for w in procs:
            w.stop()
        if web:
            web.stop()
        with app.app_context():
            db.engine.dispose()
    finished = [r for r in rows if r.completed_at]
    statuses = {}
    for r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    durations = [(r.completed_at - r.started_at).total_seconds() for r in finished if r.started_at]
    trigger = [(r.completed_at - started_wall).total_seconds() for r in finished]
    result = {
        "clinics": clinics,
        "workers": workers,
        "pollers": pollers,
        "statuses": statuses,
        "wall_seconds": max(trigger) if len(finished) == len(rows) else None,
        "wall_observed": wall_observed,
        "per_clinic_p50": percentile(durations, 50),
        "per_clinic_p95": percentile(durations, 95),
        "trigger_p50": percentile(trigger, 50),
        "cpu_per_job": cpu / max(1, clinics),
        "simulator_cpu_per_job": sim_cpu / max(1, clinics),
        # Everything else the machine did meanwhile: PostgreSQL, Redis, gunicorn, pollers, this loop.
        "other_cpu_per_job": max(0.0, machine_cpu - cpu - sim_cpu) / max(1, clinics),
        "requests_per_job": sum(r.cliniko_requests for r in rows) / max(1, len(rows)),
        "progress": progress,
        "errors": sorted({e["message"] for r in rows for e in (r.errors or [])})[:5],
        "load_before": load_before,
        "load_after": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }
    log(
        f"    {clinics} clinics, {workers} worker(s), {pollers} pollers: {statuses}, "
        f"wall {result['wall_seconds'] or wall_observed:.1f} s, per clinic p50 {result['per_clinic_p50']:.2f} s "
        f"p95 {result['per_clinic_p95']:.2f} s, CPU/job {result['cpu_per_job']:.2f} s "
        f"(simulator {result['simulator_cpu_per_job']:.2f} s, rest of the machine "
        f"{result['other_cpu_per_job']:.2f} s), {result['requests_per_job']:.1f} requests/job"
        + (
            f"; progress p50/p95/p99 {progress['p50_ms']:.0f}/{progress['p95_ms']:.0f}/{progress['p99_ms']:.0f} ms"
            f" over {progress['requests']} reads ({progress['errors']} errors {progress['error_kinds']})"
            if progress
            else ""
        )
        + (f"; errors {result['errors']}" if result["errors"] else "")
        + f"; load {load_before} → {result['load_after']}"
    )
    return result


def fleet(
    redis,
    workdir,
    *,
    sizes,
    workers=(1, 2, 4),
    pollers=(20, 50),
    latency_ms=100,
    server_url=common.PG_DEFAULT,
    pg_database=PG_DATABASE,
    quick=False,
    log=print,
):
    """Every (clinics, workers) pair, then the largest worker count under each poller count.

    `quick`: the largest worker count runs only once, under the first poller count.

    PostgreSQL (a scratch database per scenario): SQLite lets one writer in at a time, and a
    second worker's page commit fails with "database is locked" (server_url "none": SQLite,
    meaningful for one worker only).
    """
    sim = Simulator(workdir, latency_ms)
    results = []

    def one(**kw):
        if server_url.lower() == "none":
            return scenario(redis, workdir, sim, log=log, **kw)
        with common.postgres_database(server_url, pg_database) as url:
            return scenario(redis, workdir, sim, database_url=url, log=log, **kw)

    try:
        for clinics in sizes:
            for w in workers:
                if not (quick and pollers and w == max(workers)):
                    results.append(one(clinics=clinics, workers=w))
            for p in (pollers[:1] if quick else pollers) if clinics == sizes[0] else ():
                results.append(one(clinics=clinics, workers=max(workers), pollers=p))
    finally:
        sim.stop()
    return results


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    p.add_argument("--clinics", type=int, nargs="+", default=[24])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--pollers", type=int, nargs="*", default=[20, 50])
    p.add_argument("--latency-ms", type=int, default=100)
    p.add_argument("--database-url", default=common.PG_DEFAULT, help="PostgreSQL server, or 'none' (SQLite)")
    p.add_argument("--pg-database", default=PG_DATABASE, help="scratch database (created and dropped)")
    args = p.parse_args(argv)
    with common.scratch_dir() as workdir:
        redis = common.Redis(workdir)
        try:
            fleet(
                redis,
                workdir,
                sizes=args.clinics,
                workers=args.workers,
                pollers=args.pollers,
                latency_ms=args.latency_ms,
                server_url=args.database_url,
                pg_database=args.pg_database,
            )
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
