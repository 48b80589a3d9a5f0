"""The OpenAPI 3.1 document of the JSON API, built once from small helpers.

Every field the guide shows is `required`; additive fields we always send are required too.
Objects list their properties and refuse others, so tests that validate real responses
against these schemas catch any drift between the code and the document.
"""

import re
from copy import deepcopy
from functools import cache

from ..errors import DEFAULT_CODES, HTTP_STATUS, TITLES
from ..sync.plan import ALL_MODES, KINDS, MODES, STATUSES, TRIGGERS
from ..sync.records import ACTIVITY_STATUSES, APPOINTMENT_STATUSES

ORG = "org_2xwHiNrj68eaRUlX10anlXGvzX7"
SYNC_ID = "sync_org_2xwHiNrj68eaRUlX10anlXGvzX7_20250630_120000"
T0, T1 = "2025-06-30T11:00:00.000Z", "2025-06-30T12:00:00.000Z"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
TIME = {
    "type": "string",
    "format": "date-time",
    "pattern": TIME_PATTERN,
    "description": "UTC, milliseconds, Z: 2025-06-30T12:00:00.000Z",
}


def null(schema):
    """Return `schema` that also allows null."""
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def enum(values, description=None):
    out = {"type": "string", "enum": list(values)}
    if description:
        out["description"] = description
    return out


def obj(properties, optional=(), description=None):
    """Return a closed object schema: every property required except those named in `optional`."""
    out = {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }
    if description:
        out["description"] = description
    return out


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


SYNC_MODE = enum(MODES, "Which Cliniko data a sync fetches (see the README's table of modes).")
RUN_STATUS = enum(STATUSES)

ERROR_ITEM = obj(
    {
        "error_type": STR,
        "error_code": STR,
        "message": STR,
        "entity": null(STR),
        "at": null(TIME),
    },
    description="One error a run met (the error taxonomy: error_type, error_code).",
)

PROGRESS = {
    "sync_id": STR,
    "organization_id": STR,
    "status": RUN_STATUS,
    "progress_percentage": {"type": "number", "minimum": 0, "maximum": 100},
    "current_step": null(STR),
    "total_steps": {"type": "integer", "minimum": 0},
    "completed_steps": {"type": "integer", "minimum": 0},
    "started_at": TIME,
    "estimated_completion": null(TIME),
    "records_processed": {"type": "integer", "minimum": 0},
    "records_total": {"type": "integer", "minimum": 0},
    "current_operation": null(STR),
    "errors": {"type": "array", "items": ref("RunError")},
    "kind": enum(KINDS),
    "sync_mode": enum(ALL_MODES),
    "trigger": enum(TRIGGERS),
    "completed_at": null(TIME),
    "rate_limited_until": null({**TIME, "description": "Set while the run waits on Cliniko's rate limit."}),
}
METADATA = obj({"sync_type": STR, "patients_processed": INT, "appointments_processed": INT})
HISTORY_ITEM = obj(
    {
        "sync_id": STR,
        "kind": enum(KINDS),
        "trigger": enum(TRIGGERS),
        "mode": enum(ALL_MODES),
        "started_at": TIME,
        "completed_at": null(TIME),
        "duration_seconds": null(NUM),
        "status": RUN_STATUS,
        "records_processed": INT,
        "records_success": INT,
        "records_failed": INT,
        "metadata": ref("SyncMetadata"),
    }
)
ENTITY_COUNTS = obj(
    {k: {"type": "integer", "minimum": 0} for k in ("fetched", "created", "updated", "unchanged", "failed")}
)
RUN = obj(
    {
        **PROGRESS,
        "records_success": INT,
        "records_failed": INT,
        "metadata": ref("SyncMetadata"),
        "duration_seconds": null(NUM),
        "full": BOOL,
        "created_at": TIME,
        "heartbeat_at": null(TIME),
        "cancel_requested": BOOL,
        "triggered_by": null(STR),
        "entity_counts": {
            "type": "object",
            "additionalProperties": ref("EntityCounts"),
            "propertyNames": {"type": "string"},
            "description": "Per Cliniko entity (patients, appointments, ...).",
        },
        "cliniko_requests": INT,
        "rate_limit_waits": INT,
        "rate_limit_wait_seconds": NUM,
    }
)
ERROR = obj(
    {
        "success": {"const": False, "type": "boolean"},
        "error": STR,
        "details": obj(
            {
                "error_type": enum(HTTP_STATUS),
                "message": STR,
                "error_code": STR,
                "retry_after": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "description": "Seconds to wait before retrying (429); null otherwise.",
                },
                "field": {"type": "string", "description": "The parameter that failed validation (422)."},
                "sync_id": {"type": "string", "description": "The run already in progress (409)."},
                "status": {"type": "string", "description": "The finished run's status (409 on cancel)."},
                "scope": {
                    "type": "string",
                    "description": "The scope the credential lacks (403 SCOPE_REQUIRED).",
                },
            },
            optional=("field", "sync_id", "status", "scope"),
        ),
        "timestamp": TIME,
    },
    description="The error envelope every API error uses.",
)

