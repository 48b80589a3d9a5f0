"""Who is asking: session users and bearer tokens, organization and run scope, role checks.

API clients get the JSON error envelope (401/403), browsers a redirect to the login page,
htmx requests an `HX-Redirect` header.
"""

import re
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, request, session
from flask_login import current_user
from sqlalchemy import select

from . import clerk
from .errors import Forbidden, NotFound, Unauthorized, ValidationError
from .extensions import csrf, db, login_manager
from .models import ROLES, SCOPES, ApiToken, Organization, User, hash_token, utcnow
from .sync.status import find_run

TOKEN_ROLE = "operator"
# Who may make the app call Cliniko (dashboard and API alike).
CLINIKO_CALL_ROLE = "operator"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Ids never hold control characters; PostgreSQL refuses NUL in text, so stop them here.
VALID_ID = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
ORG_HEADER = "X-Organization-ID"


def role_at_least(role, needed):
    """Tell whether `role` grants what `needed` asks for (viewer < operator < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


@dataclass
class Principal:
    """The person or token making the request."""

    user: User | None = None
    token: ApiToken | None = None
    # What this principal may do (names from models.SCOPES): people have every scope, API
    # tokens their stored ones; other credential kinds pass theirs in.
    scopes: frozenset | None = None

    def __post_init__(self):
        if self.scopes is None:
            self.scopes = (
                frozenset(SCOPES) if self.user else self.token.scope_set if self.token else frozenset()
            )

    @property
    def label(self):
        if self.user:
            return self.user.email
        return f"token:{self.token.name} ({self.token.token_prefix}…)"

    @property
    def identity(self):
        """Return the key our API limits count this caller by."""
        return f"token:{self.token.id}" if self.token else f"user:{self.user.id}"

    @property
    def sees_all(self):
        return bool((self.user and self.user.is_superuser) or (self.token and self.token.all_organizations))

    def role_in(self, org_id):
        """Return the role this principal has in an organization, or None."""
        if self.user:
            return self.user.role_in(org_id)
        return TOKEN_ROLE if self.token.covers(org_id) else None

    def visible_org_ids(self):
        """Return the ids of organizations this principal may see (None means all)."""
        if self.sees_all:
            return None
        if self.user:
            return [m.organization_id for m in self.user.memberships]
        return [self.token.organization_id]

    def default_org_id(self):
        if self.token and self.token.organization_id:
            return self.token.organization_id
        return None


def bearer_token():
    """Return the bearer token sent with this request, or None."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or ""
    return None


def _load_principal():
    clear = bearer_token()
    if clear is not None:
        # Tokens are for the JSON API; the dashboard's pages are for signed-in people.
        if not request.path.startswith("/api/"):
            g.auth_error = "API tokens are accepted only by the JSON API (/api/…)"
            return None
        if clerk.is_jwt(clear):
            try:
                return clerk.principal(clear)
            except Unauthorized as exc:
                g.auth_error = exc
                return None
        token = db.session.execute(
            select(ApiToken).where(ApiToken.token_hash == hash_token(clear))
        ).scalar_one_or_none()
        if token is None or not token.active:
            g.auth_error = "Invalid or revoked API token"
            return None
        now = utcnow()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            token.last_used_at = now
            db.session.commit()
        return Principal(token=token)
    if current_user.is_authenticated:
        return Principal(user=current_user._get_current_object())
    return None


def current_principal():
    """Return the Principal of this request, or None when nobody is authenticated."""
    if "principal" not in g:
        g.principal = _load_principal()
    return g.principal


def require_principal():
    """Return the Principal or raise Unauthorized."""
    principal = current_principal()
    if principal is None:
        error = g.get("auth_error") or "Authentication required"
        raise error if isinstance(error, Unauthorized) else Unauthorized(error)
    return principal


def require_scope(scope):
    """Return the Principal if it holds `scope`: 401 without one, 403 naming the scope otherwise."""
    principal = require_principal()
    if scope not in principal.scopes:
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise Forbidden(
            f"This endpoint needs the {scope} scope (this credential has: {held})",
            error_code="SCOPE_REQUIRED",
            scope=scope,
        )
    return principal


def scope_guard(scope):
    """Return a before_request hook that makes every route of a blueprint need `scope`."""

    def guard():
        # CORS preflights carry no credentials; the real request is checked.
        if request.method != "OPTIONS":
            require_scope(scope)

    return guard


