"""Send email through the SMTP server the settings name (none configured: nothing is sent).

`SMTP_URL` (`smtp://user:pass@host:587?starttls=1`, or `smtps://` for TLS from the start) wins;
otherwise the `SMTP_HOST` settings are used.
"""

import smtplib
from email.message import EmailMessage
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app


class Server(NamedTuple):
    host: str
    port: int
    username: str
    password: str
    starttls: bool
    ssl: bool


def parse_url(url):
    """Return the Server an `smtp://` or `smtps://` URL names; ValueError if it names none."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL looks like smtp://user:pass@host:587?starttls=1")
    query = parse_qs(parts.query)
    ssl = parts.scheme == "smtps"
    starttls = not ssl and query.get("starttls", ["1"])[0].lower() in ("1", "true", "yes", "on")
    return Server(
        host=parts.hostname,
        port=parts.port or (465 if ssl else 587),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        starttls=starttls,
        ssl=ssl,
    )


def server():
    """Return the configured Server, or None."""
    config = current_app.config
    if config.get("SMTP_URL"):
        return parse_url(config["SMTP_URL"])
    if config.get("SMTP_HOST"):
        return Server(
            config["SMTP_HOST"],
            config["SMTP_PORT"],
            config["SMTP_USERNAME"],
            config["SMTP_PASSWORD"],
            config["SMTP_STARTTLS"],
            False,
        )
    return None


def configured():
    """Tell whether SMTP is set up."""
    return server() is not None


def send(to, subject, body):
    """Send one plain-text message to one address or a list of them."""
    config = current_app.config
    where = server()
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to if isinstance(to, str) else ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    connect = smtplib.SMTP_SSL if where.ssl else smtplib.SMTP
    with connect(where.host, where.port, timeout=30) as smtp:
        if where.starttls:
            smtp.starttls()
        if where.username:
            smtp.login(where.username, where.password)
        smtp.send_message(message)
