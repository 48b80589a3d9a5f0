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

# ---- Operators: request metrics in multiprocess mode, JSON logs (LOG_FORMAT=json) ----
import glob  # noqa: E402
import tempfile  # noqa: E402

if os.environ.get("METRICS_TOKEN"):
    # Set before any worker exists (and before prometheus_client is imported anywhere).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="routiq-prometheus-"))


def on_starting(server):
    """Wipe the multiprocess metric files: a previous run's would be counted again."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)


def post_fork(server, worker):
    """Mark this process as a web worker: only these export request metrics (see config.py)."""
    os.environ["ROUTIQ_WEB_WORKER"] = "1"


def child_exit(server, worker):
    """Drop a dead worker's live gauges (its counters stay, so totals survive restarts)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "routiq_admin.logs.json_formatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
