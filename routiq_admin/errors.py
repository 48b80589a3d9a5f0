"""The error taxonomy shared by the client, the sync engine and the API envelope."""

HTTP_STATUS = {
    "credentials_not_found": 400,
    "invalid_credentials": 400,
    "api_connection_failed": 502,
    "rate_limit_exceeded": 429,
    "invalid_data_format": 502,
    "database_error": 503,
    "queue_unavailable": 503,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "validation_error": 422,
    "sync_already_running": 409,
    "sync_not_active": 409,
    "method_not_allowed": 405,
    "internal_error": 500,
}

TITLES = {
    "credentials_not_found": "Credentials not found",
    "invalid_credentials": "Invalid credentials",
    "api_connection_failed": "API connection failed",
    "rate_limit_exceeded": "Rate limit exceeded",
    "invalid_data_format": "Invalid data format",
    "database_error": "Database error",
    "queue_unavailable": "Queue unavailable",
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not_found": "Not found",
    "validation_error": "Validation error",
    "sync_already_running": "Sync already running",
    "sync_not_active": "Sync not active",
    "method_not_allowed": "Method not allowed",
    "internal_error": "Internal error",
}

DEFAULT_CODES = {
    "credentials_not_found": "CLINIKO_CREDENTIALS_NOT_FOUND",
    "invalid_credentials": "CLINIKO_UNAUTHORIZED",
    "api_connection_failed": "CLINIKO_API_UNAVAILABLE",
    "rate_limit_exceeded": "CLINIKO_RATE_LIMITED",
    "invalid_data_format": "CLINIKO_INVALID_DATA",
    "database_error": "DATABASE_ERROR",
    "queue_unavailable": "QUEUE_UNAVAILABLE",
    "unauthorized": "AUTH_REQUIRED",
    "forbidden": "ORG_FORBIDDEN",
    "not_found": "NOT_FOUND",
    "validation_error": "INVALID_PARAMETER",
    "sync_already_running": "SYNC_ALREADY_RUNNING",
    "sync_not_active": "SYNC_NOT_ACTIVE",
    "method_not_allowed": "METHOD_NOT_ALLOWED",
    "internal_error": "INTERNAL_ERROR",
}


class AppError(Exception):
    """An error with a place in the taxonomy: type, code, HTTP status, retry hint."""

    error_type = "internal_error"

    def __init__(self, message, *, error_type=None, error_code=None, retry_after=None, **extra):
        super().__init__(message)
        self.message = message
        if error_type:
            self.error_type = error_type
        self.error_code = error_code or DEFAULT_CODES[self.error_type]
        self.retry_after = retry_after
        self.extra = extra

    @property
    def http_status(self):
        return HTTP_STATUS[self.error_type]

    @property
    def title(self):
        return TITLES[self.error_type]

    def details(self):
        """Return the envelope's `details` object."""
        out = {"error_type": self.error_type, "message": self.message, "error_code": self.error_code}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        out.update(self.extra)
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.error_type}, {self.error_code}, {self.message!r})"


class Unauthorized(AppError):
    error_type = "unauthorized"


class Forbidden(AppError):
    error_type = "forbidden"


class NotFound(AppError):
    error_type = "not_found"


class ValidationError(AppError):
    error_type = "validation_error"


class SyncAlreadyRunning(AppError):
    error_type = "sync_already_running"


class SyncNotActive(AppError):
    error_type = "sync_not_active"


class QueueUnavailable(AppError):
    """Redis is not reachable: nothing was enqueued."""

    error_type = "queue_unavailable"


class RateLimited(AppError):
    error_type = "rate_limit_exceeded"