STARTED = {
    "message": STR,
    "organization_id": STR,
    "sync_id": {**STR, "description": "Poll /sync/progress/{sync_id}."},
    "timestamp": TIME,
}
SCHEMAS = {
    "Error": ERROR,
    "RunError": ERROR_ITEM,
    "SyncMetadata": METADATA,
    "EntityCounts": ENTITY_COUNTS,
    "HistoryItem": HISTORY_ITEM,
    "SyncProgress": obj(PROGRESS),
    "SyncRun": RUN,
    "TriggerResponse": obj(
        {**STARTED, "sync_started": {"const": True, "type": "boolean"}, "sync_mode": SYNC_MODE}
    ),
    "StartResponse": obj(
        {"message": STR, "sync_id": STR, "sync_mode": SYNC_MODE, "organization_id": STR, "started_at": TIME}
    ),
    "ClinikoSyncResponse": obj(
        {**STARTED, "success": {"const": True, "type": "boolean"}, "sync_mode": SYNC_MODE}
    ),
    "ImportResponse": obj(
        {
            **STARTED,
            "success": {"const": True, "type": "boolean"},
            "import_id": {**STR, "description": "The run's id; poll /sync/progress/{import_id}."},
        }
    ),
    "SchedulerStatus": obj(
        {
            "organization_id": STR,
            "sync_running": BOOL,
            "last_sync_time": null(TIME),
            "scheduler_active": BOOL,
            "message": STR,
            "current_sync_id": null(STR),
            "sync_interval_minutes": INT,
            "schedule": ref("Schedule"),
            "next_run_at": {
                **null(TIME),
                "description": "When the schedule next falls due (UTC); null until the first tick.",
            },
        }
    ),
    "History": obj(
        {
            "organization_id": STR,
            "total_syncs": INT,
            "successful_syncs": INT,
            "failed_syncs": INT,
            "cancelled_syncs": INT,
            "running_syncs": INT,
            "last_sync_at": null(TIME),
            "last_successful_sync_at": null(TIME),
            "average_sync_duration_seconds": NUM,
            "recent_syncs": {"type": "array", "items": ref("HistoryItem")},
            "limit": INT,
            "offset": INT,
            "total_matching": INT,
        }
    ),
    "CleanupResponse": obj(
        {"message": STR, "cleaned_syncs": INT, "sync_ids": {"type": "array", "items": STR}, "timestamp": TIME}
    ),
    "CancelResponse": obj(
        {
            "success": BOOL,
            "message": STR,
            "sync_id": STR,
            "organization_id": STR,
            "status": RUN_STATUS,
            "cancel_requested": BOOL,
            "timestamp": TIME,
        }
    ),
    "ClinikoStatus": obj(
        {
            "organization_id": STR,
            "cliniko_connected": BOOL,
            "api_region": null(STR),
            "last_sync": null(TIME),
            "total_patients": INT,
            "sync_enabled": BOOL,
            "credentials_valid": BOOL,
            "sync_status": enum(("healthy", "degraded", "failing", "never_synced", "disabled")),
            "active_patients": INT,
            "sync_running": BOOL,
            "credentials_checked_at": null(TIME),
            "sync_paused": {
                **BOOL,
                "description": "Scheduled syncs are paused (manual and API starts still work).",
            },
            "paused_reason": null(STR),
            "paused_at": null(TIME),
        }
    ),
    "Schedule": obj(
        {
            "type": enum(("interval", "cron")),
            "every_minutes": {
                **null(INT),
                "description": "The interval (type interval); SYNC_INTERVAL_MINUTES by default.",
            },
            "cron": {**null(STR), "description": "Five-field cron expression in `time_zone` (type cron)."},
            "time_zone": {**STR, "description": "IANA zone the schedule and pages use."},
            "quiet_window": null(
                obj(
                    {"start": STR, "end": STR, "weekdays_only": BOOL},
                    description="No scheduled start inside it.",
                )
            ),
            "full_sync_at": {
                **STR,
                "description": "Local time (HH:MM) of the daily full comprehensive pass.",
            },
        }
    ),
    "RetryResponse": obj(
        {
            **STARTED,
            "sync_started": {"const": True, "type": "boolean"},
            "sync_mode": enum(ALL_MODES),
            "retry_of": {**STR, "description": "The run that was retried."},
        }
    ),
    "ConnectionTest": obj(
        {
            "success": BOOL,
            "connection_status": enum(
                (
                    "healthy",
                    "invalid_credentials",
                    "insufficient_permissions",
                    "unreachable",
                    "rate_limited",
                    "no_credentials",
                )
            ),
            "api_region": null(STR),
            "response_time_ms": null(INT),
            "test_timestamp": TIME,
            "message": STR,
            "retry_after": null(INT),
        }
    ),
    "Organization": obj(
        {
            "organization_id": STR,
            "name": STR,
            "api_region": null(STR),
            "cliniko_api_key": null({**STR, "description": "Masked: ••••1234."}),
            "sync_enabled": BOOL,
            "created_at": TIME,
        }
    ),
    "Organizations": obj({"organizations": {"type": "array", "items": ref("Organization")}}),
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "properties": {
            "openapi": {"const": "3.1.0", "type": "string"},
            "info": ref("Info"),
            "paths": {"type": "object", "additionalProperties": ref("PathItem")},
            "components": {
                "type": "object",
                "required": ["schemas"],
                "properties": {
                    "schemas": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"type": {"type": ["string", "array"]}},
                        },
                    }
                },
            },
        },
    },
    "Info": {
        "type": "object",
        "properties": {"title": STR, "version": STR, "description": STR},
        "required": ["title", "version"],
    },
    "PathItem": {
        "type": "object",
        "propertyNames": {"enum": ["get", "post"]},
        "additionalProperties": {
            "type": "object",
            "required": ["summary", "responses"],
            "properties": {
                "summary": STR,
                "responses": {
                    "type": "object",
                    "propertyNames": {"pattern": "^[1-5][0-9]{2}$"},
                    "additionalProperties": {
                        "type": "object",
                        "required": ["description"],
                        "properties": {"description": STR},
                    },
                },
            },
        },
    },
}

