"""Response headers every answer carries: CSP, framing, sniffing, referrer, HSTS, no-store."""

from flask import request

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
    """Add the security headers to every response, and no-store to everything but static files."""
    production = app.config.get("APP_ENV") == "production"

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
