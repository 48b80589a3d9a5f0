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
        keys = [Fernet(key.strip().encode()) for key in encryption_key.split(",") if key.strip()]
    except Exception as exc:
        raise ConfigError(
            "ENCRYPTION_KEY is not a valid Fernet key (or comma-separated list of them)"
        ) from exc
    if not keys:
        raise ConfigError("ENCRYPTION_KEY is empty")
    settings = {
        "APP_ENV": app_env,
        "SECRET_KEY": secret_key,
        "ENCRYPTION_KEY": encryption_key,
        # An app given its database (tests, the bench) says nothing of the default SQLite file.
        "SQLALCHEMY_DATABASE_URI": (overrides or {}).get("SQLALCHEMY_DATABASE_URI")
        or _database_url(env, instance_path),
        # hide_parameters: SQL errors never render the statement's values (patient data) into logs.
        # No pool_pre_ping: extensions.py pings only connections that sat idle.
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
        "REDIS_URL": env.get("REDIS_URL") or None,
        "ENABLE_SYNC_SCHEDULER": _bool(env.get("ENABLE_SYNC_SCHEDULER"), True),
        "SYNC_INTERVAL_MINUTES": int(env.get("SYNC_INTERVAL_MINUTES", 60)),
        # Sync workers are batch work: on a host they share with `web`, requests get the CPU first.
        "WORKER_NICE": int(env.get("WORKER_NICE", 10)),
        "STALE_SYNC_MINUTES": float(env.get("STALE_SYNC_MINUTES", 15)),
        "ACTIVE_PAST_DAYS": int(env.get("ACTIVE_PAST_DAYS", 30)),
        "ACTIVE_FUTURE_DAYS": int(env.get("ACTIVE_FUTURE_DAYS", 30)),
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
        # Clerk session tokens (JWTs) as bearer credentials; off unless an issuer or JWKS URL is set.
        "CLERK_ISSUER": env.get("CLERK_ISSUER", "").strip(),
        "CLERK_JWKS_URL": env.get("CLERK_JWKS_URL", "").strip(),
        "CLERK_AUTHORIZED_PARTIES": [
            p.strip() for p in env.get("CLERK_AUTHORIZED_PARTIES", "").split(",") if p.strip()
        ],
        "CLERK_AUDIENCE": env.get("CLERK_AUDIENCE", "").strip(),
        "CLERK_ROLE_MAP": env.get("CLERK_ROLE_MAP", "").strip() or "admin=operator,member=operator",
        "CLERK_JWKS_COOLDOWN_SECONDS": float(env.get("CLERK_JWKS_COOLDOWN_SECONDS", 30)),
        # Operators (routiq_admin/ops, logs.py): /metrics is off while METRICS_TOKEN is unset.
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,
        "METRICS_PER_ORG": _bool(env.get("METRICS_PER_ORG"), False),
        "LOG_FORMAT": (env.get("LOG_FORMAT") or "text").strip().lower(),
        "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO",
        # Request metrics only in gunicorn workers (gunicorn.conf.py sets both), never in RQ horses.
        "WEB_REQUEST_METRICS": bool(env.get("PROMETHEUS_MULTIPROC_DIR") and env.get("ROUTIQ_WEB_WORKER")),
        # Notifications (issue 12): SMTP_URL wins over the SMTP_HOST settings above.
        "SMTP_URL": env.get("SMTP_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM") or env.get("SMTP_FROM") or "Routiq Admin <no-reply@localhost>",
        "PUBLIC_URL": (env.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
        # Seconds between delivery tries: 6 tries over about an hour by default.
        "NOTIFY_RETRY_INTERVALS": [
            int(s) for s in env.get("NOTIFY_RETRY_INTERVALS", "60,300,600,1200,1800").split(",") if s.strip()
        ],
        "NOTIFY_TIMEOUT_SECONDS": float(env.get("NOTIFY_TIMEOUT_SECONDS", 10)),
        "NOTIFY_DISABLE_AFTER_HOURS": float(env.get("NOTIFY_DISABLE_AFTER_HOURS", 24)),
        "NOTIFY_SLOW_SECONDS": float(env.get("NOTIFY_SLOW_SECONDS", 600)),
        # Webhooks to loopback/private addresses are refused in production (SSRF).
        "NOTIFY_ALLOW_PRIVATE_URLS": _bool(env.get("NOTIFY_ALLOW_PRIVATE_URLS"), app_env != "production"),
        # Schedules: the global tick's period, starts per tick, auto-pause, retry backoff, activity refresh.
        "SCHEDULER_TICK_SECONDS": int(env.get("SCHEDULER_TICK_SECONDS", 60)),
        "SCHEDULER_MAX_STARTS_PER_TICK": int(env.get("SCHEDULER_MAX_STARTS_PER_TICK", 50)),
        "AUTO_PAUSE_AFTER_FAILURES": int(env.get("AUTO_PAUSE_AFTER_FAILURES", 5)),
        "SCHEDULE_RETRY_MINUTES": float(env.get("SCHEDULE_RETRY_MINUTES", 5)),
        "ACTIVITY_REFRESH_MINUTES": float(env.get("ACTIVITY_REFRESH_MINUTES", 15)),
        "ACTIVITY_CLOCK_MARGIN_SECONDS": float(env.get("ACTIVITY_CLOCK_MARGIN_SECONDS", 60)),
    }
    settings.update(overrides or {})
    return settings