# ---- parameters -----------------------------------------------------------------------------------


def path_param(name, description, example):
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
        "example": example,
    }


def query_param(name, schema, description):
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


P_ORG = path_param("organization_id", "The organization's id.", ORG)
P_SYNC = path_param("sync_id", "A run's id (a sync_id or an import_id).", SYNC_ID)
H_ORG = {
    "name": "X-Organization-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Selects the organization; defaults to an org-scoped token's organization. "
    "Must be within the caller's scope (else 403).",
    "example": ORG,
}
Q_FULL = query_param(
    "full",
    {"type": "boolean", "default": False},
    "Ignore the high-water marks and fetch everything for this run.",
)


def q_mode(name, default):
    return query_param(name, {**SYNC_MODE, "default": default}, f"Sync mode (default `{default}`).")


HISTORY_PARAMS = [
    query_param(
        "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, "Page size, 1..100."
    ),
    query_param(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0},
        "Runs to skip (newest first).",
    ),
    query_param("status", RUN_STATUS, "Only runs with this status (totals stay over all runs)."),
    query_param("trigger", enum(TRIGGERS), "Only runs started this way."),
    query_param("mode", enum(ALL_MODES), "Only runs of this mode."),
]

# ---- responses ------------------------------------------------------------------------------------

ERROR_DESCRIPTIONS = {
    400: "credentials_not_found: the organization has no Cliniko API key.",
    401: "unauthorized: no, invalid or revoked token (or no session).",
    403: "forbidden: the organization (path or X-Organization-ID) is outside the caller's scope, the role "
    "is too low, the token lacks the endpoint's scope (SCOPE_REQUIRED, details.scope names it), or the "
    "session's CSRF token is missing.",
    404: "not_found: no such organization, or no such run among the caller's organizations.",
    409: "sync_already_running (details.sync_id names the active run) or sync_not_active (cancel of a "
    "finished run).",
    422: "validation_error: a parameter is malformed (details.field names it).",
    429: "rate_limit_exceeded (reason phrase `Rate limit exceeded`): our API limit per token or session; "
    "details.retry_after and Retry-After say when to retry.",
    500: "internal_error: a bug; no stack trace leaves the server.",
    503: "queue_unavailable (Redis down: nothing was started) or database_error.",
}


EXAMPLE_ERRORS = {
    400: (
        "credentials_not_found",
        "Organization org_2xwHiNrj68eaRUlX10anlXGvzX7 has no Cliniko API key configured",
    ),
    401: ("unauthorized", "Invalid or revoked API token"),
    403: ("forbidden", "You do not have access to this organization"),
    404: ("not_found", "Sync sync_org_123_20250630_120000 not found"),
    409: ("sync_already_running", "A sync is already running for org_2xwHiNrj68eaRUlX10anlXGvzX7"),
    422: (
        "validation_error",
        "Invalid value 'fast' for sync_mode; use one of comprehensive, basic, active, patients-only",
    ),
    429: ("rate_limit_exceeded", "API rate limit exceeded: 60 work requests per minute; retry in 30 s"),
    500: ("internal_error", "Internal server error"),
    503: ("queue_unavailable", "The job queue (Redis) is unavailable; nothing was started"),
}


def error_example(status):
    error_type, message = EXAMPLE_ERRORS[status]
    details = {
        "error_type": error_type,
        "message": message,
        "error_code": DEFAULT_CODES[error_type],
        "retry_after": None,
    }
    if status == 429:
        details.update(error_code="API_RATE_LIMITED", retry_after=30)
    return {"success": False, "error": TITLES[error_type], "details": details, "timestamp": T1}


def responses(schema, example, *errors):
    out = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": ref(schema), "example": example}},
        }
    }
    for status in sorted({*errors, 401, 429, 500, 503}):
        out[str(status)] = {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": ref("Error"), "example": error_example(status)}},
        }
    out["429"]["headers"] = {
        "Retry-After": {
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
            "description": "Seconds to wait; the same as details.retry_after.",
        }
    }
    return out


def op(summary, description, params, resp, tags, *, auth=True):
    out = {
        "summary": summary,
        "description": description,
        "tags": tags,
        "parameters": params,
        "responses": resp,
    }
    if not auth:
        out["security"] = []
    return out


# ---- examples (the guide's, plus our additive fields) -------------------------------------------

