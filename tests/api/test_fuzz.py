"""Property-based fuzzing of every operation from our OpenAPI document (schemathesis + hypothesis):
no 500, no status or body outside the document, and invalid input always refused with a 4xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_run

POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


@pytest.fixture
def fuzz_schema(app, orgs):
    app.config.update(
        API_RATE_LIMIT_WORK_PER_MINUTE=10**6, API_RATE_LIMIT_READ_PER_MINUTE=10**6, CLINIKO_TIMEOUT_SECONDS=2
    )
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.mark.parametrize("mode", list(EXAMPLES))
def test_fuzz_every_operation(fuzz_schema, orgs, mode):
    runs = {org: make_run(org, "completed").sync_id for org in ("org_a", "org_b")}
    # Real ids half the time (where the case's path and headers are meant to be valid), so the
    # fuzzer reaches the 200 and 422 paths and not only 403/404.
    org_ids = st.sampled_from(["org_a", "org_b", "org_nope"])
    tokens = st.sampled_from([orgs.token_a, orgs.token_all, orgs.token_all_read, "rtq_wrong"])
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    documented = {
        f"{m.upper()} {p}" for p, methods in fuzz_schema.raw_schema["paths"].items() for m in methods
    }
    # Schemathesis leaves out the document it was loaded from.
    assert {op.label for op in operations} == documented - {"GET /api/v1/openapi.json"}
    checks = POSITIVE_CHECKS + ([negative_data_rejection] if mode == GenerationMode.NEGATIVE else [])

    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters"):
            continue  # nothing to make invalid

        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=operation.as_strategy(generation_mode=mode), token=tokens, org=org_ids, real=st.booleans()
        )
        def fuzz(case, token, org, real):
            if real:
                valid = {
                    k.value
                    for k, info in (case.meta.components if case.meta else {}).items()
                    if info.mode == GenerationMode.POSITIVE
                }
                params = case.path_parameters or {}
                for name in ("organization_id", "org_id") if "path" in valid else ():
                    if name in params:
                        params[name] = org
                if "sync_id" in params and "path" in valid:
                    params["sync_id"] = runs.get(org, "sync_nope")
                if "header" in valid and case.headers:
                    case.headers.pop("X-Organization-ID", None)
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)

        fuzz()
