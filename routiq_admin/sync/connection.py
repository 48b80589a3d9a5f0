"""Test an organization's Cliniko connection now and record the outcome on it."""

from flask import current_app

from ..cliniko.client import ClinikoClient
from ..cliniko.errors import ApiConnectionFailed, InvalidCredentials, RateLimitExceeded
from ..errors import AppError
from ..extensions import db, redis_or_none
from ..models import utcnow


def check_connection(org):
    """Call Cliniko's GET /user now, store the outcome on the organization, and report it."""
    result = {"success": False, "api_region": org.cliniko_shard, "response_time_ms": None}
    if not org.has_credentials:
        return {**result, "connection_status": "no_credentials", "message": "No Cliniko API key configured"}
    client = ClinikoClient.from_config(
        org.api_key, current_app.config, redis=redis_or_none(), wait_on_rate_limit=False, retries=0
    )
    try:
        outcome = client.test_connection()
    except InvalidCredentials as exc:
        status = "insufficient_permissions" if getattr(exc, "status", 401) == 403 else "invalid_credentials"
        org.credentials_valid = False
        result.update(connection_status=status, message=exc.message)
    except RateLimitExceeded as exc:
        result.update(connection_status="rate_limited", message=exc.message, retry_after=exc.retry_after)
    except ApiConnectionFailed as exc:
        result.update(connection_status="unreachable", message=exc.message)
    except AppError as exc:
        result.update(connection_status="unreachable", message=exc.message)
    else:
        org.credentials_valid = True
        org.cliniko_user_id = str(outcome["user"].get("id") or "") or None
        result.update(
            success=True,
            connection_status="healthy",
            response_time_ms=outcome["response_time_ms"],
            message="Connected to Cliniko",
        )
    finally:
        client.close()
    if result["connection_status"] in ("healthy", "invalid_credentials", "insufficient_permissions"):
        org.credentials_checked_at = utcnow()
    db.session.commit()
    return result