def require_role(org_id, role="viewer"):
    """Raise 401, then 403, unless the caller holds `role` in the organization (not loaded)."""
    principal = require_principal()
    held = principal.role_in(org_id)
    if held is None:
        if principal.sees_all and db.session.get(Organization, org_id) is None:
            raise NotFound("Organization not found")
        raise Forbidden("You do not have access to this organization")
    if not role_at_least(held, role):
        raise Forbidden(f"This action needs the {role} role", error_code="ROLE_REQUIRED")


def require_org(org_id, role="viewer"):
    """Return the organization if the caller holds `role` in it: 401, then 403, then 404."""
    require_role(org_id, role)
    org = db.session.get(Organization, org_id)
    if org is None:
        raise NotFound("Organization not found")
    return org


def org_in_scope(org_id, role="viewer"):
    """Return the organization if the caller holds `role` in it (401, 403, 404 in that order)."""
    principal = require_principal()
    if not VALID_ID.fullmatch(org_id):
        raise (
            NotFound("Organization not found")
            if principal.sees_all
            else Forbidden("You do not have access to this organization")
        )
    return require_org(org_id, role)


def header_org_id():
    """Return the X-Organization-ID header, or None when it is absent or blank."""
    return (request.headers.get(ORG_HEADER) or "").strip() or None


def path_org(org_id, role="viewer"):
    """Return the organization named in the path; a header naming another one must be in scope too."""
    header = header_org_id()
    if header is not None and header != org_id:
        org_in_scope(header)
    return org_in_scope(org_id, role)


def selected_org(role="viewer"):
    """Return the organization chosen by X-Organization-ID, else the token's (or person's only) one."""
    principal = require_principal()
    org_id = header_org_id() or principal.default_org_id()
    if org_id is None and principal.user is not None:
        ids = principal.visible_org_ids()
        org_id = ids[0] if ids is not None and len(ids) == 1 else None
    if org_id is None:
        raise ValidationError(f"Send the {ORG_HEADER} header to choose an organization", field=ORG_HEADER)
    return org_in_scope(org_id, role)


def run_in_scope(sync_id, role="viewer"):
    """Return a run the caller may see (another organization's id is 404), checking `role` in its org."""
    principal = require_principal()
    header = header_org_id()
    org_ids = [org_in_scope(header).id] if header else principal.visible_org_ids()
    run = find_run(sync_id, org_ids) if VALID_ID.fullmatch(sync_id) else None
    if run is None:
        raise NotFound(f"Sync {sync_id} not found")
    # The run's organization exists (foreign key): checking the role needs no load of it.
    require_role(run.organization_id, role)
    return run


def require_person(org_id, role="admin"):
    """Like require_org, but tokens are refused: administration needs a person."""
    principal = require_principal()
    if principal.user is None:
        raise Forbidden("This action needs a signed-in person, not an API token")
    return require_org(org_id, role)


def visible_organizations():
    """Return the organizations the caller may see, by name."""
    principal = require_principal()
    stmt = select(Organization).order_by(Organization.name)
    ids = principal.visible_org_ids()
    if ids is not None:
        stmt = stmt.where(Organization.id.in_(ids))
    return list(db.session.execute(stmt).scalars())


def start_session(user):
    """Stamp the session with the user's generation and the login time (call after login_user)."""
    now = time.time()
    session["gen"] = user.session_generation
    session["login_at"] = now
    session["seen_at"] = now


def end_sessions(user):
    """End every session of `user` at once (the caller commits)."""
    user.session_generation = (user.session_generation or 0) + 1


def _session_alive(user):
    now, config = time.time(), current_app.config
    if session.get("gen") != user.session_generation:
        return False
    if now - session.get("login_at", 0) > config["SESSION_LIFETIME_HOURS"] * 3600:
        return False
    if now - session.get("seen_at", 0) > config["SESSION_IDLE_MINUTES"] * 60:
        return False
    session["seen_at"] = now
    return True


@login_manager.user_loader
def _load_user(user_id):
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not _session_alive(user):
        session.clear()
        return None
    return user


def init_app(app):
    """Hook authentication and CSRF into the request cycle."""
    # We run the check ourselves (below) so bearer requests can skip it; Flask-WTF's own
    # default check (switched on by csrf.init_app) would refuse them.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    clerk.init_app(app)
    login_manager.login_view = "auth.login"

    @app.before_request
    def _csrf_unless_bearer():
        # Bearer requests carry no cookie a browser could be tricked into sending.
        if app.config.get("WTF_CSRF_ENABLED", True) and bearer_token() is None:
            csrf.protect()

    @app.teardown_request
    def _forget_principal(exc):
        # An app context can outlive a request (tests, CLI); identity must not.
        g.pop("principal", None)
        g.pop("auth_error", None)
        g.pop("_login_user", None)
