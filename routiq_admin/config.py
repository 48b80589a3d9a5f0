"""Every setting, read from the environment in one place."""

import os
import secrets
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet

REQUIRED_IN_PRODUCTION = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ENCRYPTION_KEY")


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _bool(value, default):
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _instance_secret(instance_path, name, make):
    """Read a generated secret from instance/, creating it exclusively on first use.

    Exclusive creation means processes starting together agree on one value.
    """
    path = Path(instance_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise ConfigError(f"{name} in {instance_path} is empty") from None
    with os.fdopen(fd, "w") as f:
        value = make()
        f.write(value)
    # Said aloud: a fresh key beside data written under the old one (instance/ deleted) cannot read it.
    print(f"Routiq Admin: created a new {name} in {instance_path}", file=sys.stderr)
    return value


def _database_url(env, instance_path):
    url = env.get("DATABASE_URL")
    if not url:
        path = Path(instance_path) / "routiq.db"
        if not path.exists():
            print(f"Routiq Admin: no database at {path}; SQLite creates an empty one", file=sys.stderr)
        return f"sqlite:///{path}"
    if url.startswith("postgres://"):  # Heroku-style scheme SQLAlchemy no longer accepts
        url = "postgresql://" + url[len("postgres://") :]
    return url


def load_config(instance_path, env=None, overrides=None):
    """Build the app config from the environment (os.environ by default), then `overrides`."""
    env = dict(os.environ if env is None else env)
    env.update({k: v for k, v in (overrides or {}).items() if k in ("SECRET_KEY", "ENCRYPTION_KEY")})
    app_env = env.get("APP_ENV", "development")
    if app_env == "production":
        missing = [name for name in REQUIRED_IN_PRODUCTION if not env.get(name)]
        if missing:
            raise ConfigError("APP_ENV=production needs " + ", ".join(missing) + " to be set")
    secret_key = env.get("SECRET_KEY") or _instance_secret(
        instance_path, "secret_key", lambda: secrets.token_urlsafe(48)
    )
    encryption_key = env.get("ENCRYPTION_KEY") or _instance_secret(
        instance_path, "encryption_key", lambda: Fernet.generate_key().decode()
    )
    try:
        Fernet(encryption_key.encode())
    except Exception as exc:
        raise ConfigError("ENCRYPTION_KEY is not a valid Fernet key") from exc
    settings = {
        "APP_ENV": app_env,
        "SECRET_KEY": secret_key,
        "ENCRYPTION_KEY": encryption_key,
        "SQLALCHEMY_DATABASE_URI": _database_url(env, instance_path),
        # hide_parameters: SQL errors never render the statement's values (patient data) into logs.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "hide_parameters": True},
        "REDIS_URL": env.get("REDIS_URL") or None,
        "ENABLE_SYNC_SCHEDULER": _bool(env.get("ENABLE_SYNC_SCHEDULER"), True),
        "SYNC_INTERVAL_MINUTES": int(env.get("SYNC_INTERVAL_MINUTES", 60)),
        "STALE_SYNC_MINUTES": float(env.get("STALE_SYNC_MINUTES", 15)),
        "ACTIVE_PAST_DAYS": int(env.get("ACTIVE_PAST_DAYS", 30)),
        "ACTIVE_FUTURE_DAYS": int(env.get("ACTIVE_FUTURE_DAYS", 30)),
        "FULL_RESYNC_HOURS": float(env.get("FULL_RESYNC_HOURS", 24)),
        "CLINIKO_BASE_URL": env.get("CLINIKO_BASE_URL") or "https://api.{shard}.cliniko.com/v1",
        "CLINIKO_USER_AGENT": env.get("CLINIKO_USER_AGENT") or "Routiq Admin (ops@example.com)",
        "CLINIKO_RATE_LIMIT_PER_MINUTE": int(env.get("CLINIKO_RATE_LIMIT_PER_MINUTE", 200)),
        "CLINIKO_TIMEOUT_SECONDS": float(env.get("CLINIKO_TIMEOUT_SECONDS", 30)),
        "API_RATE_LIMIT_WORK_PER_MINUTE": int(env.get("API_RATE_LIMIT_WORK_PER_MINUTE", 60)),
        "API_RATE_LIMIT_READ_PER_MINUTE": int(env.get("API_RATE_LIMIT_READ_PER_MINUTE", 3000)),
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", 5)),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": int(env.get("LOGIN_MAX_FAILURES_PER_ADDRESS", 50)),
        "LOGIN_THROTTLE_SECONDS": int(env.get("LOGIN_THROTTLE_SECONDS", 900)),
        "INVITATION_TTL_HOURS": float(env.get("INVITATION_TTL_HOURS", 72)),
        "SESSION_LIFETIME_HOURS": float(env.get("SESSION_LIFETIME_HOURS", 12)),
        "SESSION_IDLE_MINUTES": float(env.get("SESSION_IDLE_MINUTES", 120)),
        "SMTP_HOST": env.get("SMTP_HOST", ""),
        "SMTP_PORT": int(env.get("SMTP_PORT", 587)),
        "SMTP_USERNAME": env.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_FROM": env.get("SMTP_FROM", "Routiq Admin <no-reply@localhost>"),
        "SMTP_STARTTLS": env.get("SMTP_STARTTLS", "1").lower() in ("1", "true", "yes", "on"),
        # Procfile hosts put one router in front of the app; trust its X-Forwarded-* headers.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", 1 if app_env == "production" else 0)),
        "CORS_ORIGINS": [o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": app_env == "production",
        "WTF_CSRF_TIME_LIMIT": None,
        "RQ_QUEUE": env.get("RQ_QUEUE", "routiq"),
        "SYNC_JOB_TIMEOUT_SECONDS": int(env.get("SYNC_JOB_TIMEOUT_SECONDS", 6 * 3600)),
    }
    settings.update(overrides or {})
    return settings
