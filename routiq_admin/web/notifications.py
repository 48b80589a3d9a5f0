"""Notification settings for org admins (email recipients, webhook endpoints), and the run page's
"delivery failed" notice."""

from flask import Blueprint, flash, has_request_context, redirect, request, url_for
from sqlalchemy import select

from ..auth import require_person, require_principal
from ..extensions import db
from ..models import (
    NotificationAttempt,
    NotificationDelivery,
    NotificationEvent,
    NotificationTarget,
    get_for_org,
)
from ..notify import EVENT_TYPES, TEST_EVENT, emit
from ..notify import targets as notify_targets
from . import settings
from .forms import EmailTargetForm, WebhookTargetForm

bp = Blueprint("notifications", __name__, url_prefix="/orgs/<org_id>/settings/notifications")

RECENT_DELIVERIES = 20


def _admin(org_id):
    return require_person(org_id, "admin"), require_principal().user


def _back(org):
    return redirect(url_for("settings.index", org_id=org.id) + "#notifications-title")


def _target(org, target_id):
    return get_for_org(NotificationTarget, org.id, id=target_id)


def _scratch():
    # Per request, not `g`: what one response shows once (a secret) must not leak into the next.
    return request.environ.setdefault("routiq.notify", {}) if has_request_context() else {}


def panel(org):
    """Return what settings/_notifications.html shows for an organization."""
    targets = list(
        db.session.execute(
            select(NotificationTarget)
            .where(NotificationTarget.organization_id == org.id)
            .order_by(NotificationTarget.id)
        ).scalars()
    )
    deliveries = list(
        db.session.execute(
            select(NotificationDelivery, NotificationEvent)
            .join(NotificationEvent, NotificationDelivery.event_id == NotificationEvent.id)
            .where(NotificationDelivery.organization_id == org.id)
            .order_by(NotificationDelivery.id.desc())
            .limit(RECENT_DELIVERIES)
        ).all()
    )
    attempts = {}
    if deliveries:
        stmt = (
            select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id.in_([d.id for d, _ in deliveries]))
            .order_by(NotificationAttempt.number)
        )
        for attempt in db.session.execute(stmt).scalars():
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    scratch = _scratch()
    forms = scratch.get("forms", {})
    return {
        "targets": targets,
        "disabled": [t for t in targets if not t.enabled],
        "deliveries": deliveries,
        "attempts": attempts,
        "by_id": {t.id: t for t in targets},
        "email_form": forms.get("email") or EmailTargetForm(formdata=None),
        "webhook_form": forms.get("webhook") or WebhookTargetForm(formdata=None),
        "new_secret": scratch.get("new_secret"),
        "event_types": EVENT_TYPES,
    }


def failed_deliveries(run):
    """Return (delivery, target) pairs of this run's notifications whose last try failed."""
    stmt = (
        select(NotificationDelivery, NotificationTarget)
        .join(NotificationEvent, NotificationDelivery.event_id == NotificationEvent.id)
        .join(NotificationTarget, NotificationDelivery.target_id == NotificationTarget.id)
        .where(
            NotificationEvent.organization_id == run.organization_id,
            NotificationEvent.sync_id == run.sync_id,
            NotificationDelivery.last_error.is_not(None),
        )
        .order_by(NotificationDelivery.id)
    )
    return db.session.execute(stmt).all()


@bp.app_context_processor
def _template_helpers():
    return {"notifications_panel": panel, "notification_failures": failed_deliveries}


def _refused(org, me, kind, form):
    _scratch()["forms"] = {kind: form}
    return settings._page(org, me, status=422)


@bp.post("/email")
def add_email(org_id):
    """Add email recipients with the events they get."""
    org, me = _admin(org_id)
    form = EmailTargetForm()
    if not form.validate():
        return _refused(org, me, "email", form)
    target = notify_targets.add_email(org, form.recipients.data, form.events.data)
    flash(f"Notifications to {target.label} added.", "info")
    return _back(org)


@bp.post("/webhook")
def add_webhook(org_id):
    """Add a webhook endpoint; its signing secret is shown on this response only."""
    org, me = _admin(org_id)
    form = WebhookTargetForm()
    if not form.validate():
        return _refused(org, me, "webhook", form)
    target, secret = notify_targets.add_webhook(org, form.url.data, form.events.data)
    _scratch()["new_secret"] = {"target": target, "value": secret}
    return settings._page(org, me)


@bp.post("/<int:target_id>/test")
def send_test(org_id, target_id):
    """Send a test event to one target (queued like any delivery)."""
    org, _ = _admin(org_id)
    target = _target(org, target_id)
    if target is None:
        flash("No such notification target.", "error")
    else:
        emit(org.id, TEST_EVENT, only=target)
        flash(f"Test event queued for {target.label}; its delivery shows below.", "info")
    return _back(org)


@bp.post("/<int:target_id>/enable")
def enable(org_id, target_id):
    """Turn a disabled target back on."""
    org, _ = _admin(org_id)
    target = _target(org, target_id)
    if target is not None:
        notify_targets.enable(target)
        flash(f"Notifications to {target.label} are on again.", "info")
    return _back(org)


@bp.post("/<int:target_id>/remove")
def remove(org_id, target_id):
    """Remove a target and its delivery records."""
    org, _ = _admin(org_id)
    target = _target(org, target_id)
    if target is not None:
        label = target.label
        notify_targets.remove(target)
        flash(f"Notifications to {label} removed.", "info")
    return _back(org)
