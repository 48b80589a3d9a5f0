"""/metrics: off without METRICS_TOKEN, sync metrics from the database, queue metrics from RQ, and
request metrics summed over gunicorn workers (real gunicorn, real RQ worker, the simulator)."""

import os
from datetime import timedelta

import requests
from prometheus_client.parser import text_string_to_metric_families

from routiq_admin.cliniko.simulator import Simulator, SimulatorServer
from routiq_admin.extensions import db, get_queue
from routiq_admin.models import SyncRun
from routiq_admin.sync.runs import STALE_STEP, cancel_run, start_sync
from tests.conftest import start_process, stop, subprocess_env, wait_for
from tests.factories import login, make_org, make_run, make_token, make_user
from tests.ops.conftest import gunicorn

TOKEN = "metrics-scrape-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text):
    """Return {(sample name, frozenset(labels)): value} of a Prometheus text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed, name, **labels):
    return parsed.get((name, frozenset(labels.items())))


def test_metrics_is_off_without_a_token_and_wants_its_own_bearer(make_app):
    assert make_app().test_client().get("/metrics").status_code == 404
    app = make_app(METRICS_TOKEN=TOKEN)
    with app.app_context():
        org = make_org()
        make_user(superuser=True)
        _, api_token = make_token(org)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {api_token}"}).status_code == 401
    login(client)
    assert client.get("/metrics").status_code == 401  # a superuser's session is not the scrape token
    scrape = client.get("/metrics", headers=AUTH)
    assert scrape.status_code == 200 and scrape.mimetype == "text/plain"
    assert TOKEN not in scrape.get_data(as_text=True)


def test_sync_metrics_are_counted_from_the_database(make_app, redis_conn):
    app = make_app(METRICS_TOKEN=TOKEN)
    with app.app_context():
        make_org("org_a"), make_org("org_b"), make_org("org_c"), make_org("org_new")
        make_run(
            "org_a", "completed", age=timedelta(hours=3), duration=3, cliniko_requests=7, records_processed=50
        )
        make_run(
            "org_a", "completed", age=timedelta(hours=2), duration=100, cliniko_requests=5, rate_limit_waits=2
        )
        for hours in (3, 2, 1):
            make_run("org_b", "failed", age=timedelta(hours=hours), duration=20, trigger="manual")
        make_run("org_c", "failed", duration=1000, current_step=STALE_STEP)
        make_run("org_c", "running")
        get_queue().enqueue("workers.jobs.ping", 1)
    parsed = samples(app.test_client().get("/metrics", headers=AUTH).get_data(as_text=True))

    runs = "routiq_sync_runs"
    assert value(parsed, runs, status="completed", mode="comprehensive", trigger="scheduled") == 2
    assert value(parsed, runs, status="failed", mode="comprehensive", trigger="manual") == 3
    assert value(parsed, runs, status="running", mode="comprehensive", trigger="scheduled") == 1
    assert value(parsed, "routiq_sync_runs_active") == 1
    assert value(parsed, "routiq_sync_stale_cleaned_total") == 1
    hist = "routiq_sync_run_duration_seconds"
    done = {"mode": "comprehensive", "status": "completed"}
    assert [
        value(parsed, f"{hist}_bucket", **done, le=le) for le in ("1.0", "5.0", "60.0", "120.0", "+Inf")
    ] == [
        0,
        1,
        1,
        2,
        2,
    ]
    assert (
        value(parsed, f"{hist}_count", **done) == 2 and abs(value(parsed, f"{hist}_sum", **done) - 103) < 0.01
    )
    failed = {"mode": "comprehensive", "status": "failed"}
    assert (
        value(parsed, f"{hist}_bucket", **failed, le="30.0") == 3
        and value(parsed, f"{hist}_count", **failed) == 4
    )
    assert value(parsed, "routiq_cliniko_requests_total", mode="comprehensive") == 12
    assert value(parsed, "routiq_cliniko_rate_limit_waits_total", mode="comprehensive") == 2
    assert value(parsed, "routiq_sync_records_processed_total", mode="comprehensive") == 50
    assert value(parsed, "routiq_records_stored", entity="patients") == 0
    states = {
        state: value(parsed, "routiq_organizations", state=state) for state in ("failing", "never_synced")
    }
    assert states == {
        "failing": 1,
        "never_synced": 2,
    }  # org_b failed three times; org_c and org_new never completed
    queue = app.config["RQ_QUEUE"]
    assert value(parsed, "routiq_queue_jobs", queue=queue, state="queued") == 1
    assert value(parsed, "routiq_queue_oldest_job_age_seconds", queue=queue) >= 0
    assert value(parsed, "routiq_workers_alive", queue=queue) == 0
    assert value(parsed, "routiq_redis_up") == 1 and value(parsed, "routiq_scheduler_up") == 0
    # Bounded labels: no organization anywhere unless METRICS_PER_ORG=1.
    assert not any("organization_id" in dict(labels) for _, labels in parsed)

    per_org = make_app(METRICS_TOKEN=TOKEN, METRICS_PER_ORG=True)
    parsed = samples(per_org.test_client().get("/metrics", headers=AUTH).get_data(as_text=True))
    assert value(parsed, "routiq_organization_sync_runs", organization_id="org_b", status="failed") == 3
    assert value(parsed, "routiq_organization_last_success_timestamp_seconds", organization_id="org_a") > 0


def test_metrics_without_redis_still_report_the_database(make_app):
    app = make_app(METRICS_TOKEN=TOKEN, REDIS_URL="redis://127.0.0.1:1/0")
    scrape = app.test_client().get("/metrics", headers=AUTH)
    parsed = samples(scrape.get_data(as_text=True))
    assert scrape.status_code == 200 and value(parsed, "routiq_redis_up") == 0
    assert value(parsed, "routiq_sync_runs_active") == 0


def _status(run_id):
    db.session.expire_all()
    return db.session.get(SyncRun, run_id)


def _wait_status(run, statuses, timeout=60):
    wait_for(
        lambda: _status(run.id).status in statuses, timeout=timeout, message=f"{run.sync_id} in {statuses}"
    )
    return _status(run.id)


def _finished(jobs):
    return all(job.get_status(refresh=True) == "finished" for job in jobs)


def test_runs_through_a_worker_and_requests_over_gunicorn_workers_show_in_metrics(
    make_app, base_config, tmp_path
):
    prom = tmp_path / "prometheus"
    with SimulatorServer(Simulator(patients=250, appointments=5, keys=["good-key-au1"])) as sim_server:
        app = make_app(CLINIKO_BASE_URL=sim_server.base_url)
        env = subprocess_env(base_config, CLINIKO_BASE_URL=sim_server.base_url, PROMETHEUS_MULTIPROC_DIR=prom)
        worker = start_process(["-m", "workers.worker"], env)
        try:
            with app.app_context():
                _syncs_and_scrape(app, sim_server, base_config, prom)
        finally:
            stop(worker)


def _syncs_and_scrape(app, sim_server, base_config, prom):
    ok = make_org("org_ok", api_key="good-key-au1")
    bad = make_org("org_bad", api_key="revoked-key-au1")
    slow = make_org("org_slow", api_key="good-key-au1")
    assert _wait_status(start_sync(ok, "patients-only"), ("completed", "failed")).status == "completed"
    assert _wait_status(start_sync(bad, "patients-only"), ("completed", "failed")).status == "failed"
    sim_server.simulator.latency_ms = 700
    run = start_sync(slow, "patients-only")
    wait_for(lambda: _status(run.id).records_processed, timeout=60, message="the slow run to write a page")
    cancel_run(_status(run.id))
    assert _wait_status(run, ("completed", "failed", "cancelled")).status == "cancelled"

    # Workers restart every 5 requests: counts from dead and live workers must add up.
    key = (
        "flask_http_request_duration_seconds_count",
        frozenset({"method": "GET", "status": "200", "endpoint": "ops_health.healthz"}.items()),
    )
    with gunicorn(
        base_config,
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=prom,
        WEB_CONCURRENCY=2,
        GUNICORN_CMD_ARGS="--max-requests 5",
    ) as web:
        before = samples(requests.get(f"{web}/metrics", headers=AUTH, timeout=30).text).get(key, 0)
        for _ in range(20):
            assert requests.get(f"{web}/healthz", timeout=30).status_code == 200
        parsed = samples(requests.get(f"{web}/metrics", headers=AUTH, timeout=30).text)
    assert parsed[key] - before == 20
    pids = {name.rsplit("_", 1)[1] for name in os.listdir(prom) if name.startswith("counter_")}
    assert len(pids) >= 4, pids  # 20+ requests over workers that restart every 5

    for status in ("completed", "failed", "cancelled"):
        labels = {"status": status, "mode": "patients-only", "trigger": "manual"}
        assert value(parsed, "routiq_sync_runs", **labels) == 1, status
        bucket = {"mode": "patients-only", "status": status, "le": "+Inf"}
        assert value(parsed, "routiq_sync_run_duration_seconds_bucket", **bucket) == 1
    assert value(parsed, "routiq_cliniko_requests_total", mode="patients-only") >= 4
    stored = 250 + _status(run.id).records_processed
    assert value(parsed, "routiq_records_stored", entity="patients") == stored
    assert value(parsed, "routiq_workers_alive", queue=app.config["RQ_QUEUE"]) == 1

    # RQ forks a horse per job: none of them may leave a metric file behind.
    files = sorted(os.listdir(prom))
    queue = get_queue()
    jobs = [queue.enqueue("workers.jobs.ping", n) for n in range(100)]
    wait_for(lambda: _finished(jobs), timeout=300, interval=0.5, message="100 jobs")
    assert sorted(os.listdir(prom)) == files
