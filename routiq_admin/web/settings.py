"""Organization settings for its admins: Cliniko key, sync switch, members, API tokens."""

import json
import logging
import smtplib
from datetime import timedelta

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from .. import crypto, mail
from ..auth import end_sessions, require_person, require_principal
from ..extensions import db
from ..models import ROLES, ApiToken, Invitation, Membership, User, get_for_org, utcnow
from .common import org_zone
from .forms import ClinikoKeyForm, InviteForm, RoleForm, ScheduleForm, TokenForm
from .schedule import save_schedule, schedule_context

log = logging.getLogger(__name__)

bp = Blueprint("settings", __name__, url_prefix="/orgs/<org_id>/settings")


def _admin(org_id):
    return require_person(org_id, "admin"), require_principal().user


# A secret shown once (a new token, an invitation link) waits for the next page view in the session,
# encrypted, so that the POST can redirect and a reload creates nothing.
ONCE = "settings_once"


def _back(org, **once):
    if once:
        session[ONCE] = crypto.encrypt(json.dumps(once))
    return redirect(url_for("settings.index", org_id=org.id))


def _take_once():
    sealed = session.pop(ONCE, None)
    try:
        return json.loads(crypto.decrypt(sealed)) if sealed else {}
    except (RuntimeError, ValueError):
        return {}


def _invalid(org, user, **forms):
    """The settings page again, with the bound form that failed so its errors sit by its fields."""
    return _page(org, user, forms=forms, status=422)