PROGRESS_EXAMPLE = {
    "sync_id": SYNC_ID,
    "organization_id": ORG,
    "status": "running",
    "progress_percentage": 75.5,
    "current_step": "Processing appointments",
    "total_steps": 4,
    "completed_steps": 3,
    "started_at": T1,
    "estimated_completion": "2025-06-30T12:06:00.000Z",
    "records_processed": 490,
    "records_total": 650,
    "current_operation": "Syncing patient appointments",
    "errors": [],
    "kind": "sync",
    "sync_mode": "comprehensive",
    "trigger": "api",
    "completed_at": None,
    "rate_limited_until": None,
}
HISTORY_ITEM_EXAMPLE = {
    "sync_id": "sync_org_2xwHiNrj68eaRUlX10anlXGvzX7_20250630_110000",
    "kind": "sync",
    "trigger": "scheduled",
    "mode": "comprehensive",
    "started_at": T0,
    "completed_at": "2025-06-30T11:06:00.000Z",
    "duration_seconds": 360.0,
    "status": "completed",
    "records_processed": 651,
    "records_success": 651,
    "records_failed": 0,
    "metadata": {"sync_type": "comprehensive", "patients_processed": 651, "appointments_processed": 296},
}
EXAMPLES = {
    "trigger": {
        "message": "Sync started successfully",
        "sync_started": True,
        "organization_id": ORG,
        "timestamp": T1,
        "sync_id": SYNC_ID,
        "sync_mode": "comprehensive",
    },
    "scheduler_status": {
        "organization_id": ORG,
        "sync_running": False,
        "last_sync_time": T0,
        "scheduler_active": True,
        "message": "Scheduler status retrieved successfully",
        "current_sync_id": None,
        "sync_interval_minutes": 60,
        "schedule": {
            "type": "interval",
            "every_minutes": 60,
            "cron": None,
            "time_zone": "Australia/Sydney",
            "quiet_window": {"start": "08:00", "end": "18:00", "weekdays_only": True},
            "full_sync_at": "02:30",
        },
        "next_run_at": T1,
    },
    "scheduler_trigger": {
        "message": "Scheduled sync triggered successfully",
        "sync_started": True,
        "organization_id": ORG,
        "timestamp": T1,
        "sync_id": SYNC_ID,
        "sync_mode": "comprehensive",
    },
    "retry": {
        "message": f"Retry of {SYNC_ID} started",
        "sync_started": True,
        "sync_mode": "comprehensive",
        "organization_id": ORG,
        "sync_id": SYNC_ID + "_2",
        "timestamp": T1,
        "retry_of": SYNC_ID,
    },
    "start": {
        "message": "Sync started successfully in comprehensive mode",
        "sync_id": SYNC_ID,
        "sync_mode": "comprehensive",
        "organization_id": ORG,
        "started_at": T1,
    },
    "progress": PROGRESS_EXAMPLE,
    "run": {
        **PROGRESS_EXAMPLE,
        "records_success": 490,
        "records_failed": 0,
        "metadata": {"sync_type": "comprehensive", "patients_processed": 490, "appointments_processed": 0},
        "duration_seconds": None,
        "full": False,
        "created_at": T1,
        "heartbeat_at": "2025-06-30T12:04:31.250Z",
        "cancel_requested": False,
        "triggered_by": "token:ci (rtq_AbCd…)",
        "entity_counts": {
            "patients": {"fetched": 490, "created": 12, "updated": 3, "unchanged": 475, "failed": 0}
        },
        "cliniko_requests": 14,
        "rate_limit_waits": 0,
        "rate_limit_wait_seconds": 0.0,
    },
    "cancel": {
        "success": True,
        "message": "Cancellation requested; the sync stops after its current page",
        "sync_id": SYNC_ID,
        "organization_id": ORG,
        "status": "running",
        "cancel_requested": True,
        "timestamp": T1,
    },
    "history": {
        "organization_id": ORG,
        "total_syncs": 48,
        "successful_syncs": 47,
        "failed_syncs": 1,
        "cancelled_syncs": 0,
        "running_syncs": 0,
        "last_sync_at": T0,
        "last_successful_sync_at": T0,
        "average_sync_duration_seconds": 360.5,
        "recent_syncs": [HISTORY_ITEM_EXAMPLE],
        "limit": 10,
        "offset": 0,
        "total_matching": 48,
    },
    "cleanup": {
        "message": "Cleaned up 2 stale syncs",
        "cleaned_syncs": 2,
        "sync_ids": ["sync_org_a_20250630_100000", "sync_org_b_20250630_100500"],
        "timestamp": T1,
    },
    "cliniko_sync": {
        "success": True,
        "message": "Comprehensive Cliniko sync started successfully",
        "organization_id": ORG,
        "sync_mode": "comprehensive",
        "timestamp": T1,
        "sync_id": SYNC_ID,
    },
    "cliniko_status": {
        "organization_id": ORG,
        "cliniko_connected": True,
        "api_region": "au4",
        "last_sync": T0,
        "total_patients": 650,
        "sync_enabled": True,
        "credentials_valid": True,
        "sync_status": "healthy",
        "active_patients": 212,
        "sync_running": False,
        "credentials_checked_at": T0,
        "sync_paused": False,
        "paused_reason": None,
        "paused_at": None,
    },
    "test_connection": {
        "success": True,
        "connection_status": "healthy",
        "api_region": "au4",
        "response_time_ms": 245,
        "test_timestamp": T1,
        "message": "Connected to Cliniko",
        "retry_after": None,
    },
    "import": {
        "success": True,
        "message": "Patient import started successfully",
        "organization_id": ORG,
        "import_id": "import_org_2xwHiNrj68eaRUlX10anlXGvzX7_20250630_120000",
        "sync_id": "import_org_2xwHiNrj68eaRUlX10anlXGvzX7_20250630_120000",
        "timestamp": T1,
    },
    "organizations": {
        "organizations": [
            {
                "organization_id": ORG,
                "name": "Harbour Physio",
                "api_region": "au4",
                "cliniko_api_key": "••••1234",
                "sync_enabled": True,
                "created_at": T0,
            }
        ]
    },
}
EXAMPLES["organization"] = EXAMPLES["organizations"]["organizations"][0]

