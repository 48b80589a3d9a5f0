"""JSON API blueprints, our own rate limits and CORS."""

from flask import request

CORS_ALLOW_HEADERS = "Authorization, Content-Type, X-Organization-ID, X-CSRFToken"
CORS_EXPOSE_HEADERS = "Retry-After"


def register_api(app):
    """Register the API blueprints, the limits and CORS."""
    from . import cliniko, data, docs, limits, orgs, sync

    for module in (orgs, data, sync, cliniko, docs):
        app.register_blueprint(module.bp)
    app.before_request(limits.check)
    app.after_request(_cors)


def _cors(response):
    """Let the origins in CORS_ORIGINS call the API from a browser (none by default)."""
    from flask import current_app

    origin = request.headers.get("Origin")
    allowed = current_app.config.get("CORS_ORIGINS") or ()
    if not origin or not request.path.startswith("/api/") or not (origin in allowed or "*" in allowed):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    response.vary.add("Origin")
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response
