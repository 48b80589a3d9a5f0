"""Deliver one event to one target (the RQ job's body): email or a signed webhook, every try recorded."""

import json
import logging
import smtplib
from datetime import timedelta

import redis
import requests
from flask import current_app
from rq_scheduler import Scheduler

from .. import mail
from ..errors import QueueUnavailable, ValidationError
from ..extensions import db, get_queue, get_redis
from ..models import NotificationAttempt, NotificationDelivery, Organization, utcnow
from .signing import signed_headers
from .targets import check_url

log = logging.getLogger(__name__)

TITLES = {
    "sync.failed": "Sync failed",
    "sync.recovered": "Sync recovered",
    "sync.paused": "Scheduled syncs paused",
    "sync.completed": "Sync completed",
    "sync.slow": "Syncs are slow",
    "sync.failing": "Syncs keep failing",
    "sync.test": "Test notification",
}


DELIVER_FUNC = "workers.jobs.deliver_notification"


class DeliveryFailed(Exception):
    """A try could not even start (no SMTP configured)."""


def enqueue(delivery_id, attempt=1, delay=None):
    """Queue try number `attempt` of a delivery now, or after `delay` seconds through rq-scheduler.

    Redis down leaves the delivery pending (logged); the sync that raised it is not touched.
    """
    config = current_app.config
    options = {"job_id": f"notify-{delivery_id}-{attempt}"}
    timeout = int(config["NOTIFY_TIMEOUT_SECONDS"] * 3 + 30)
    try:
        if delay is None:
            get_queue().enqueue(
                DELIVER_FUNC,
                delivery_id,
                job_timeout=timeout,
                result_ttl=24 * 3600,
                description=f"notification delivery {delivery_id}",
                **options,
            )
        else:
            Scheduler(queue_name=config["RQ_QUEUE"], connection=get_redis()).enqueue_in(
                timedelta(seconds=delay),
                DELIVER_FUNC,
                delivery_id,
                timeout=timeout,
                job_result_ttl=24 * 3600,
                job_description=f"notification delivery {delivery_id} (retry)",
                **options,
            )
    except (redis.RedisError, QueueUnavailable, OSError):
        log.warning("queue unavailable: notification delivery %s stays pending", delivery_id)


def run_link(org_id, sync_id):
    """Return the run page's address under PUBLIC_URL."""
    return f"{current_app.config['PUBLIC_URL']}/orgs/{org_id}/syncs/{sync_id}"


def email_message(event, org):
    """Return (subject, body) for an event: clinic, run, error type and message, link; no patient data."""
    data, title = event.payload["data"], TITLES.get(event.type, event.type)
    lines = [f"{title} for {org.name} ({org.id}).", ""]
    if data["sync_id"]:
        lines += [
            f"Run: {data['sync_id']} ({data['mode']}, {data['trigger']}), status {data['status']}",
            f"Started: {data['started_at']}  Finished: {data['completed_at'] or '-'}",
            f"Records processed: {data['records_processed']}",
        ]
    if data["error"]:
        error = data["error"]
        lines.append(f"Error: {error['error_type']} ({error['error_code']}): {error['message']}")
    if event.type == "sync.paused" and getattr(org, "paused_reason", None):
        lines.append(f"Paused because: {org.paused_reason}")
    if data["sync_id"]:
        lines += ["", f"Open the run: {run_link(org.id, data['sync_id'])}"]
    settings = f"{current_app.config['PUBLIC_URL']}/orgs/{org.id}/settings"
    lines += ["", f"Event {event.type} ({event.id}). Change who gets these on Settings: {settings}"]
    return f"[Routiq] {title}: {org.name}", "\n".join(lines) + "\n"


def _send_email(delivery):
    if not mail.configured():
        raise DeliveryFailed("SMTP is not configured (SMTP_URL)")
    org = db.session.get(Organization, delivery.organization_id)
    subject, body = email_message(delivery.event, org)
    mail.send(delivery.target.recipients, subject, body)


def _send_webhook(delivery):
    target, event = delivery.target, delivery.event
    check_url(target.url)  # again at send time: the host may resolve elsewhere now
    body = json.dumps(event.payload, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Routiq Admin webhooks",
        **signed_headers(target.secret, event.id, body),
    }
    response = requests.post(
        target.url,
        data=body.encode(),
        headers=headers,
        timeout=current_app.config["NOTIFY_TIMEOUT_SECONDS"],
        allow_redirects=False,
    )
    response.close()
    return response.status_code


def _describe(exc):
    # Class names only: exception texts can carry the URL (a secret in some webhook URLs).
    if isinstance(exc, DeliveryFailed | ValidationError):
        return str(exc)[:300]
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    return type(exc).__name__


def _try(delivery):
    """Make one try; return (ok, status_code, error)."""
    try:
        if delivery.target.kind == "email":
            _send_email(delivery)
            return True, None, None
        code = _send_webhook(delivery)
    except (
        OSError,
        smtplib.SMTPException,
        requests.RequestException,
        DeliveryFailed,
        ValidationError,
    ) as exc:
        return False, None, _describe(exc)
    return 200 <= code < 300, code, None if 200 <= code < 300 else f"HTTP {code}"


def deliver(delivery_id):
    """Make the next try of a delivery; on failure schedule the next one, or give up.

    Idempotent per (event, target): a delivered or abandoned delivery is never sent again.
    """
    delivery = db.session.get(NotificationDelivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return delivery.status if delivery else None
    target = delivery.target
    if not target.enabled:
        delivery.status, delivery.last_error = "failed", "The target is disabled"
        db.session.commit()
        return delivery.status
    ok, code, error = _try(delivery)
    now = utcnow()
    delivery.attempts += 1
    db.session.add(
        NotificationAttempt(
            delivery_id=delivery.id, number=delivery.attempts, at=now, status_code=code, ok=ok, error=error
        )
    )
    if ok:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
        target.failing_since = None
        db.session.commit()
        return delivery.status
    delivery.last_error = error
    target.failing_since = target.failing_since or now
    disable_after = timedelta(hours=current_app.config["NOTIFY_DISABLE_AFTER_HOURS"])
    if now - target.failing_since >= disable_after:
        target.enabled, target.disabled_at = False, now
        target.disabled_reason = (
            f"Every delivery failed since {target.failing_since:%Y-%m-%d %H:%M} UTC ({error})"
        )
        log.warning("notification target %s disabled after failing since %s", target.id, target.failing_since)
    intervals = current_app.config["NOTIFY_RETRY_INTERVALS"]
    if delivery.attempts > len(intervals) or not target.enabled:
        delivery.status = "failed"
        db.session.commit()
        return delivery.status
    db.session.commit()
    enqueue(delivery.id, attempt=delivery.attempts + 1, delay=intervals[delivery.attempts - 1])
    return "retrying"
