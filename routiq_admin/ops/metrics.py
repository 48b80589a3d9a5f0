"""`GET /metrics` (Prometheus text), behind METRICS_TOKEN; off while it is unset.

Request metrics come from prometheus-flask-exporter in gunicorn's multiprocess mode. Sync,
organization and queue metrics are computed at scrape time from the database and RQ's
registries, so RQ's fork-per-job horses never write metric files. Labels are bounded
(status, mode, trigger, entity, queue, state); organization labels only with METRICS_PER_ORG=1.
"""

import hmac
import os
from datetime import UTC

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Queue, Worker
from rq.job import Job
from sqlalchemy import case, func, select

from ..extensions import db, redis_or_none
from ..models import SYNCED_MODELS, Organization, SyncRun, utcnow
from ..sync.plan import ACTIVE_STATUSES, FINISHED_STATUSES
from ..sync.runs import STALE_STEP
from ..sync.schedule import HEARTBEAT_KEY
from ..sync.status import _seconds_between, fleet_query, health

bp = Blueprint("ops_metrics", __name__)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
ORG_STATES = ("healthy", "degraded", "failing", "never_synced", "disabled")


def init_request_metrics(app):
    """Count and time requests by endpoint (gunicorn workers only: one file per worker pid)."""
    from prometheus_flask_exporter.multiprocess import GunicornPrometheusMetrics

    GunicornPrometheusMetrics(app, group_by="endpoint", excluded_paths=["^/metrics$"])


def _gauge(name, doc, labels, rows):
    family = GaugeMetricFamily(name, doc, labels=labels)
    for *values, number in rows:
        family.add_metric([str(v) for v in values], float(number or 0))
    return family


def _counter(name, doc, labels, rows):
    family = CounterMetricFamily(name, doc, labels=labels)
    for *values, number in rows:
        family.add_metric([str(v) for v in values], float(number or 0))
    return family


class SyncCollector:
    """Sync runs, Cliniko usage, stored records and organization health, read from the database."""

    def __init__(self, per_org=False):
        self.per_org = per_org

    def collect(self):
        execute = db.session.execute
        yield _gauge(
            "routiq_sync_runs",
            "Runs in the database by status, mode and trigger.",
            ["status", "mode", "trigger"],
            execute(
                select(SyncRun.status, SyncRun.mode, SyncRun.trigger, func.count()).group_by(
                    SyncRun.status, SyncRun.mode, SyncRun.trigger
                )
            ).all(),
        )
        active = execute(select(func.count()).where(SyncRun.status.in_(ACTIVE_STATUSES))).scalar()
        yield _gauge("routiq_sync_runs_active", "Runs starting or running now.", [], [(active,)])
        stale = execute(
            select(func.count()).where(SyncRun.status == "failed", SyncRun.current_step == STALE_STEP)
        ).scalar()
        yield _counter(
            "routiq_sync_stale_cleaned", "Runs failed by stale cleanup (lost worker).", [], [(stale,)]
        )
        yield self._durations()
        totals = execute(
            select(
                SyncRun.mode,
                func.sum(SyncRun.records_processed),
                func.sum(SyncRun.records_failed),
                func.sum(SyncRun.cliniko_requests),
                func.sum(SyncRun.rate_limit_waits),
                func.sum(SyncRun.rate_limit_wait_seconds),
            ).group_by(SyncRun.mode)
        ).all()
        for index, (name, doc) in enumerate(
            (
                ("routiq_sync_records_processed", "Records processed by runs, by mode."),
                ("routiq_sync_records_failed", "Records that failed in runs, by mode."),
                ("routiq_cliniko_requests", "Cliniko API requests made by runs, by mode."),
                ("routiq_cliniko_rate_limit_waits", "Cliniko 429 answers waited out by runs, by mode."),
                ("routiq_cliniko_rate_limit_wait_seconds", "Seconds runs spent waiting out Cliniko 429s."),
            ),
            start=1,
        ):
            yield _counter(name, doc, ["mode"], [(row[0], row[index]) for row in totals])
        yield _gauge(
            "routiq_records_stored",
            "Cliniko records stored locally, by entity.",
            ["entity"],
            [
                (entity, execute(select(func.count()).select_from(model)).scalar())
                for entity, model in SYNCED_MODELS.items()
            ],
        )
        yield from self._organizations()

    def _durations(self):
        seconds = _seconds_between(SyncRun.started_at, SyncRun.completed_at)
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
        stmt = (
            select(SyncRun.mode, SyncRun.status, func.count(), func.sum(seconds), *columns)
            .where(
                SyncRun.status.in_(FINISHED_STATUSES),
                SyncRun.started_at.is_not(None),
                SyncRun.completed_at.is_not(None),
            )
            .group_by(SyncRun.mode, SyncRun.status)
        )
        family = HistogramMetricFamily(
            "routiq_sync_run_duration_seconds",
            "How long finished runs took (started to finished), by mode and status.",
            labels=["mode", "status"],
        )
        for mode, status, count, total, *within in db.session.execute(stmt).all():
            buckets = [(str(float(b)), int(n or 0)) for b, n in zip(DURATION_BUCKETS, within, strict=True)]
            family.add_metric([mode, status], [*buckets, ("+Inf", int(count))], round(float(total or 0), 3))
        return family

    def _organizations(self):
        states = dict.fromkeys(ORG_STATES, 0)
        # One query for the whole fleet (a scrape of 1,000 clinics no longer runs 1,000 of them).
        for row in db.session.execute(fleet_query(None)):
            states[health(row[0], row)] += 1
        yield _gauge("routiq_organizations", "Organizations by sync health.", ["state"], states.items())
        paused_at = getattr(Organization, "paused_at", None)
        if paused_at is not None:
            paused = db.session.execute(select(func.count()).where(paused_at.is_not(None))).scalar()
            yield _gauge(
                "routiq_organizations_paused", "Organizations whose syncs are paused.", [], [(paused,)]
            )
        if self.per_org:
            yield _gauge(
                "routiq_organization_sync_runs",
                "Runs by organization and status (METRICS_PER_ORG=1).",
                ["organization_id", "status"],
                db.session.execute(
                    select(SyncRun.organization_id, SyncRun.status, func.count()).group_by(
                        SyncRun.organization_id, SyncRun.status
                    )
                ).all(),
            )
            last = db.session.execute(
                select(SyncRun.organization_id, func.max(SyncRun.completed_at))
                .where(SyncRun.status == "completed")
                .group_by(SyncRun.organization_id)
            ).all()
            yield _gauge(
                "routiq_organization_last_success_timestamp_seconds",
                "When each organization's last completed run finished (METRICS_PER_ORG=1).",
                ["organization_id"],
                [(org_id, at.timestamp()) for org_id, at in last if at is not None],
            )


