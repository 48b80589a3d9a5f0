"""The run vocabulary: modes, kinds, statuses, triggers, and each mode's steps.

A leaf: it imports nothing from the package, so every layer can read it.
"""

import os
import secrets
from typing import NamedTuple

MODES = ("comprehensive", "basic", "active", "patients-only")
DEFAULT_MODE = MODES[0]
IMPORT_MODE = "import"
ALL_MODES = (*MODES, IMPORT_MODE)
KINDS = ("sync", "import")
ACTIVE_STATUSES = ("starting", "running")
FINISHED_STATUSES = ("completed", "failed", "cancelled")
STATUSES = (*ACTIVE_STATUSES, *FINISHED_STATUSES)
# Finished runs that say something about health and backoff (a cancel says nothing).
SETTLED_STATUSES = ("completed", "failed")
TRIGGERS = ("manual", "scheduled", "api")
# Runs the CLI executes in its own process have no RQ job to look for.
CLI_JOB_PREFIX = "cli-"


class Step(NamedTuple):
    """One step of a mode: the engine step it runs and the label shown as current_step."""

    name: str
    label: str


REFERENCE = Step("reference", "Syncing reference data")
PATIENTS = Step("patients", "Processing patients")
APPOINTMENTS = Step("appointments", "Processing appointments")
WINDOW_APPOINTMENTS = Step("window_appointments", "Processing appointments")
MISSING_PATIENTS = Step("missing_patients", "Fetching referenced patients")
ACTIVITY = Step("activity", "Updating patient activity")
IMPORT_PATIENTS = Step("patients", "Importing patients")

STEP_PLAN = {
    "comprehensive": (REFERENCE, PATIENTS, APPOINTMENTS, ACTIVITY),
    "basic": (PATIENTS, WINDOW_APPOINTMENTS, ACTIVITY),
    "active": (WINDOW_APPOINTMENTS, MISSING_PATIENTS, ACTIVITY),
    "patients-only": (PATIENTS,),
    IMPORT_MODE: (IMPORT_PATIENTS,),
}
STEPS = {mode: tuple(step.label for step in plan) for mode, plan in STEP_PLAN.items()}


def cli_job_id():
    """Return a job id for a run the CLI executes in this process."""
    return f"{CLI_JOB_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


def is_cli_job(job_id):
    """Tell whether a run's job id names a CLI process rather than an RQ job."""
    return job_id.startswith(CLI_JOB_PREFIX)