START_ERRORS = (400, 403, 404, 409, 422)
PATHS = {
    "/api/v1/organizations": {
        "get": op(
            "List organizations",
            "The organizations the caller may see.",
            [],
            responses("Organizations", EXAMPLES["organizations"]),
            ["Organizations"],
        )
    },
    "/api/v1/organizations/{org_id}": {
        "get": op(
            "Show an organization",
            "One organization (its Cliniko key only masked).",
            [path_param("org_id", "The organization's id.", ORG)],
            responses("Organization", EXAMPLES["organization"], 403, 404),
            ["Organizations"],
        )
    },
    "/api/v1/sync/trigger": {
        "post": op(
            "Trigger manual sync",
            "Start a sync for the organization chosen by X-Organization-ID (or the token's). "
            "Default mode `comprehensive`, trigger `api`. Answers with the run's `sync_id` to poll.",
            [H_ORG, q_mode("sync_mode", "comprehensive"), Q_FULL],
            responses("TriggerResponse", EXAMPLES["trigger"], *START_ERRORS),
            ["Sync"],
        )
    },
    "/api/v1/sync/scheduler/status": {
        "get": op(
            "Get scheduler status",
            "`scheduler_active` is true only when the tick (every minute) is registered and a "
            "scheduler process was seen within two poll intervals. `schedule` is the organization's "
            "schedule, `next_run_at` when it next falls due.",
            [H_ORG],
            responses("SchedulerStatus", EXAMPLES["scheduler_status"], 403, 404, 422),
            ["Sync"],
        )
    },
    "/api/v1/sync/scheduler/trigger": {
        "post": op(
            "Trigger scheduled sync",
            "Run the scheduler's comprehensive sync for the selected organization now "
            "(trigger `scheduled`), whether or not the scheduler is enabled.",
            [H_ORG, Q_FULL],
            responses("TriggerResponse", EXAMPLES["scheduler_trigger"], *START_ERRORS),
            ["Sync"],
        )
    },
    "/api/v1/sync/start/{organization_id}": {
        "post": op(
            "Start sync with progress tracking",
            "Default mode `active`, trigger `api`.",
            [P_ORG, H_ORG, q_mode("sync_mode", "active"), Q_FULL],
            responses("StartResponse", EXAMPLES["start"], *START_ERRORS),
            ["Sync"],
        )
    },
    "/api/v1/sync/progress/{sync_id}": {
        "get": op(
            "Get sync progress",
            "Progress of a sync or an import. Another organization's id is 404.",
            [P_SYNC, H_ORG],
            responses("SyncProgress", EXAMPLES["progress"], 403, 404),
            ["Sync"],
        )
    },
    "/api/v1/sync/runs/{sync_id}": {
        "get": op(
            "Get a run in full",
            "Progress plus counts per entity, Cliniko requests made and 429 waits.",
            [P_SYNC, H_ORG],
            responses("SyncRun", EXAMPLES["run"], 403, 404),
            ["Sync"],
        )
    },
    "/api/v1/sync/cancel/{sync_id}": {
        "post": op(
            "Cancel a sync",
            "A `starting` run is cancelled at once; a `running` one stops after its current page "
            "(pages already written are kept). A finished run answers 409 `sync_not_active`.",
            [P_SYNC, H_ORG],
            responses("CancelResponse", EXAMPLES["cancel"], 403, 404, 409),
            ["Sync"],
        )
    },
    "/api/v1/sync/retry/{sync_id}": {
        "post": op(
            "Retry a run",
            "Start a failed or cancelled run again: the same kind, mode and `full` flag, trigger `api`. "
            "Answers with the new `sync_id`. A run still starting or running, or a completed one, answers 409.",
            [P_SYNC, H_ORG],
            responses("RetryResponse", EXAMPLES["retry"], 400, 403, 404, 409),
            ["Sync"],
        )
    },
    "/api/v1/sync/history/{organization_id}": {
        "get": op(
            "Get sync history",
            "Totals over all the organization's runs (whatever the filters; imports count, "
            "cancelled runs count in total_syncs only) and a page of runs, newest first.",
            [P_ORG, H_ORG, *HISTORY_PARAMS],
            responses("History", EXAMPLES["history"], 403, 404, 422),
            ["Sync"],
        )
    },
    "/api/v1/sync/cleanup": {
        "post": op(
            "Cleanup stale syncs",
            "Mark stale runs failed (no heartbeat for STALE_SYNC_MINUTES, or their job is "
            "gone), in the caller's organizations only (just the X-Organization-ID one when sent).",
            [H_ORG],
            responses("CleanupResponse", EXAMPLES["cleanup"], 403, 404),
            ["Sync"],
        )
    },
    "/api/v1/cliniko/sync/{organization_id}": {
        "post": op(
            "Trigger Cliniko sync",
            "Default mode `comprehensive`, trigger `api`.",
            [P_ORG, H_ORG, q_mode("mode", "comprehensive"), Q_FULL],
            responses("ClinikoSyncResponse", EXAMPLES["cliniko_sync"], *START_ERRORS),
            ["Cliniko"],
        )
    },
    "/api/v1/cliniko/status/{organization_id}": {
        "get": op(
            "Get Cliniko status",
            "Connection and sync health from stored results; does not call Cliniko.",
            [P_ORG, H_ORG],
            responses("ClinikoStatus", EXAMPLES["cliniko_status"], 403, 404),
            ["Cliniko"],
        )
    },
    "/api/v1/cliniko/test-connection/{organization_id}": {
        "get": op(
            "Test Cliniko connection",
            "Calls Cliniko's GET /user now and stores the outcome. Always 200 once "
            "authorized: `success` and `connection_status` tell how Cliniko answered. Counts against the 60/min "
            "budget, as it costs a Cliniko request.",
            [P_ORG, H_ORG],
            responses("ConnectionTest", EXAMPLES["test_connection"], 403, 404),
            ["Cliniko"],
        )
    },
    "/api/v1/cliniko/import-patients/{organization_id}": {
        "post": op(
            "Import patients from Cliniko",
            "Start a full import of every patient (kind `import`); it takes the "
            "organization's one active-run slot, and its progress is served by /sync/progress/{import_id}.",
            [P_ORG, H_ORG],
            responses("ImportResponse", EXAMPLES["import"], 400, 403, 404, 409),
            ["Cliniko"],
        )
    },
    "/api/v1/openapi.json": {
        "get": op(
            "This document",
            "The OpenAPI 3.1 document of this API.",
            [],
            {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": ref("OpenApiDocument")}},
                }
            },
            ["Meta"],
            auth=False,
        )
    },
    "/api/docs": {
        "get": op(
            "API documentation page",
            "This document as a page.",
            [],
            {"200": {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}},
            ["Meta"],
            auth=False,
        )
    },
}

