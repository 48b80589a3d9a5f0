"""A person's own account: accept an invitation, change the password, sign out everywhere."""

from flask import Blueprint, abort, flash, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from ..auth import end_sessions
from ..extensions import db
from ..models import Invitation, Membership, User, get_for_org, hash_token, utcnow
from .auth import sign_in

bp = Blueprint("account", __name__)

MIN_PASSWORD = 12


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)])
    confirm = PasswordField(
        "New password again", validators=[DataRequired(), EqualTo("password", "The two passwords differ.")]
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired()])


class ConfirmForm(FlaskForm):
    """A button and its CSRF token."""


def _invitation(token):
    """Return the pending invitation behind a link, or answer the one generic 404 page."""
    invitation = db.session.execute(
        select(Invitation).where(Invitation.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if invitation is None or not invitation.pending:
        abort(make_response(render_template("account/invalid_invitation.html"), 404))
    return invitation


def _accept(invitation, user):
    if get_for_org(Membership, invitation.organization_id, user_id=user.id) is None:
        db.session.add(
            Membership(user_id=user.id, organization_id=invitation.organization_id, role=invitation.role)
        )
    invitation.accepted_at = utcnow()
    db.session.commit()


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def invitation(token):
    """Accept an invitation: set a password for a new account, or join with the signed-in one."""
    invitation = _invitation(token)
    account = db.session.execute(
        select(User).where(func.lower(User.email) == invitation.email)
    ).scalar_one_or_none()
    org = invitation.organization
    if account is None:
        form = NewPasswordForm()
        if form.validate_on_submit():
            user = User(email=invitation.email)
            user.set_password(form.password.data)
            db.session.add(user)
            db.session.flush()
            _accept(invitation, user)
            sign_in(user)
            flash(f"Welcome: you are now {invitation.role} in {org.name}.", "info")
            return redirect(url_for("orgs.show", org_id=org.id))
        return render_template("account/invitation_new.html", form=form, invitation=invitation, org=org)
    if not current_user.is_authenticated:
        flash("You already have an account: log in, then open the invitation link again.", "info")
        return redirect(url_for("auth.login", next=url_for("account.invitation", token=token)))
    if current_user.id != account.id:
        return render_template("account/invitation_other.html", invitation=invitation, org=org), 403
    form = ConfirmForm()
    if form.validate_on_submit():
        _accept(invitation, account)
        flash(f"You are now {invitation.role} in {org.name}.", "info")
        return redirect(url_for("orgs.show", org_id=org.id))
    return render_template("account/invitation_accept.html", form=form, invitation=invitation, org=org)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Change one's own password (the current one is required); other sessions end."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not current_user.check_password(form.current.data):
            form.current.errors.append("That is not your current password.")
        else:
            user = current_user._get_current_object()
            user.set_password(form.password.data)
            end_sessions(user)
            db.session.commit()
            sign_in(user)
            flash("Password changed; every other session of yours has ended.", "info")
            return redirect(url_for("account.password"))
    return render_template("account/password.html", form=form, signout=ConfirmForm())


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    """End every session of the signed-in person, this one included."""
    form = ConfirmForm()
    if form.validate_on_submit():
        end_sessions(current_user)
        db.session.commit()
        logout_user()
    return redirect(url_for("auth.login"))
