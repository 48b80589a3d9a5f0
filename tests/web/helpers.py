"""Rows and requests the dashboard tests share."""

import itertools
import re
from datetime import timedelta

from routiq_admin.extensions import db
from routiq_admin.models import SyncRun, utcnow

HX = {"HX-Request": "true"}
_seq = itertools.count(1)


def make_run(org, status="running", *, age_minutes=1, duration=30.0, **fields):
    """Insert a SyncRun directly (no worker): `age_minutes` ago, finished ones lasting `duration` s."""
    created = utcnow() - timedelta(minutes=age_minutes)
    n = next(_seq)
    values = {
        "sync_id": f"sync_{org.id}_{created:%Y%m%d_%H%M%S}_{n}",
        "organization_id": org.id,
        "kind": "sync",
        "trigger": "manual",
        "mode": "comprehensive",
        "status": status,
        "total_steps": 4,
        "created_at": created,
        "started_at": created,
        "errors": [],
        "entity_counts": {},
        "run_metadata": {},
        "triggered_by_label": "staff@example.com",
        "job_id": f"job-{n}",
    }
    if status in ("completed", "failed", "cancelled"):
        values["completed_at"] = created + timedelta(seconds=duration)
        values["progress_percentage"] = 100.0 if status == "completed" else 40.0
    else:
        values["progress_percentage"] = 42.5
        values["current_step"] = "Processing patients"
        values["completed_steps"] = 1
        values["heartbeat_at"] = utcnow()
    values.update(fields)
    run = SyncRun(**values)
    db.session.add(run)
    db.session.commit()
    return run


def csrf_from(html):
    """Return the CSRF token a page carries (the body's hx-headers or a hidden input)."""
    match = re.search(r'"X-CSRFToken": "([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    return match.group(1)


def polling(html):
    """Tell whether a fragment polls (hx-trigger with `every`)."""
    return bool(re.search(r'hx-trigger="every \d+(\.\d+)?s"', html))
