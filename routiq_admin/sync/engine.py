"""Run one sync: fetch pages from Cliniko, upsert them, record progress, move marks.

Each page's upserts and the run's progress are committed together. The progress UPDATE is
guarded by (status = running, job_id = ours), so a worker that lost its run (cleaned up as
stale, or cancelled) cannot overwrite it: its page is rolled back and it stops.
"""

import logging
import math
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from .. import notify
from ..cliniko import parse
from ..cliniko.client import ClinikoClient
from ..cliniko.errors import ClinikoError, InvalidCredentials, InvalidDataFormat
from ..extensions import db, redis_or_none
from ..models import (
    Appointment,
    AppointmentType,
    Business,
    Organization,
    Patient,
    Practitioner,
    SyncMark,
    SyncRun,
    utcnow,
)
from ..timefmt import iso
from .activity import analyze_after_load, refresh_activity
from .cadence import record_outcome
from .events import RunLog
from .plan import STEP_PLAN, STEPS
from .progress import Cancelled, LostOwnership, RunProgress, empty_counts
from .records import missing_patient_ids
from .upsert import Upserter

log = logging.getLogger(__name__)

# Cliniko timestamps are whole seconds: re-read the mark's own second.
MARK_OVERLAP = timedelta(seconds=1)
WAIT_MESSAGES = {
    "rate_limited": "Cliniko answered 429 (rate limit): waiting {} s",
    "throttled": "Request budget shared by this Cliniko account is spent: waiting {} s",
}
ENTITIES = {
    "businesses": (Business, parse.business_row),
    "practitioners": (Practitioner, parse.practitioner_row),
    "appointment_types": (AppointmentType, parse.appointment_type_row),
    "patients": (Patient, parse.patient_row),
    "appointments": (Appointment, parse.appointment_row),
}


def error_entry(error_type, error_code, message, entity=None):
    """Return one item of a run's `errors` list."""
    return {
        "error_type": error_type,
        "error_code": error_code,
        "message": message,
        "entity": entity,
        "at": iso(utcnow()),
    }