def _page(org, user, *, once=None, forms=None, status=200):
    members = db.session.execute(
        select(Membership, User).join(User).where(Membership.organization_id == org.id).order_by(User.email)
    ).all()
    tokens = db.session.execute(
        select(ApiToken).where(ApiToken.organization_id == org.id).order_by(ApiToken.created_at.desc())
    ).scalars()
    invitations = db.session.execute(
        select(Invitation).where(Invitation.organization_id == org.id).order_by(Invitation.email)
    ).scalars()
    response = make_response(
        render_template(
            "settings/index.html",
            org=org,
            role="admin",
            me=user,
            tz=org_zone(org),
            members=members,
            tokens=list(tokens),
            roles=ROLES,
            invitations=[i for i in invitations if i.pending],
            schedule=schedule_context(org, (forms or {}).get("schedule_form")),
            **(once or {}),
            **{
                "key_form": ClinikoKeyForm(formdata=None),
                "invite_form": InviteForm(formdata=None),
                "token_form": TokenForm(formdata=None),
                **(forms or {}),
            },
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
def index(org_id):
    """Show the settings page."""
    org, user = _admin(org_id)
    return _page(org, user, once=_take_once())


@bp.post("/cliniko")
def cliniko(org_id):
    """Replace or remove the Cliniko API key (write-only: it is never shown again)."""
    org, me = _admin(org_id)
    if request.form.get("action") == "remove":
        org.set_api_key(None)
        flash("Cliniko API key removed.", "info")
    else:
        form = ClinikoKeyForm()
        if not form.validate():
            return _invalid(org, me, key_form=form)
        org.set_api_key(form.api_key.data)
        flash(
            f"Cliniko API key saved ({org.masked_key}, region {org.cliniko_shard}). Test the connection.",
            "info",
        )
    db.session.commit()
    return _back(org)


@bp.post("/sync")
def sync(org_id):
    """Save the schedule, time zone and on/off switch (web/schedule.py); the next run is computed from now."""
    org, me = _admin(org_id)
    form = ScheduleForm()
    if not form.validate():
        db.session.rollback()
        return _invalid(org, me, schedule_form=form)
    flash(save_schedule(org, form), "info")
    return _back(org)


@bp.post("/members")
def add_member(org_id):
    """Invite a person by email; the answer is the same whether or not they have an account."""
    org, me = _admin(org_id)
    form = InviteForm()
    if not form.validate():
        return _invalid(org, me, invite_form=form)
    email, role = form.email.data, form.role.data
    invitation = get_for_org(Invitation, org.id, email=email)
    if invitation is None:
        invitation = Invitation(organization_id=org.id, email=email)
        db.session.add(invitation)
    # Re-inviting replaces the earlier offer: its link stops working.
    clear = invitation.new_token()
    invitation.role = role
    invitation.invited_by_id = me.id
    invitation.created_at = utcnow()
    invitation.expires_at = utcnow() + timedelta(hours=current_app.config["INVITATION_TTL_HOURS"])
    invitation.accepted_at = invitation.revoked_at = None
    db.session.commit()
    link = url_for("account.invitation", token=clear, _external=True)
    if mail.configured():
        try:
            mail.send(
                email,
                f"Invitation to {org.name} on Routiq Admin",
                f"{me.email} invites you to {org.name} as {role}.\n\nOpen this link to accept "
                f"(valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC, once):\n{link}\n",
            )
        except (OSError, smtplib.SMTPException) as exc:
            # The invitation is stored either way: show the link rather than lose it.
            log.warning("invitation email not sent: %s", type(exc).__name__)
            flash("The invitation email could not be sent; pass the link below on yourself.", "error")
        else:
            flash(f"Invitation for {email} sent by email.", "info")
            return _back(org)
    return _back(org, invite={"email": email, "link": link})


@bp.post("/invitations/<int:invitation_id>/revoke")
def revoke_invitation(org_id, invitation_id):
    """Revoke a pending invitation."""
    org, _ = _admin(org_id)
    invitation = get_for_org(Invitation, org.id, id=invitation_id)
    if invitation is not None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        db.session.commit()
        flash(f"Invitation for {invitation.email} revoked.", "info")
    return _back(org)


def _membership(org, membership_id, me):
    membership = get_for_org(Membership, org.id, id=membership_id)
    if membership is None:
        return None, "No such member."
    if membership.user_id == me.id:
        return None, "You cannot change your own membership; ask another admin."
    return membership, None


def _on_member(org_id, membership_id, change):
    """Apply one admin action to another member; `change` answers (message, done)."""
    org, me = _admin(org_id)
    membership, problem = _membership(org, membership_id, me)
    message, done = (problem, False) if problem else change(membership)
    if done:
        db.session.commit()
    flash(message, "info" if done else "error")
    return _back(org)


@bp.post("/members/<int:membership_id>")
def change_role(org_id, membership_id):
    """Change a member's role."""

    def change(membership):
        form = RoleForm()
        if not form.validate():
            return "Unknown role.", False
        membership.role = form.role.data
        return f"{membership.user.email} is now {membership.role}.", True

    return _on_member(org_id, membership_id, change)


@bp.post("/members/<int:membership_id>/remove")
def remove_member(org_id, membership_id):
    """Remove a member from the organization (their account stays)."""

    def change(membership):
        email = membership.user.email
        end_sessions(membership.user)
        db.session.delete(membership)
        return f"{email} removed.", True

    return _on_member(org_id, membership_id, change)


@bp.post("/members/<int:membership_id>/sign-out")
def sign_out_member(org_id, membership_id):
    """End every session of a member."""

    def change(membership):
        end_sessions(membership.user)
        return f"{membership.user.email} signed out everywhere.", True

    return _on_member(org_id, membership_id, change)


@bp.post("/tokens")
def create_token(org_id):
    """Create an API token for this organization; its value is shown once, on the next page view."""
    org, me = _admin(org_id)
    form = TokenForm()
    if not form.validate():
        return _invalid(org, me, token_form=form)
    row, clear = ApiToken.issue(
        name=form.name.data or "API token", organization_id=org.id, user=me, scopes=form.scopes()
    )
    db.session.add(row)
    db.session.commit()
    return _back(org, new_token={"name": row.name, "value": clear})


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(org_id, token_id):
    """Revoke an API token at once."""
    org, _ = _admin(org_id)
    token = get_for_org(ApiToken, org.id, id=token_id)
    if token is None:
        flash("No such token.", "error")
    elif token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        flash(f"Token {token.name} ({token.token_prefix}…) revoked.", "info")
    return _back(org)