# ---- the log per run (additive) ---------------------------------------------------------------------
EVENT_TYPES = ("started", "step_started", "step_finished", "wait", "retry", "error", "finished")
SCHEMAS["RunEvent"] = obj(
    {
        "seq": {**INT, "description": "1, 2, … in the order the run recorded them."},
        "at": TIME,
        "type": enum(EVENT_TYPES),
        "message": STR,
        "data": {
            "type": "object",
            "description": "Facts of the event: step and counts, wait reason and seconds, the status that "
            "caused a retry, the error's type and code. Never patient data or secrets.",
            "additionalProperties": {
                "anyOf": [
                    {"type": ["string", "number", "integer", "boolean", "null"]},
                    {
                        "type": "object",
                        "description": "`counts` of step_finished: entity → fetched, created, updated, …",
                        "additionalProperties": {"type": "object", "additionalProperties": INT},
                    },
                ]
            },
        },
    }
)
SCHEMAS["RunEvents"] = obj(
    {
        "sync_id": STR,
        "organization_id": STR,
        "events": {"type": "array", "items": ref("RunEvent"), "maxItems": 500},
    }
)
EXAMPLES["run_events"] = {
    "sync_id": SYNC_ID,
    "organization_id": ORG,
    "events": [
        {
            "seq": 1,
            "at": T0,
            "type": "started",
            "message": "Sync started: comprehensive",
            "data": {"mode": "comprehensive", "full": False, "trigger": "scheduled"},
        },
        {
            "seq": 2,
            "at": T0,
            "type": "step_started",
            "message": "Processing patients",
            "data": {"step": "Processing patients"},
        },
        {
            "seq": 3,
            "at": T0,
            "type": "retry",
            "message": "Cliniko answered 503; retry 1 of 4 in 0.4 s",
            "data": {
                "status": 503,
                "attempt": 1,
                "retries": 4,
                "delay_seconds": 0.4,
                "error_type": "api_connection_failed",
                "error_code": "CLINIKO_API_UNAVAILABLE",
            },
        },
        {
            "seq": 4,
            "at": T0,
            "type": "wait",
            "message": "Cliniko answered 429 (rate limit): waiting 12 s",
            "data": {"reason": "rate_limited", "seconds": 11.6},
        },
        {
            "seq": 5,
            "at": T1,
            "type": "error",
            "message": "Cliniko rejected the API key (401 Unauthorized)",
            "data": {
                "error_type": "invalid_credentials",
                "error_code": "CLINIKO_UNAUTHORIZED",
                "entity": "patients",
            },
        },
        {
            "seq": 6,
            "at": T1,
            "type": "finished",
            "message": "Run failed after 42.0 s",
            "data": {
                "status": "failed",
                "records_processed": 300,
                "cliniko_requests": 5,
                "dropped_events": 0,
            },
        },
    ],
}
PATHS["/api/v1/sync/runs/{sync_id}/events"] = {
    "get": op(
        "Get a run's event log",
        "What the run did, in order: steps started and finished with counts, each Cliniko wait with its "
        "reason and length, retries with the status that caused them, the error with its type. At most 500 "
        "events per run; events older than 90 days are pruned. Another organization's id is 404.",
        [P_SYNC, H_ORG],
        responses("RunEvents", EXAMPLES["run_events"], 403, 404),
        ["Sync"],
    )
}


