"""Notification targets: the event names, and the rules for recipients and webhook URLs."""

import ipaddress
import socket
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, select

from .. import crypto
from ..errors import ValidationError
from ..extensions import db
from ..models import NotificationAttempt, NotificationDelivery, NotificationTarget
from .signing import new_secret

EVENT_TYPES = ("sync.failed", "sync.recovered", "sync.paused", "sync.completed", "sync.slow", "sync.failing")
DEFAULT_EVENTS = tuple(e for e in EVENT_TYPES if e != "sync.completed")
TEST_EVENT = "sync.test"
MAX_RECIPIENTS = 20


def parse_events(value):
    """Return the event list from a comma-separated string or a list (empty: the defaults)."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    events = [e.strip() for e in items if e and e.strip()]
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValidationError(f"Unknown event {unknown[0]!r}; use {', '.join(EVENT_TYPES)}", field="events")
    return [e for e in EVENT_TYPES if e in events] or list(DEFAULT_EVENTS)


def parse_recipients(value):
    """Return a clean list of email addresses; an empty list is refused."""
    items = value.replace(";", ",").replace("\n", ",").split(",") if isinstance(value, str) else value
    recipients = list(dict.fromkeys(r.strip().lower() for r in items or () if r and r.strip()))
    if not recipients:
        raise ValidationError("Give at least one email address.", field="recipients")
    for address in recipients:
        local, _, domain = address.partition("@")
        if not local or "." not in domain or any(c.isspace() for c in address) or len(address) > 254:
            raise ValidationError(f"{address!r} is not an email address.", field="recipients")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValidationError(f"At most {MAX_RECIPIENTS} recipients.", field="recipients")
    return recipients


def _public(address):
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url, allow_private=None):
    """Return the URL if it may receive webhooks, else raise a 422.

    Only http(s); unless NOTIFY_ALLOW_PRIVATE_URLS (off in production), every address the host
    resolves to must be public: no loopback, private, link-local (cloud metadata) or reserved one.
    """
    if allow_private is None:
        allow_private = current_app.config["NOTIFY_ALLOW_PRIVATE_URLS"]
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Use an http:// or https:// URL.", field="url")
    if len(url) > 2000:
        raise ValidationError("The URL is too long (2000 characters at most).", field="url")
    if parts.username or parts.password:
        raise ValidationError("Put no credentials in the URL; the webhook is signed.", field="url")
    if allow_private:
        return url
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    except (OSError, ValueError):
        raise ValidationError("The URL's host does not resolve.", field="url") from None
    if not all(_public(a.split("%")[0]) for a in addresses):
        raise ValidationError(
            "The URL points to a private, loopback or reserved address; use a public one.", field="url"
        )
    return url


def add_email(org, recipients, events=None):
    """Store an email target for the organization; return it."""
    target = NotificationTarget(
        organization_id=org.id,
        kind="email",
        recipients=parse_recipients(recipients),
        events=parse_events(events),
    )
    db.session.add(target)
    db.session.commit()
    return target


def add_webhook(org, url, events=None):
    """Store a webhook target; return (target, signing secret), the secret shown only this once."""
    url = check_url(url)
    secret = new_secret()
    target = NotificationTarget(
        organization_id=org.id,
        kind="webhook",
        recipients=[],
        url=url,
        secret_encrypted=crypto.encrypt(secret),
        events=parse_events(events),
    )
    db.session.add(target)
    db.session.commit()
    return target, secret


def enable(target):
    """Turn a disabled target back on; its failure streak starts again."""
    target.enabled = True
    target.failing_since = target.disabled_at = target.disabled_reason = None
    db.session.commit()


def remove(target):
    """Delete a target with its deliveries and their tries."""
    deliveries = select(NotificationDelivery.id).where(NotificationDelivery.target_id == target.id)
    db.session.execute(delete(NotificationAttempt).where(NotificationAttempt.delivery_id.in_(deliveries)))
    db.session.execute(delete(NotificationDelivery).where(NotificationDelivery.target_id == target.id))
    db.session.delete(target)
    db.session.commit()
