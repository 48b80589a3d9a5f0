"""Input rules: webhook URLs (http(s) only; no private addresses in production), recipients,
event names, and SMTP_URL."""

import pytest

from routiq_admin import mail
from routiq_admin.errors import ValidationError
from routiq_admin.notify.targets import DEFAULT_EVENTS, check_url, parse_events, parse_recipients


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "javascript:alert(1)", "file:///etc/passwd", "example.com/hook", "", "http://"],
)
def test_only_http_and_https_urls(app, url):
    with pytest.raises(ValidationError, match="http"):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/",
        "http://100.64.0.1/",  # carrier-grade NAT
    ],
)
def test_private_addresses_are_refused_in_production(app, url):
    with pytest.raises(ValidationError, match="private"):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url  # development and tests may use them


def test_public_addresses_pass_and_credentials_in_urls_are_refused(app):
    assert check_url("https://93.184.215.14/hook", allow_private=False) == "https://93.184.215.14/hook"
    with pytest.raises(ValidationError, match="credentials"):
        check_url("https://user:pw@93.184.215.14/hook", allow_private=False)


def test_production_default_refuses_private_urls(make_app):
    from routiq_admin.config import load_config

    assert load_config("/tmp", env={"APP_ENV": "test"})["NOTIFY_ALLOW_PRIVATE_URLS"] is True
    production = {
        "APP_ENV": "production",
        "DATABASE_URL": "sqlite://",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "x" * 40,
        "ENCRYPTION_KEY": "e" * 43 + "=",
    }
    assert load_config("/tmp", env=production)["NOTIFY_ALLOW_PRIVATE_URLS"] is False
    app = make_app(NOTIFY_ALLOW_PRIVATE_URLS=False)
    with app.app_context(), pytest.raises(ValidationError, match="private"):
        check_url("http://127.0.0.1/hook")


def test_recipients_and_events(app):
    assert parse_recipients(" Ops@Clinic.example, boss@clinic.example;ops@clinic.example ") == [
        "ops@clinic.example",
        "boss@clinic.example",
    ]
    for empty in ("", " , ", [], None):
        with pytest.raises(ValidationError, match="at least one"):
            parse_recipients(empty)
    with pytest.raises(ValidationError, match="not an email"):
        parse_recipients("ops@clinic.example, nobody")
    assert parse_events("") == list(DEFAULT_EVENTS) and "sync.completed" not in DEFAULT_EVENTS
    assert parse_events("sync.paused,sync.failed") == ["sync.failed", "sync.paused"]
    with pytest.raises(ValidationError, match="Unknown event"):
        parse_events("sync.exploded")


def test_smtp_url_and_the_older_smtp_host_settings(make_app):
    server = mail.parse_url("smtp://us%40er:p%3Ass@mail.example.com:2525?starttls=0")
    assert server == mail.Server("mail.example.com", 2525, "us@er", "p:ss", False, False)
    assert (
        mail.parse_url("smtp://mail.example.com").starttls and mail.parse_url("smtp://m.example").port == 587
    )
    assert mail.parse_url("smtps://m.example").ssl and mail.parse_url("smtps://m.example").port == 465
    with pytest.raises(ValueError):
        mail.parse_url("http://mail.example.com")
    app = make_app(SMTP_HOST="legacy.example.com", SMTP_PORT=25, SMTP_STARTTLS=False)
    with app.app_context():
        assert mail.server().host == "legacy.example.com" and mail.configured()
        app.config["SMTP_URL"] = "smtp://new.example.com:587"
        assert mail.server().host == "new.example.com"  # SMTP_URL wins
        app.config["SMTP_URL"] = app.config["SMTP_HOST"] = ""
        assert not mail.configured()