DESCRIPTION = """The sync management API of the Sync Management Guide, plus what integrators need:
`sync_id` in every start response, `import_id` for imports, cancel, full run detail, history paging.

**Auth**: `Authorization: Bearer <token>` (create one with `flask --app wsgi tokens create --org ORG_ID`),
or a signed-in dashboard session (then unsafe methods need the `X-CSRFToken` header). A token acts as an
operator within its organization (or all organizations), within its scopes: `sync` (the default, every
token made before scopes: the Sync and Cliniko endpoints) and `patients:read` (the Data endpoints: summary,
patients, appointments), chosen at creation (`--scope`); a missing scope is 403 `SCOPE_REQUIRED` naming it.
People have every scope. `X-Organization-ID` selects the organization on endpoints without one in the path.
Checks run 401 → 403 → 404 → 422.

**Limits** (per token or session): requests that start work (POSTs, and test-connection) 60 a minute; reads
3,000 a minute. Over the limit: 429 with the reason phrase `Rate limit exceeded`, `Retry-After` and
`details.retry_after`.

**Times** are UTC ISO 8601 with milliseconds: `2025-06-30T12:00:00.000Z`. **Errors** use one envelope:
`{"success": false, "error": ..., "details": {"error_type", "message", "error_code", "retry_after"?}, "timestamp"}`.
"""

# ---- the synced data (read-only, scope patients:read) ---------------------------------------------

NULL_TIME = null(TIME)
SCHEMAS.update(
    {
        "Patient": obj(
            {
                "cliniko_id": STR,
                "display_name": STR,
                "first_name": null(STR),
                "last_name": null(STR),
                "preferred_first_name": null(STR),
                "email": null(STR),
                "activity_status": enum(ACTIVITY_STATUSES),
                "recent_appointment_count": {"type": "integer", "minimum": 0},
                "upcoming_appointment_count": {"type": "integer", "minimum": 0},
                "total_appointment_count": {"type": "integer", "minimum": 0},
                "last_appointment_at": NULL_TIME,
                "next_appointment_at": NULL_TIME,
                "archived_at": NULL_TIME,
                "cliniko_updated_at": NULL_TIME,
                "updated_at": null(
                    {**TIME, "description": "When this row last changed here (updated_since)."}
                ),
            }
        ),
        "Appointment": obj(
            {
                "cliniko_id": STR,
                "starts_at": NULL_TIME,
                "ends_at": NULL_TIME,
                "status": enum(APPOINTMENT_STATUSES),
                "patient_cliniko_id": null(STR),
                "patient_name": STR,
                "practitioner_cliniko_id": null(STR),
                "practitioner_name": null(STR),
                "appointment_type_cliniko_id": null(STR),
                "appointment_type_name": null(STR),
                "business_cliniko_id": null(STR),
                "cancelled_at": NULL_TIME,
                "archived_at": NULL_TIME,
                "cliniko_updated_at": NULL_TIME,
                "updated_at": null(
                    {**TIME, "description": "When this row last changed here (updated_since)."}
                ),
            }
        ),
        "Freshness": obj({"last_synced_at": NULL_TIME, "data_as_of": NULL_TIME, "stored": INT}),
        "Summary": obj(
            {
                "organization_id": STR,
                "total_patients": INT,
                "active_patients": INT,
                "patients_by_activity": obj({k: INT for k in ACTIVITY_STATUSES}),
                "patients_with_recent_appointments": INT,
                "patients_with_upcoming_appointments": INT,
                "appointments": obj(
                    {
                        "recent": INT,
                        "upcoming": INT,
                        "in_window": INT,
                        "window_start": TIME,
                        "window_end": TIME,
                    }
                ),
                "last_successful_sync_at": NULL_TIME,
                "freshness": {
                    "type": "object",
                    "additionalProperties": ref("Freshness"),
                    "propertyNames": {"type": "string"},
                    "description": "Per synced entity (patients, appointments, businesses, ...).",
                },
                "generated_at": TIME,
            }
        ),
    }
)
for _name, _item in (("PatientPage", "Patient"), ("AppointmentPage", "Appointment")):
    SCHEMAS[_name] = obj(
        {
            "data": {"type": "array", "items": ref(_item)},
            "next_cursor": null(
                {**STR, "description": "Pass as `cursor` for the next page; null on the last."}
            ),
            "has_more": BOOL,
            "limit": INT,
        }
    )

