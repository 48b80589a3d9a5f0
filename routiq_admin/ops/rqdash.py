"""rq-dashboard mounted at /admin/rq for superusers only (an app-level gate: its blueprint is shared)."""

import rq_dashboard
from flask import current_app, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from ..auth import bearer_token
from ..errors import Forbidden, Unauthorized

PREFIX = "/admin/rq"
# Its pages use inline scripts and underscore templates (eval); only superusers reach them.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def init_app(app):
    """Mount the dashboard on the app's Redis, behind the superuser gate and our CSRF check."""
    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"]
    rq_dashboard.web.setup_rq_connection(app)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    app.jinja_env.globals["queue_view_url"] = PREFIX + "/"

    @app.before_request
    def _superusers_only():
        if request.blueprint != rq_dashboard.blueprint.name:
            return
        if bearer_token() is not None:
            raise Forbidden("The queue view needs a signed-in superuser, not an API token")
        if not current_user.is_authenticated:
            raise Unauthorized("Authentication required")
        if not current_user.is_superuser:
            raise Forbidden("Only superusers can see the queue", error_code="SUPERUSER_REQUIRED")

    @app.after_request
    def _dashboard_headers(response):
        # Its script sends the `_csrf_token` cookie back as X-CSRFToken on every POST.
        if request.blueprint == rq_dashboard.blueprint.name and current_user.is_authenticated:
            response.headers["Content-Security-Policy"] = CSP
            response.set_cookie(
                "_csrf_token",
                generate_csrf(),
                path=PREFIX,
                samesite="Strict",
                secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
                httponly=False,
            )
        return response
