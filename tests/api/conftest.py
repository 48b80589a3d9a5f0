"""API fixtures: two organizations with tokens and a test client that validates
every response against the OpenAPI document (status documented, body matching its schema)."""

import re
from types import SimpleNamespace

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from routiq_admin.api.openapi import document
from routiq_admin.models import SCOPES
from tests.factories import make_org, make_token

KEY_A = "api-test-key-a-au4"
KEY_B = "api-test-key-b-au1"
DOC = document()
REGISTRY = Registry().with_resource("urn:routiq-api", DRAFT202012.create_resource(DOC))


def _operation_patterns():
    out = []
    for path, methods in DOC["paths"].items():
        regex = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")
        for method, operation in methods.items():
            out.append((regex, method.upper(), path, operation))
    return out


OPERATIONS = _operation_patterns()


def operation_for(method, path):
    """Return (template, operation) of the documented operation serving `method path`, or (None, None)."""
    for regex, op_method, template, operation in OPERATIONS:
        if op_method == method.upper() and regex.match(path):
            return template, operation
    return None, None


def check_response(method, path, status, body, content_type="application/json"):
    """Assert a real response is documented for its operation and matches the documented schema."""
    template, operation = operation_for(method, path.split("?", 1)[0])
    assert operation is not None, f"{method} {path} is not in the OpenAPI document"
    documented = operation["responses"].get(str(status))
    assert documented is not None, f"{method} {template} answered {status}, which is not documented"
    media = documented["content"].get(content_type.split(";")[0].strip())
    assert media is not None, f"{method} {template} {status}: undocumented content type {content_type}"
    if content_type.startswith("application/json"):
        schema = {"$ref": "urn:routiq-api" + media["schema"]["$ref"]}
        jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(body)


class CheckedClient:
    """A Flask test client whose API responses are all checked against the OpenAPI document."""

    def __init__(self, client):
        self.client = client

    def open(self, method, path, token=None, org=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if org:
            headers["X-Organization-ID"] = org
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        if response.status_code != 405:
            check_response(
                method, path, response.status_code, response.get_json(silent=True), response.content_type
            )
        return response

    def get(self, path, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.open("POST", path, **kwargs)


@pytest.fixture
def api(app):
    """A checked test client."""
    return CheckedClient(app.test_client())


@pytest.fixture
def orgs(app):
    """Organizations A and B, a token for each, and an all-organizations token (scope sync, the
    default), plus tokens that may also read patients (`*_read`)."""
    a = make_org("org_a", "Clinic A", api_key=KEY_A)
    b = make_org("org_b", "Clinic B", api_key=KEY_B)
    _, token_a = make_token(a, name="a")
    _, token_b = make_token(b, name="b")
    _, token_all = make_token(all_orgs=True, name="all")
    _, token_a_read = make_token(a, name="a read", scopes=SCOPES)
    _, token_all_read = make_token(all_orgs=True, name="all read", scopes=SCOPES)
    return SimpleNamespace(
        a=a,
        b=b,
        token_a=token_a,
        token_b=token_b,
        token_all=token_all,
        token_a_read=token_a_read,
        token_all_read=token_all_read,
    )


@pytest.fixture
def app(sync_app):
    """API tests run against an app whose Cliniko is the simulator (see tests/conftest.py)."""
    return sync_app
