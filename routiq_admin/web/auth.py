"""Log in and out, with throttling of failed logins and same-site `next=` redirects."""

import functools
import hashlib
import math
import secrets
import threading
import time
from urllib.parse import urlsplit

import redis
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from ..auth import end_sessions, start_session
from ..extensions import db, redis_or_none
from ..models import User, utcnow

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@functools.cache
def _dummy_hash():
    return generate_password_hash(secrets.token_urlsafe(16))


def sign_in(user):
    """Log `user` in on a fresh session (new CSRF token, current session generation)."""
    _fresh_session()
    login_user(user)
    start_session(user)


def _fresh_session():
    # Flask-WTF caches the signed CSRF token in g; drop it with the session's raw one.
    session.clear()
    g.pop("csrf_token", None)


def safe_next(target):
    """Return `target` if it is a same-site path, else the organizations page."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and "\\" not in target and target.isprintable():
            return target
    return url_for("orgs.index")


class FailedLogins:
    """Count failed logins per account and per client address in Redis (memory if Redis is down).

    Keys hold a hash of the email, never the email itself.
    """

    _memory = {}
    _lock = threading.Lock()

    def __init__(self, email, address):
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        self.keys = {
            f"routiq:login-fail:acct:{digest}": current_app.config["LOGIN_MAX_FAILURES"],
            f"routiq:login-fail:addr:{address}": current_app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        }
        self.window = current_app.config["LOGIN_THROTTLE_SECONDS"]

    def blocked_for(self):
        """Return (seconds left before another attempt is allowed, whether the address is blocked)."""
        conn, wait, network = redis_or_none(), 0, False
        for key, limit in self.keys.items():
            count, ttl = self._read(conn, key)
            if count >= limit:
                wait = max(wait, ttl or self.window)
                network = network or ":addr:" in key
        return wait, network

    def _read(self, conn, key):
        if conn is not None:
            try:
                pipe = conn.pipeline()
                pipe.get(key)
                pipe.ttl(key)
                count, ttl = pipe.execute()
                return int(count or 0), max(0, ttl or 0)
            except redis.RedisError:
                pass
        with self._lock:
            count, until = self._memory.get(key, (0, 0))
            left = until - time.monotonic()
            return (count, math.ceil(left)) if left > 0 else (0, 0)

    def record(self):
        """Count one more failure on every key."""
        conn = redis_or_none()
        for key in self.keys:
            if conn is not None:
                try:
                    pipe = conn.pipeline()
                    pipe.set(key, 0, ex=self.window, nx=True)
                    pipe.incr(key)
                    pipe.execute()
                    continue
                except redis.RedisError:
                    pass
            with self._lock:
                count, until = self._memory.get(key, (0, 0))
                if until <= time.monotonic():
                    count, until = 0, time.monotonic() + self.window
                self._memory[key] = (count + 1, until)

    def clear_account(self):
        """Forget the account's failures after a successful login."""
        key = next(iter(self.keys))
        with self._lock:
            self._memory.pop(key, None)
        conn = redis_or_none()
        if conn is not None:
            try:
                conn.delete(key)
            except redis.RedisError:
                pass


def _too_many(form, wait, network):
    minutes = max(1, math.ceil(wait / 60))
    plural = "s" if minutes > 1 else ""
    if network:
        flash(f"Too many attempts from this network, try again in {minutes} minute{plural}.", "error")
    else:
        flash(f"Too many failed attempts. Try again in {minutes} minute{plural}.", "error")
    response = current_app.make_response((render_template("auth/login.html", form=form), 429))
    response.headers["Retry-After"] = str(int(wait))
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and sign a person in."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")))
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        throttle = FailedLogins(email, request.remote_addr or "unknown")
        wait, network = throttle.blocked_for()
        if wait:
            return _too_many(form, wait, network)
        user = db.session.execute(select(User).where(func.lower(User.email) == email)).scalar_one_or_none()
        if user is None:
            # Same work as a real check, so the answer's timing does not tell which emails exist.
            check_password_hash(_dummy_hash(), form.password.data)
        elif user.check_password(form.password.data):
            throttle.clear_account()
            user.last_login_at = utcnow()
            db.session.commit()
            sign_in(user)
            return redirect(safe_next(request.args.get("next")))
        throttle.record()
        flash("Wrong email or password.", "error")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    """Sign out, ending every session of this person."""
    if current_user.is_authenticated:
        end_sessions(current_user)
        db.session.commit()
    logout_user()
    _fresh_session()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