PAGE_PARAMS = [
    query_param(
        "limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "Page size, 1..500."
    ),
    query_param("cursor", {"type": "string"}, "The previous page's `next_cursor`."),
    query_param(
        "updated_since",
        {"type": "string", "format": "date-time"},
        "Only rows that changed here at or after this instant (ISO 8601 with offset, or a date = UTC "
        "midnight): our own `updated_at`, not Cliniko's.",
    ),
]
TIME_PARAM = {"type": "string", "description": "ISO 8601 with offset, or YYYY-MM-DD (UTC midnight)."}
DATA_ERRORS = (403, 404, 422)
DATA_NOTE = (
    " Needs the `patients:read` scope. Ordered by a stable key (not by name or time), so paging "
    "while a sync writes returns every row exactly once."
)
P_ORG_ID = path_param("organization_id", "The organization's id.", ORG)
PATIENT_EXAMPLE = {
    "cliniko_id": "1084736",
    "display_name": "Sam Citizen",
    "first_name": "Samantha",
    "last_name": "Citizen",
    "preferred_first_name": "Sam",
    "email": "sam@example.com",
    "activity_status": "active",
    "recent_appointment_count": 2,
    "upcoming_appointment_count": 1,
    "total_appointment_count": 14,
    "last_appointment_at": "2025-06-24T23:30:00.000Z",
    "next_appointment_at": "2025-07-08T00:00:00.000Z",
    "archived_at": None,
    "cliniko_updated_at": "2025-06-24T23:45:10.000Z",
    "updated_at": T0,
}
APPOINTMENT_EXAMPLE = {
    "cliniko_id": "99120433",
    "starts_at": "2025-07-08T00:00:00.000Z",
    "ends_at": "2025-07-08T00:30:00.000Z",
    "status": "booked",
    "patient_cliniko_id": "1084736",
    "patient_name": "Samantha Citizen",
    "practitioner_cliniko_id": "44120",
    "practitioner_name": "Dr Alex Lee",
    "appointment_type_cliniko_id": "7781",
    "appointment_type_name": "Follow-up",
    "business_cliniko_id": "1201",
    "cancelled_at": None,
    "archived_at": None,
    "cliniko_updated_at": "2025-06-30T10:12:00.000Z",
    "updated_at": T0,
}
EXAMPLES.update(
    {
        "summary": {
            "organization_id": ORG,
            "total_patients": 650,
            "active_patients": 212,
            "patients_by_activity": {
                "active": 80,
                "recently_active": 90,
                "upcoming_only": 42,
                "inactive": 438,
            },
            "patients_with_recent_appointments": 170,
            "patients_with_upcoming_appointments": 122,
            "appointments": {
                "recent": 150,
                "upcoming": 140,
                "in_window": 288,
                "window_start": "2025-05-31T12:00:00.000Z",
                "window_end": "2025-07-30T12:00:00.000Z",
            },
            "last_successful_sync_at": T0,
            "freshness": {
                "patients": {"last_synced_at": T0, "data_as_of": "2025-06-30T10:59:58.000Z", "stored": 651},
                "appointments": {
                    "last_synced_at": T0,
                    "data_as_of": "2025-06-30T10:59:58.000Z",
                    "stored": 296,
                },
            },
            "generated_at": T1,
        },
        "patients": {"data": [PATIENT_EXAMPLE], "next_cursor": "YWZ0ZXI6MTA0", "has_more": True, "limit": 1},
        "appointments": {"data": [APPOINTMENT_EXAMPLE], "next_cursor": None, "has_more": False, "limit": 100},
    }
)
PATHS.update(
    {
        "/api/v1/organizations/{organization_id}/summary": {
            "get": op(
                "Get the synced data's summary",
                "Patients not archived, active ones (any activity status but inactive), by activity "
                "status, with recent / upcoming appointments; appointments counted as the activity step "
                "counts them (not cancelled or archived) recent, upcoming and in the activity window; "
                "the last successful sync and freshness per entity. Needs the `patients:read` scope.",
                [P_ORG_ID],
                responses("Summary", EXAMPLES["summary"], 403, 404),
                ["Data"],
            )
        },
        "/api/v1/organizations/{organization_id}/patients": {
            "get": op(
                "List patients",
                "Patients as the dashboard lists them, plus Cliniko ids; archived ones only with "
                "`archived=true`." + DATA_NOTE,
                [
                    P_ORG_ID,
                    query_param(
                        "activity", enum(ACTIVITY_STATUSES), "Only patients with this activity status."
                    ),
                    query_param(
                        "q", {"type": "string", "maxLength": 100}, "Search first/preferred/last name, email."
                    ),
                    query_param(
                        "archived", {"type": "boolean", "default": False}, "Include archived patients."
                    ),
                    *PAGE_PARAMS,
                ],
                responses("PatientPage", EXAMPLES["patients"], *DATA_ERRORS),
                ["Data"],
            )
        },
        "/api/v1/organizations/{organization_id}/appointments": {
            "get": op(
                "List appointments",
                "Appointments with patient, practitioner and type names, plus Cliniko ids." + DATA_NOTE,
                [
                    P_ORG_ID,
                    query_param("from", TIME_PARAM, "Only appointments starting at or after this."),
                    query_param("to", TIME_PARAM, "Only appointments starting before this."),
                    query_param("status", enum(APPOINTMENT_STATUSES), "Only appointments in this status."),
                    query_param(
                        "patient_id", {"type": "string", "maxLength": 32}, "One patient's Cliniko id."
                    ),
                    *PAGE_PARAMS,
                ],
                responses("AppointmentPage", EXAMPLES["appointments"], *DATA_ERRORS),
                ["Data"],
            )
        },
    }
)


@cache
def _document():
    paths = deepcopy(PATHS)
    for path, methods in paths.items():
        for method, operation in methods.items():
            operation["operationId"] = method + re.sub(r"[^a-z0-9]+", "_", path.replace("/api/v1", ""))
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "Routiq Admin API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"session": []}],
        "tags": [
            {"name": "Sync"},
            {"name": "Cliniko"},
            {"name": "Organizations"},
            {"name": "Data"},
            {"name": "Meta"},
        ],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `flask --app wsgi tokens create`, or a Clerk session "
                    "token (RS256 JWT) when CLERK_ISSUER is set.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "A signed-in dashboard session (CSRF applies to POSTs).",
                },
            },
        },
    }


def document():
    """Return a fresh copy of the OpenAPI document."""
    return deepcopy(_document())
