"""Which events a finished run raises (read from the database), and emitting them exactly once."""

from datetime import timedelta

from sqlalchemy import func, select

from routiq_admin import notify
from routiq_admin.extensions import db
from routiq_admin.models import NotificationDelivery, NotificationEvent
from routiq_admin.notify import targets
from routiq_admin.notify.events import decide
from tests.factories import make_org, make_run


def _failed(org, age=timedelta(minutes=1), **fields):
    error = {
        "error_type": "invalid_credentials",
        "error_code": "INVALID_CREDENTIALS",
        "message": "Key rejected",
    }
    return make_run(
        org.id,
        "failed",
        age=age,
        errors=[{**error, "entity": None, "at": "2026-12-02T03:00:02.000Z"}],
        **fields,
    )


def _events(org):
    stmt = select(NotificationEvent.type).where(NotificationEvent.organization_id == org.id)
    return sorted(db.session.execute(stmt).scalars())


def test_a_failed_run_raises_sync_failed_and_the_third_in_a_day_sync_failing_once(app):
    org = make_org()
    targets.add_email(org, "ops@clinic.example", list(notify.EVENT_TYPES))
    old = _failed(org, age=timedelta(hours=30))  # outside the 24 h window
    assert decide(old) == ["sync.failed"]
    first, second = _failed(org, age=timedelta(hours=3)), _failed(org, age=timedelta(hours=2))
    assert decide(second) == ["sync.failed"]  # 2 in 24 h: not "more than 2"
    third = _failed(org, age=timedelta(hours=1))
    assert decide(third) == ["sync.failed", "sync.failing"]
    notify.run_finished(third)
    fourth = _failed(org)
    assert decide(fourth) == ["sync.failed"]  # sync.failing at most once a day
    assert first.status == "failed"


def test_first_success_after_failures_is_sync_recovered(app):
    org = make_org()
    make_run(org.id, "completed", age=timedelta(hours=3))
    _failed(org, age=timedelta(hours=2))
    make_run(org.id, "cancelled", age=timedelta(hours=1, minutes=30))  # a cancel says nothing
    ok = make_run(org.id, "completed", age=timedelta(hours=1))
    assert decide(ok) == ["sync.completed", "sync.recovered"]
    again = make_run(org.id, "completed")
    assert decide(again) == ["sync.completed"]


def test_slow_average_raises_sync_slow_once_a_day(app):
    org = make_org()
    targets.add_email(org, "ops@clinic.example", ["sync.slow"])
    make_run(org.id, "completed", age=timedelta(hours=2), duration=500)
    quick = make_run(org.id, "completed", age=timedelta(hours=1), duration=600)
    assert "sync.slow" not in decide(quick)  # average 550 s
    slow = make_run(org.id, "completed", duration=900)
    assert "sync.slow" in decide(slow)  # average 666 s > 600
    assert [e.type for e in notify.run_finished(slow)] == ["sync.slow"]
    assert "sync.slow" not in decide(make_run(org.id, "completed", duration=900))


def test_paused_outcome_raises_sync_paused_and_a_cancel_nothing(app):
    org = make_org()
    cancelled = make_run(org.id, "cancelled")
    assert decide(cancelled) == []
    assert decide(_failed(org), outcome="paused") == ["sync.failed", "sync.paused"]


def test_events_go_only_to_enabled_targets_that_want_them_and_only_once(app):
    org, other = make_org(), make_org("org_other", name="Other")
    wants = targets.add_email(org, "ops@clinic.example", ["sync.failed"])
    targets.add_email(org, "boss@clinic.example", ["sync.completed"])
    off = targets.add_email(org, "gone@clinic.example", ["sync.failed"])
    off.enabled = False
    targets.add_email(other, "other@clinic.example", ["sync.failed"])
    run = _failed(org)
    [event] = notify.run_finished(run)
    assert notify.run_finished(run) == []  # called again for the same run: nothing new
    deliveries = db.session.execute(select(NotificationDelivery)).scalars().all()
    assert [(d.event_id, d.target_id) for d in deliveries] == [(event.id, wants.id)]
    assert _events(org) == ["sync.failed"] and _events(other) == []
    data = event.payload["data"]
    assert set(event.payload) == {"id", "type", "timestamp", "data"}
    assert set(data) == {
        "organization_id",
        "sync_id",
        "status",
        "mode",
        "trigger",
        "error",
        "records_processed",
        "started_at",
        "completed_at",
    }
    assert data["error"] == {
        "error_type": "invalid_credentials",
        "error_code": "INVALID_CREDENTIALS",
        "message": "Key rejected",
    }
    assert data["sync_id"] == run.sync_id and data["organization_id"] == org.id


def test_no_targets_means_no_rows(app):
    org = make_org()
    assert notify.run_finished(_failed(org)) == []
    assert notify.emit(org.id, "sync.paused") is None
    assert db.session.execute(select(func.count()).select_from(NotificationEvent)).scalar() == 0


def test_emit_by_hand_without_a_run(app):
    org = make_org()
    targets.add_email(org, "ops@clinic.example", ["sync.paused"])
    event = notify.emit(org.id, "sync.paused")
    assert event.type == "sync.paused" and event.payload["data"]["sync_id"] is None
    assert notify.emit(org.id, "sync.paused") is not None  # run-less events are not deduplicated


def test_a_run_cleanup_fails_raises_sync_failed(app):
    from routiq_admin.sync.runs import cleanup_stale

    org = make_org()
    targets.add_email(org, "ops@clinic.example", ["sync.failed"])
    lost = make_run(org.id, "running", age=timedelta(hours=2), job_id="cli-lost-worker")
    assert [r.sync_id for r in cleanup_stale([org.id])] == [lost.sync_id]
    event = db.session.execute(select(NotificationEvent)).scalar_one()
    assert event.type == "sync.failed" and event.payload["data"]["error"]["error_code"] == "SYNC_STALE"


def test_redis_down_leaves_the_delivery_pending_and_the_caller_unharmed(make_app):
    from tests.notify.conftest import free_port

    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context():
        org = make_org()
        targets.add_email(org, "ops@clinic.example", ["sync.failed"])
        run = _failed(org)
        [event] = notify.run_finished(run)
        delivery = db.session.execute(select(NotificationDelivery)).scalar_one()
        assert delivery.event_id == event.id and delivery.status == "pending"
