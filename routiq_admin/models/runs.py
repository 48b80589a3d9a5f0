"""Sync runs, their high-water marks and their event log."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..sync.plan import ACTIVE_STATUSES
from .base import UTCDateTime, utcnow
from .organizations import Organization
from .people import User


class SyncRun(db.Model):
    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(
            "uq_sync_runs_one_active_per_org",
            "organization_id",
            unique=True,
            sqlite_where=text("status IN ('starting', 'running')"),
            postgresql_where=text("status IN ('starting', 'running')"),
        ),
        Index("ix_sync_runs_org_created", "organization_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_id: Mapped[str] = mapped_column(String(120), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="sync")
    trigger: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(32))
    full: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="starting")
    progress_percentage: Mapped[float] = mapped_column(Float, default=0.0)
    current_step: Mapped[str | None] = mapped_column(String(120))
    current_operation: Mapped[str | None] = mapped_column(String(200))
    total_steps: Mapped[int] = mapped_column(Integer, default=1)
    completed_steps: Mapped[int] = mapped_column(Integer, default=0)
    records_processed: Mapped[int] = mapped_column(Integer, default=0)
    records_total: Mapped[int] = mapped_column(Integer, default=0)
    records_failed: Mapped[int] = mapped_column(Integer, default=0)
    estimated_completion: Mapped[datetime | None] = mapped_column(UTCDateTime)
    errors: Mapped[list] = mapped_column(JSON, default=list)
    entity_counts: Mapped[dict] = mapped_column(JSON, default=dict)
    run_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    cliniko_requests: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_waits: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_wait_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    rate_limited_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    triggered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    triggered_by_label: Mapped[str | None] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    organization: Mapped[Organization] = relationship()
    triggered_by: Mapped[User | None] = relationship()

    @property
    def is_active(self):
        return self.status in ACTIVE_STATUSES

    @property
    def duration_seconds(self):
        if not self.completed_at:
            return None
        return round((self.completed_at - (self.started_at or self.created_at)).total_seconds(), 3)

    def __repr__(self):
        return f"<SyncRun {self.sync_id} {self.status}>"


class SyncMark(db.Model):
    """High-water mark: every record of `entity` updated before `watermark` is stored here."""

    __tablename__ = "sync_marks"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SyncRunEvent(db.Model):
    """One line of a run's log (steps, Cliniko waits, retries, the error); no patient data, no secrets."""

    __tablename__ = "sync_run_events"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_sync_run_events_run_seq"),
        Index("ix_sync_run_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
