"""Every error handler of the app: the guide's JSON envelope for API clients, pages for browsers."""

import logging

from flask import jsonify, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from .auth import current_principal
from .errors import TITLES, AppError, Unauthorized
from .extensions import db
from .models import utcnow
from .timefmt import iso

log = logging.getLogger(__name__)

HTTP_TO_TYPE = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "sync_already_running",
    422: "validation_error",
    429: "rate_limit_exceeded",
}


def wants_json():
    """Tell whether this request should get JSON errors (API paths and bearer callers)."""
    return request.path.startswith("/api/") or "Authorization" in request.headers


def envelope(err):
    """Return the JSON response for an AppError."""
    body = {
        "success": False,
        "error": err.title,
        # The guide's envelope always shows retry_after: null unless there is something to wait for.
        "details": {"retry_after": None, **err.details()},
        "timestamp": iso(utcnow()),
    }
    response = jsonify(body)
    set_status(response, err.http_status)
    if err.error_type == "rate_limit_exceeded" and err.retry_after is not None:
        response.headers["Retry-After"] = str(int(err.retry_after))
    return response


def set_status(response, code):
    """Set the status; a 429 carries the reason phrase the guide's `safeTriggerSync` looks for."""
    if code == 429:
        response.status = f"429 {TITLES['rate_limit_exceeded']}"
    else:
        response.status_code = code


def _browser_error(err):
    if err.error_type == "unauthorized":
        # full_path ends in "?" when there is no query string: leave it out of next=.
        here = request.full_path.removesuffix("?")
        login = url_for("auth.login", next=here if request.method == "GET" else None)
        if request.headers.get("HX-Request"):
            response = make_response("", 401)
            response.headers["HX-Redirect"] = url_for("auth.login")
            return response
        return redirect(login)
    return render_template("error.html", error=err), err.http_status


def handle_app_error(err):
    """Answer an AppError as JSON or as a page."""
    return envelope(err) if wants_json() else _browser_error(err)


def init_app(app):
    """Install every error handler, so no API client ever sees an HTML error page."""

    app.register_error_handler(AppError, handle_app_error)

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        if wants_json() and current_principal() is None:
            # Nobody is signed in, so there is no session to protect: the answer is 401.
            return handle_app_error(Unauthorized("Authentication required"))
        return handle_app_error(
            AppError("CSRF token missing or invalid", error_type="forbidden", error_code="CSRF_FAILED")
        )

    @app.errorhandler(HTTPException)
    def _http(exc):
        if not wants_json():
            if exc.response is not None or exc.code >= 500:
                return exc
            response = make_response(render_template("error.html", error=exc), exc.code)
            if exc.code == 405 and getattr(exc, "valid_methods", None):
                response.headers["Allow"] = ", ".join(exc.valid_methods)
            return response
        error_type = HTTP_TO_TYPE.get(exc.code, "internal_error" if exc.code >= 500 else "validation_error")
        err = AppError(exc.description or exc.name, error_type=error_type)
        response = envelope(err)
        set_status(response, exc.code)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(SQLAlchemyError)
    def _database(exc):
        log.exception("database error")
        db.session.rollback()
        return handle_app_error(AppError("The database is unavailable", error_type="database_error"))

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return handle_app_error(AppError("Internal server error", error_type="internal_error"))
