"""gunicorn settings for the `web` process."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
accesslog = "-"
# %(U)s is the path without its query string: patient search terms are patient data.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'

from gunicorn.glogging import Logger  # noqa: E402


class RedactingLogger(Logger):
    """Access log without the secret part of invitation links (/invitations/<token>)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        if atoms.get("U", "").startswith("/invitations/"):
            atoms["U"] = "/invitations/[token]"
        return atoms


logger_class = RedactingLogger
