"""Logging setup: the plain default format, or one JSON object per line with LOG_FORMAT=json.

JSON goes through structlog's ProcessorFormatter on the root handler, so every stdlib logger
(ours, RQ's, gunicorn's, SQLAlchemy's) comes out as JSON with the context bound in contextvars:
`request_id` per request, `job_id`/`sync_id`/`organization_id` per job.
"""

import logging
import re
import sys
import uuid

import structlog
from rq import Worker
from structlog.contextvars import bind_contextvars, clear_contextvars

# A run's id names its organization: sync_<org>_<YYYYmmdd>_<HHMMSS>[_n] (sync/runs.py), and a
# queued run's RQ job id is its sync id.
SYNC_ID = re.compile(r"\b((?:sync|import)_([A-Za-z0-9_-]{1,64})_\d{8}_\d{6}(?:_\d+)?)\b")
ORG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HANDLER_FLAG = "_routiq_json"


def sync_context(text):
    """Return {"sync_id", "organization_id"} for the first run id named in `text`, else {}."""
    match = SYNC_ID.search(text or "")
    return {"sync_id": match.group(1), "organization_id": match.group(2)} if match else {}


def _name_the_sync(logger, method, event_dict):
    # RQ logs "Worker …: queue: sync sync_org_… (job id)" before a job's context is bound.
    if "sync_id" not in event_dict:
        for key, value in sync_context(str(event_dict.get("event", ""))).items():
            event_dict.setdefault(key, value)
    return event_dict


SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _name_the_sync,
]


def json_formatter():
    """Return the JSON formatter (also named by gunicorn.conf.py's logconfig_dict)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure(log_format="text", level="INFO"):
    """Set up the root logger once per process (later calls only adjust the level)."""
    root = logging.getLogger()
    if log_format != "json":
        logging.basicConfig(level=level)
        return
    if not any(getattr(h, _HANDLER_FLAG, False) for h in root.handlers):
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(json_formatter())
        setattr(handler, _HANDLER_FLAG, True)
        root.addHandler(handler)
        logging.captureWarnings(True)  # a warning printed raw would break "one JSON object per line"
        structlog.configure(
            processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
    root.setLevel(level)


def bind(**values):
    """Bind context to every later log line of this thread/process (None values are skipped)."""
    bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear():
    """Forget the bound context."""
    clear_contextvars()


def init_app(app):
    """Bind a request id (the router's X-Request-ID when well formed) and the path's organization."""
    from flask import g, request

    @app.before_request
    def _bind_request():
        sent = request.headers.get("X-Request-ID", "")
        g.request_id = sent if REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        clear()
        args = request.view_args or {}
        org_id = str(args.get("org_id") or args.get("organization_id") or "")
        bind(request_id=g.request_id, organization_id=org_id if ORG_ID.fullmatch(org_id) else None)

    @app.after_request
    def _echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response


class JobLoggingWorker(Worker):
    """RQ worker whose lines, and its work horse's (forked inside), carry the job's ids."""

    def execute_job(self, job, queue):
        clear()
        bind(job_id=job.id, **sync_context(job.description))
        try:
            return super().execute_job(job, queue)
        finally:
            clear()
