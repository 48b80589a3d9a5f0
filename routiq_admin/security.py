"""Response headers every answer carries: CSP, framing, sniffing, referrer, HSTS, no-store."""

from flask import request
from werkzeug.exceptions import BadRequest

# The one pinned htmx script base.html loads (tests/web/test_security_headers.py checks they agree).
HTMX_URL = "https://cdn.jsdelivr.net/npm/htmx.org@2.0.11/dist/htmx.min.js"

CSP = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' {HTMX_URL}",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app):
    """Refuse NUL in dashboard requests; add security headers, and no-store but on static files."""
    production = app.config.get("APP_ENV") == "production"

    @app.before_request
    def _refuse_nul():
        # No column can hold NUL on PostgreSQL: refuse it before it reaches a query (or a log).
        # The JSON API validates its own parameters (422 with the field's name).
        if request.path.startswith("/api/"):
            return
        fields = (*request.args.items(multi=True), *request.form.items(multi=True))
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in fields):
            raise BadRequest("The request holds a NUL character")

    @app.after_request
    def _security_headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        # Pages, fragments and JSON may carry patient data; only static files may be cached.
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response