class QueueCollector:
    """Queue depth, oldest queued job, job registries, workers and scheduler, read from RQ in Redis."""

    def __init__(self, conn, queue_name):
        self.conn, self.queue_name = conn, queue_name

    def collect(self):
        up = GaugeMetricFamily("routiq_redis_up", "1 when Redis answered this scrape.")
        try:
            families = list(self._families())
        except Exception:  # Redis down: say so instead of failing the whole scrape
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self):
        if self.conn is None:
            raise RuntimeError("REDIS_URL is not set")
        queue = Queue(self.queue_name, connection=self.conn)
        name = queue.name
        registries = {
            "started": queue.started_job_registry,
            "scheduled": queue.scheduled_job_registry,
            "deferred": queue.deferred_job_registry,
            "failed": queue.failed_job_registry,
            "finished": queue.finished_job_registry,
        }
        rows = [(name, "queued", queue.count)]
        rows += [
            (name, state, registry.get_job_count(cleanup=False)) for state, registry in registries.items()
        ]
        yield _gauge(
            "routiq_queue_jobs", "Jobs by RQ registry (queued = queue depth).", ["queue", "state"], rows
        )
        age = 0.0
        first = queue.get_job_ids(0, 0)
        job = Job.fetch(first[0], connection=self.conn) if first else None
        if job is not None and job.enqueued_at is not None:
            enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=UTC)
            age = max(0.0, (utcnow() - enqueued).total_seconds())
        yield _gauge(
            "routiq_queue_oldest_job_age_seconds",
            "Age of the oldest queued job (0 when empty).",
            ["queue"],
            [(name, age)],
        )
        yield _gauge(
            "routiq_workers_alive",
            "RQ workers registered (alive) on the queue.",
            ["queue"],
            [(name, Worker.count(connection=self.conn, queue=queue))],
        )
        yield _gauge(
            "routiq_scheduler_up",
            "1 while the scheduler's heartbeat is fresh.",
            [],
            [(int(bool(self.conn.exists(HEARTBEAT_KEY))),)],
        )


def _authorized(token):
    sent = request.headers.get("Authorization", "")
    return sent[:7].lower() == "bearer " and hmac.compare_digest(sent[7:].strip().encode(), token.encode())


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition: 404 while METRICS_TOKEN is unset, 401 without it."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return Response("Not found\n", 404, mimetype="text/plain")
    if not _authorized(token):
        return Response(
            "Bearer METRICS_TOKEN required\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain"
        )
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    registry.register(SyncCollector(per_org=current_app.config["METRICS_PER_ORG"]))
    registry.register(QueueCollector(redis_or_none(), current_app.config["RQ_QUEUE"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
