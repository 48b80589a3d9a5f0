"""Send email through the SMTP server the settings name (none configured: nothing is sent)."""

import smtplib
from email.message import EmailMessage

from flask import current_app


def configured():
    """Tell whether SMTP is set up."""
    return bool(current_app.config.get("SMTP_HOST"))


def send(to, subject, body):
    """Send one plain-text message."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["SMTP_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=30) as smtp:
        if config["SMTP_STARTTLS"]:
            smtp.starttls()
        if config["SMTP_USERNAME"]:
            smtp.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        smtp.send_message(message)
