"""Read-side services (history, sync_status) and cleanup of runs whose RQ job is lost."""

from datetime import timedelta

from rq.job import Job, JobStatus

from routiq_admin.extensions import db, get_queue
from routiq_admin.models import utcnow
from routiq_admin.sync.runs import cleanup_stale
from routiq_admin.sync.status import history, sync_status
from tests.factories import make_org, make_run

from .conftest import reload


def test_history_totals_filters_and_order(app):
    org = make_org("org_hist", api_key="key-h-au1")
    other = make_org("org_elsewhere", api_key="key-e-au1")
    make_run(other.id, "completed", age=timedelta(hours=1))
    oldest = make_run(org.id, "completed", trigger="manual", age=timedelta(days=2))
    make_run(org.id, "failed", age=timedelta(days=1))
    make_run(org.id, "cancelled", trigger="manual", mode="basic", age=timedelta(hours=5))
    newest_done = make_run(
        org.id, "completed", trigger="api", mode="import", kind="import", age=timedelta(hours=2)
    )
    running = make_run(org.id, "running", age=timedelta(minutes=1))

    h = history(org.id)
    assert (h["total_syncs"], h["successful_syncs"], h["failed_syncs"], h["cancelled_syncs"]) == (5, 2, 1, 1)
    assert h["running_syncs"] == 1
    assert [r.status for r in h["runs"]] == ["running", "completed", "cancelled", "failed", "completed"]
    assert h["runs"][0].id == running.id and h["runs"][-1].id == oldest.id
    assert h["last_successful_sync_at"] == newest_done.completed_at
    assert h["last_sync_at"] == newest_done.completed_at
    assert h["average_sync_duration_seconds"] == 60.0
    # filters narrow the page, never the totals
    only = history(org.id, status="completed", limit=1)
    assert only["matching"] == 2 and [r.id for r in only["runs"]] == [newest_done.id]
    assert only["total_syncs"] == 5
    assert [r.kind for r in history(org.id, trigger="api")["runs"]] == ["import"]
    assert [r.mode for r in history(org.id, mode="basic")["runs"]] == ["basic"]
    assert [r.id for r in history(org.id, limit=2, offset=4)["runs"]] == [oldest.id]


def test_sync_status(app):
    org = make_org("org_health", api_key="key-s-au1")
    assert sync_status(org) == "never_synced"
    make_run(org.id, "failed", age=timedelta(hours=30))
    make_run(org.id, "completed", age=timedelta(minutes=50))
    assert sync_status(org) == "healthy"  # yesterday's failure is forgotten
    make_run(org.id, "failed", age=timedelta(minutes=40))
    assert sync_status(org) == "degraded"  # a failure in the last 24 h
    make_run(org.id, "failed", age=timedelta(minutes=30))
    make_run(org.id, "failed", age=timedelta(minutes=20))
    assert sync_status(org) == "failing"  # the last three failed
    make_run(org.id, "completed", age=timedelta(minutes=5))
    assert sync_status(org) == "degraded"
    org.credentials_valid = False
    db.session.commit()
    assert sync_status(org) == "failing"
    org.sync_enabled = False
    db.session.commit()
    assert sync_status(org) == "disabled"

    stale = make_org("org_stale_success", api_key="key-t-au1")
    make_run(stale.id, "completed", age=timedelta(hours=3))  # older than twice the 60-minute interval
    assert sync_status(stale) == "degraded"


def _job(run, status=None):
    job = get_queue().enqueue("workers.jobs.ping", 1, job_id=run.job_id)
    if status:
        job.set_status(status)
    return job


def test_cleanup_fails_runs_whose_job_is_gone_or_failed_and_spares_live_ones(app):
    orgs = [make_org(f"org_{name}", api_key=f"key-{name}-au1") for name in "abcdef"]
    gone = make_run(orgs[0].id, "starting", age=timedelta(minutes=2))  # never enqueued, or flushed
    failed_job = make_run(orgs[1].id, "running", age=timedelta(minutes=2), heartbeat_at=utcnow())
    _job(failed_job, JobStatus.FAILED)
    alive = make_run(orgs[2].id, "running", age=timedelta(minutes=2), heartbeat_at=utcnow())
    _job(alive, JobStatus.STARTED)
    just_queued = make_run(orgs[3].id, "starting", age=timedelta(0))  # its job may still be on its way in
    cli = make_run(orgs[4].id, "running", age=timedelta(minutes=2), job_id="cli-123-abcd")
    elsewhere = make_run(orgs[5].id, "starting", age=timedelta(minutes=2))

    cleaned = cleanup_stale(org_ids=[o.id for o in orgs[:5]])
    assert sorted(r.id for r in cleaned) == sorted([gone.id, failed_job.id])
    for run in (gone, failed_job):
        row = reload(run.id)
        assert row.status == "failed" and row.errors[-1]["error_code"] == "SYNC_STALE"
        assert "gone or failed" in row.errors[-1]["message"]
    for run in (alive, just_queued, cli, elsewhere):
        assert reload(run.id).status in ("starting", "running")
    # without the filter every organization is cleaned
    assert [r.id for r in cleanup_stale()] == [elsewhere.id]


def test_a_run_queued_behind_busy_workers_is_not_stale(app):
    """Only a `running` run goes stale by heartbeat age; a `starting` one only when its job is lost."""
    org = make_org("org_queued", api_key="key-q-au1")
    queued = make_run(org.id, "starting", age=timedelta(minutes=40), started_at=None, heartbeat_at=None)
    _job(queued)  # still waiting in the RQ queue
    assert cleanup_stale() == []
    assert reload(queued.id).status == "starting"
    # the job vanishes (Redis flushed, job deleted): now it is stale
    Job.fetch(queued.job_id, connection=get_queue().connection).delete()
    assert [r.id for r in cleanup_stale()] == [queued.id]
