"""The specifications kept beside the repository (the Cliniko OpenAPI document, the guide).

A bare clone has none of them: tests that read one skip with the setting to use, unless
REQUIRE_SPECS=1 (CI), which turns the skip into a failure.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_SPEC = ROOT.parent / "shared" / "spec"
CLINIKO_OPENAPI = ("CLINIKO_OPENAPI_PATH", SHARED_SPEC / "cliniko-openapi.yaml")
SYNC_GUIDE = ("SYNC_GUIDE_PATH", SHARED_SPEC / "sync-management-guide.md")
SPEC_SKIP = "spec not found at "


def spec_path(spec):
    """Return where a spec is looked for: its setting, else ../shared/spec/<file>."""
    setting, default = spec
    return Path(os.environ.get(setting) or default)


def require_spec(spec):
    """Return a spec's path; skip the test when it is absent (fail under REQUIRE_SPECS=1)."""
    path = spec_path(spec)
    if not path.is_file():
        reason = f"{SPEC_SKIP}{path}; set {spec[0]}"
        if os.environ.get("REQUIRE_SPECS") == "1":
            pytest.fail(f"{reason} (REQUIRE_SPECS=1)", pytrace=False)
        pytest.skip(reason)
    return path
