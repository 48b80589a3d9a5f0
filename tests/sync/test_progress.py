"""Live progress of a run executed by a real RQ worker against a slow simulator."""

import time

from sqlalchemy import select

from routiq_admin.extensions import db
from routiq_admin.models import SyncRun
from routiq_admin.sync.plan import STEPS
from routiq_admin.sync.runs import start_sync
from tests.factories import make_org

from .conftest import KEY, ORG_ID, TABLES, count

FINISHED = ("completed", "failed", "cancelled")


def poll(run_id, timeout=90.0):
    """Sample the run row from this thread until it finishes; return the samples."""
    cols = (
        SyncRun.status,
        SyncRun.progress_percentage,
        SyncRun.estimated_completion,
        SyncRun.started_at,
        SyncRun.heartbeat_at,
        SyncRun.records_processed,
        SyncRun.records_total,
        SyncRun.completed_steps,
        SyncRun.current_step,
    )
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        row = db.session.execute(select(*cols).where(SyncRun.id == run_id)).one()
        samples.append(row)
        if row.status in FINISHED:
            return samples
        time.sleep(0.02)
    raise AssertionError(f"run did not finish; last sample {samples[-1]}")


def test_progress_rises_monotonically_with_a_sane_eta(slow_app, slow_server, start_worker):
    org = make_org(ORG_ID, "Slow Clinic", api_key=KEY)
    start_worker(slow_server)
    run = start_sync(org, "comprehensive", "manual")
    samples = poll(run.id)

    final = samples[-1]
    assert final.status == "completed"
    assert final.progress_percentage == 100.0
    assert final.completed_steps == len(STEPS["comprehensive"])
    account = slow_server.simulator.account(KEY)
    assert count(TABLES["patients"]) == account.count("patients")
    assert count(TABLES["appointments"]) == account.count("appointments")

    pcts = [s.progress_percentage for s in samples]
    assert all(a <= b for a, b in zip(pcts, pcts[1:], strict=False)), pcts
    middle = sorted({p for p in pcts if 0 < p < 100})
    assert len(middle) >= 3, pcts
    assert all(round(p, 1) == p for p in middle)
    running = [s for s in samples if s.status == "running" and 0 < s.progress_percentage < 100]
    assert running
    for s in running:
        assert s.estimated_completion is not None
        assert s.estimated_completion > s.started_at
        # an ETA for a run of seconds is not hours away
        assert (s.estimated_completion - s.started_at).total_seconds() < 3600
        assert s.heartbeat_at >= s.started_at
        assert 0 <= s.records_processed <= s.records_total
        assert s.current_step in STEPS["comprehensive"]
    processed = [s.records_processed for s in samples]
    assert all(a <= b for a, b in zip(processed, processed[1:], strict=False))
    steps = [s.completed_steps for s in samples]
    assert all(a <= b for a, b in zip(steps, steps[1:], strict=False))
    # the worker reported mid-step progress, not only step boundaries
    assert len({s.records_processed for s in running}) >= 3
