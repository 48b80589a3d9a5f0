"""Typed Cliniko failures, each placed in the app's error taxonomy (messages never carry the key)."""

import math

from ..errors import AppError


def _restore(cls, args, state):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


class ClinikoError(AppError):
    """Cliniko answered something we cannot use (an unexpected 4xx, say)."""

    error_type = "api_connection_failed"

    def __init__(self, message, *, status=None, **kwargs):
        kwargs.setdefault("error_code", "CLINIKO_REQUEST_FAILED")
        super().__init__(message, **kwargs)
        self.status = status

    def __reduce__(self):
        # The subclasses' constructors differ from Exception's: pickle by state, not by args.
        return _restore, (type(self), self.args, self.__dict__)


class CredentialsNotFound(ClinikoError):
    """The organization has no Cliniko API key."""

    error_type = "credentials_not_found"

    def __init__(self, message="No Cliniko API key is configured", **kwargs):
        kwargs.setdefault("error_code", "CLINIKO_CREDENTIALS_NOT_FOUND")
        super().__init__(message, **kwargs)


class InvalidCredentials(ClinikoError):
    """Cliniko answered 401 (bad key) or 403 (not permitted, or a blocked User-Agent)."""

    error_type = "invalid_credentials"

    def __init__(self, status, message=None, **kwargs):
        if status == 403:
            kwargs.setdefault("error_code", "CLINIKO_FORBIDDEN")
            message = message or (
                "Cliniko refused the request (403 Forbidden): the key's user lacks permission, "
                "or the User-Agent has no contact email"
            )
        else:
            kwargs.setdefault("error_code", "CLINIKO_UNAUTHORIZED")
            message = message or "Cliniko rejected the API key (401 Unauthorized)"
        super().__init__(message, status=status, **kwargs)


class ApiConnectionFailed(ClinikoError):
    """Cliniko could not be reached, timed out, or kept failing with 5xx after retries."""

    error_type = "api_connection_failed"

    def __init__(self, message="Unable to connect to Cliniko API", *, timeout=False, **kwargs):
        kwargs.setdefault("error_code", "CLINIKO_API_TIMEOUT" if timeout else "CLINIKO_API_UNAVAILABLE")
        super().__init__(message, **kwargs)


class RateLimitExceeded(ClinikoError):
    """Cliniko answered 429, or our shared budget for this Cliniko user is spent."""

    error_type = "rate_limit_exceeded"

    def __init__(self, retry_after, message=None, **kwargs):
        retry_after = max(1, math.ceil(retry_after))
        kwargs.setdefault("error_code", "CLINIKO_RATE_LIMITED")
        message = message or f"Cliniko rate limit reached; retry in {retry_after} s"
        super().__init__(message, retry_after=retry_after, **kwargs)


class InvalidDataFormat(ClinikoError):
    """Cliniko sent a body that is not JSON or not the expected shape."""

    error_type = "invalid_data_format"

    def __init__(self, message="Cliniko returned data in an unexpected format", **kwargs):
        kwargs.setdefault("error_code", "CLINIKO_INVALID_DATA")
        super().__init__(message, **kwargs)