class SyncEngine(RunProgress):
    """Carry one SyncRun from `starting` to a finished status."""

    def __init__(self, run_id, job_id, on_progress=None):
        self.run_id = run_id
        self.job_id = job_id
        self.on_progress = on_progress
        self.counts = {}
        self.errors = []
        self.records_total = 0
        self.records_processed = 0
        self.completed_steps = 0
        self.step_done = 0
        self.step_total = 0
        self.percentage = 0.0
        self.step_name = None
        self.client = None
        self.events = None
        self._step_start = None
        self.org_id = self.mode = self.sync_id = self.started_at = None
        self.full = False
        self.steps = ()
        self._entity = None
        self._last_commit = 0.0
        self._pending = None
        self._ahead = None  # the appointments' stream, its first page fetched with the patients'
        self.outcome = None  # what the finished run changed in the schedule (cadence.record_outcome)
        # The engine step behind each plan step's name (plan.STEP_PLAN).
        self._step_methods = {
            "reference": self._step_reference,
            "patients": self._step_patients,
            "appointments": self._step_appointments,
            "window_appointments": self._step_window_appointments,
            "missing_patients": self._step_missing_patients,
            "activity": self._step_activity,
        }

    # -- lifecycle -------------------------------------------------------------------
    def run(self):
        """Claim the run, execute its steps, and finish it; return the final status."""
        now = utcnow()
        claimed = db.session.execute(
            update(SyncRun)
            .where(SyncRun.id == self.run_id, SyncRun.status == "starting", SyncRun.job_id == self.job_id)
            .values(
                status="running",
                started_at=now,
                heartbeat_at=now,
                current_step="Starting",
                current_operation="Connecting to Cliniko",
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if not claimed:
            log.info("sync run %s is no longer waiting to start; nothing to do", self.run_id)
            return None
        run = db.session.get(SyncRun, self.run_id)
        self.org_id, self.mode, self.full = run.organization_id, run.mode, run.full
        self.sync_id, self.started_at = run.sync_id, now
        self.steps = STEPS[self.mode]
        self.events = RunLog(self.run_id, self.org_id)
        self.events.record(
            "started",
            f"{run.kind.capitalize()} started: {self.mode}{' (full)' if self.full else ''}",
            mode=self.mode,
            full=self.full,
            trigger=run.trigger,
        )
        org = db.session.get(Organization, self.org_id)
        try:
            self.client = self._client(org)
            for step in STEP_PLAN[self.mode]:
                self._begin_step(step.label)
                self._step_methods[step.name]()
                self.completed_steps += 1
                self._log_step_finished()
            self._check_cancel_before_finish()
            self._set_credentials(True)
            return self._finish("completed")
        except Cancelled:
            db.session.rollback()
            return self._finish("cancelled")
        except LostOwnership:
            db.session.rollback()
            log.warning("sync %s was taken away from this worker; stopping", self.sync_id)
            return None
        except ClinikoError as exc:
            db.session.rollback()
            if isinstance(exc, InvalidCredentials):
                self._set_credentials(False)
            self.errors.append(error_entry(exc.error_type, exc.error_code, exc.message, self._entity))
            return self._finish("failed")
        except SQLAlchemyError as exc:
            db.session.rollback()
            # Not the exception's text: the database's DETAIL can quote the row it refused.
            log.error(
                "database error in sync %s: %s",
                self.sync_id,
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            self.errors.append(
                error_entry(
                    "database_error", "DATABASE_ERROR", "The database failed during the sync", self._entity
                )
            )
            return self._finish("failed")
        except Exception:
            db.session.rollback()
            log.exception("sync %s crashed", self.sync_id)
            self.errors.append(
                error_entry(
                    "internal_error", "INTERNAL_ERROR", "Unexpected error during the sync", self._entity
                )
            )
            return self._finish("failed")
        finally:
            if self._ahead is not None:
                self._ahead.close()
            if self.client is not None:
                self.client.close()

    def _client(self, org):
        config = current_app.config
        engine = db.engine
        run_id, job_id = self.run_id, self.job_id

        def on_wait(until, seconds, reason):
            # The client calls this in our thread: commit what is pending before waiting, then
            # record the wait on a connection of our own (the session's work is committed).
            if self._pending:
                self._commit(self._pending)
            self.events.record(
                "wait",
                WAIT_MESSAGES.get(reason, "Waiting {} s for Cliniko").format(math.ceil(seconds)),
                reason=reason,
                seconds=round(seconds, 1),
            )
            with engine.begin() as conn:
                self.events.flush(conn)
                conn.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id, SyncRun.status == "running", SyncRun.job_id == job_id)
                    .values(
                        rate_limited_until=until,
                        heartbeat_at=utcnow(),
                        current_operation=f"Waiting {math.ceil(seconds)} s for Cliniko's rate limit",
                    )
                )

        redis = redis_or_none()
        limiter_key = f"user:{org.cliniko_user_id}" if org.cliniko_user_id else None
        return ClinikoClient.from_config(
            org.api_key,
            config,
            redis=redis,
            on_wait=on_wait,
            on_retry=self._log_retry,
            limiter_key=limiter_key,
        )

    def _log_retry(self, status, attempt, retries, delay, error):
        # Called from the client's page threads too: RunLog.record only buffers.
        cause = f"Cliniko answered {status}" if status else error.message.split(" (")[0]
        self.events.record(
            "retry",
            f"{cause}; retry {attempt} of {retries} in {delay:.1f} s",
            status=status,
            attempt=attempt,
            retries=retries,
            delay_seconds=round(delay, 2),
            error_type=error.error_type,
            error_code=error.error_code,
        )

    def _finish(self, status):
        now = utcnow()
        values = {
            "status": status,
            "completed_at": now,
            "heartbeat_at": now,
            "current_operation": None,
            "rate_limited_until": None,
            "errors": self.errors,
            **self._progress_values(now),
        }
        if status == "completed":
            values.update(
                progress_percentage=100.0,
                completed_steps=len(self.steps),
                current_step="Completed",
                estimated_completion=now,
            )
        else:
            values["current_step"] = status.capitalize()
        values["run_metadata"] = self._metadata()
        self._log_finish(status, now)
        done = db.session.execute(
            update(SyncRun)
            .where(SyncRun.id == self.run_id, SyncRun.status == "running", SyncRun.job_id == self.job_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            self.events.flush()
        db.session.commit()
        if not done:
            log.warning("sync %s: run row no longer ours; final status %s not written", self.sync_id, status)
            return None
        run = db.session.get(SyncRun, self.run_id)
        self.outcome = record_outcome(run)
        notify.run_finished(run, outcome=self.outcome)
        if status == "completed":
            p = self.counts.get("patients", {}).get("fetched", 0)
            a = self.counts.get("appointments", {}).get("fetched", 0)
            log.info(
                "%s sync completed: - Patients: %s processed - Appointments: %s processed",
                self.mode.capitalize(),
                p,
                a,
            )
        else:
            log.warning("sync %s ended %s: %s", self.sync_id, status, [e["message"] for e in self.errors])
        return status

    def _log_finish(self, status, now):
        if status == "failed" and self.errors:
            error = self.errors[-1]
            self.events.record(
                "error",
                error["message"],
                error_type=error["error_type"],
                error_code=error["error_code"],
                entity=error["entity"],
            )
        self.events.record(
            "finished",
            f"Run {status} after {(now - self.started_at).total_seconds():.1f} s",
            status=status,
            records_processed=self.records_processed,
            cliniko_requests=self.client.requests_made if self.client else 0,
            dropped_events=self.events.dropped,
        )

    def _metadata(self):
        meta = {"sync_type": self.mode, "full": self.full}
        for entity in ENTITIES:
            meta[f"{entity}_processed"] = self.counts.get(entity, {}).get("fetched", 0)
        return meta

    def _set_credentials(self, valid):
        org = db.session.get(Organization, self.org_id)
        org.credentials_valid = valid
        org.credentials_checked_at = utcnow()  # committed with the run's final status

    # -- ingest ------------------------------------------------------------------------
    def _ingest(self, entity, pages, label):
        """Upsert every page of one fetch; return (largest updated_at seen, whether paging was unstable)."""
        self._entity = entity
        model, to_row = ENTITIES[entity]
        upserter = Upserter(model, self.org_id)
        counts = self.counts.setdefault(entity, empty_counts())
        newest, unstable, first_total, first_time = None, False, None, None
        seen = 0  # this fetch's records: an entity can take two fetches (active, inactive practitioners)
        for page in pages:
            if first_total is None:
                first_total = page.total_entries
                self.step_total += page.total_entries
                self.records_total += page.total_entries
            elif page.total_entries != first_total:
                unstable = True
            if page.number == 1 and page.server_time:
                first_time = page.server_time
            rows = []
            for raw in page.records:
                try:
                    rows.append(to_row(raw))
                except InvalidDataFormat as exc:
                    counts["failed"] += 1
                    if len(self.errors) < 50:
                        self.errors.append(error_entry(exc.error_type, exc.error_code, exc.message, entity))
            created, updated, unchanged, refused = upserter.upsert_page(rows)
            counts["failed"] += len(refused)
            for cliniko_id in refused[: max(0, 50 - len(self.errors))]:
                self.errors.append(
                    error_entry(
                        "database_error",
                        "DATABASE_ERROR",
                        f"Cliniko record {cliniko_id} could not be stored",
                        entity,
                    )
                )
            counts["fetched"] += len(page.records)
            seen += len(page.records)
            counts["created"] += created
            counts["updated"] += updated
            counts["unchanged"] += unchanged
            self.records_processed += len(rows) - len(refused)
            self.step_done += len(page.records)
            for row in rows:
                stamp = row.get("cliniko_updated_at")
                if stamp and (newest is None or stamp > newest):
                    newest = stamp
            self._commit(f"{label}: {seen} of {first_total}", page)
        if newest and first_time and newest >= first_time:
            unstable = True  # a record was edited while we paged: offset paging may have skipped one
        return newest, unstable

    def _mark(self, entity):
        if self.full:
            return None
        mark = db.session.get(SyncMark, (self.org_id, entity))
        return mark.watermark - MARK_OVERLAP if mark else None

    def _advance_mark(self, entity, newest, unstable):
        """Move the entity's mark after its step succeeded (same transaction as the step's end)."""
        mark = db.session.get(SyncMark, (self.org_id, entity))
        now = utcnow()
        if mark is None and newest is not None and not unstable:
            db.session.add(
                SyncMark(organization_id=self.org_id, entity=entity, watermark=newest, last_success_at=now)
            )
        elif mark is not None:
            mark.last_success_at = now
            if newest is not None and not unstable and newest > mark.watermark:
                mark.watermark = newest
        if unstable:
            log.info("sync %s: %s changed while paging; mark not advanced this run", self.sync_id, entity)

    def _incremental(self, entity, fetch, label):
        newest, unstable = self._ingest(entity, fetch(self._mark(entity)), label)
        self._advance_mark(entity, newest, unstable)
        self._commit(f"{label}: done")

    # -- steps -------------------------------------------------------------------------
    def _step_reference(self):
        c = self.client
        # The four lists are independent: their first pages travel together.
        streams = (
            ("businesses", c.prefetch(c.fetch_businesses()), "Businesses"),
            ("practitioners", c.prefetch(c.fetch_practitioners()), "Practitioners"),
            ("practitioners", c.prefetch(c.fetch_practitioners(inactive=True)), "Inactive practitioners"),
            ("appointment_types", c.prefetch(c.fetch_appointment_types()), "Appointment types"),
        )
        try:
            for entity, pages, label in streams:
                self._ingest(entity, pages, label)
        finally:
            for _, pages, _ in streams:
                pages.close()
        self._commit("Reference data: done")

    def _appointment_pages(self, since):
        return self.client.fetch_appointments(
            updated_since=since, include_archived=True, include_cancelled=True
        )

    def _step_patients(self):
        if self.mode == "comprehensive":
            # The appointments step comes next and its mark cannot move before it: its first page
            # travels with the patients' first page.
            self._ahead = self.client.prefetch(self._appointment_pages(self._mark("appointments")))
        self._incremental(
            "patients",
            lambda since: self.client.fetch_patients(updated_since=since, include_archived=True),
            "Syncing patients",
        )

    def _step_appointments(self):
        ahead, self._ahead = self._ahead, None
        self._incremental(
            "appointments",
            lambda since: ahead if ahead is not None else self._appointment_pages(since),
            "Syncing patient appointments",
        )
        self._fetch_missing_patients()

    def _step_window_appointments(self):
        now = utcnow()
        config = current_app.config
        pages = self.client.fetch_appointments(
            starts_from=now - timedelta(days=config["ACTIVE_PAST_DAYS"]),
            starts_to=now + timedelta(days=config["ACTIVE_FUTURE_DAYS"]),
            include_archived=True,
            include_cancelled=True,
        )
        self._ingest("appointments", pages, "Syncing appointments in the activity window")
        self._commit("Appointments: done")
        if self.mode == "basic":
            self._fetch_missing_patients()

    def _step_missing_patients(self):
        self._fetch_missing_patients()

    def _fetch_missing_patients(self):
        missing = missing_patient_ids(self.org_id)
        if missing:
            self._ingest(
                "patients",
                self.client.fetch_patients(ids=missing, include_archived=True),
                "Fetching patients referenced by appointments",
            )
            self._commit("Referenced patients: done")

    def _step_activity(self):
        self._entity = None
        written = sum(
            c["created"] + c["updated"] for e, c in self.counts.items() if e in ("patients", "appointments")
        )
        analyze_after_load(written)
        # The daily full run recomputes every patient; any other only what may have changed since
        # the last computation, and at least what this run wrote.
        refresh_activity(self.org_id, full=self.full, changed_since=self.started_at)
        self._commit("Patient activity updated")


def run_in_foreground(run_id, job_id, on_progress=None):
    """Run a sync in this process (the CLI); return the final status."""
    started = time.monotonic()
    status = SyncEngine(run_id, job_id, on_progress=on_progress).run()
    log.info("sync run %s finished %s in %.1f s", run_id, status, time.monotonic() - started)
    return status
