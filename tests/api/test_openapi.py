"""The OpenAPI document matches the code: routes, required guide fields, closed schemas, examples."""

import re

import jsonschema
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from tests.api.conftest import DOC, REGISTRY, check_response
from tests.api.guide import RESPONSES

GUIDE_SCHEMAS = {
    ("POST", "/api/v1/sync/trigger"): "TriggerResponse",
    ("GET", "/api/v1/sync/scheduler/status"): "SchedulerStatus",
    ("POST", "/api/v1/sync/scheduler/trigger"): "TriggerResponse",
    ("POST", "/api/v1/sync/start/{organization_id}"): "StartResponse",
    ("GET", "/api/v1/sync/progress/{sync_id}"): "SyncProgress",
    ("GET", "/api/v1/sync/history/{organization_id}"): "History",
    ("POST", "/api/v1/sync/cleanup"): "CleanupResponse",
    ("POST", "/api/v1/cliniko/sync/{organization_id}"): "ClinikoSyncResponse",
    ("GET", "/api/v1/cliniko/status/{organization_id}"): "ClinikoStatus",
    ("GET", "/api/v1/cliniko/test-connection/{organization_id}"): "ConnectionTest",
    ("POST", "/api/v1/cliniko/import-patients/{organization_id}"): "ImportResponse",
    ("ERROR", "envelope"): "Error",
}


def resolve(schema):
    if "$ref" in schema:
        return DOC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_registered_api_route_is_documented_and_nothing_more(app):
    registered = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            registered |= {(m.lower(), path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(m, p) for p, methods in DOC["paths"].items() for m in methods}
    assert registered == documented


def test_guide_endpoints_are_documented_with_their_methods():
    for method, path in RESPONSES:
        if method != "ERROR":
            assert method.lower() in DOC["paths"][path], (method, path)
    for extra in ("/api/v1/sync/cancel/{sync_id}", "/api/v1/sync/runs/{sync_id}"):
        assert extra in DOC["paths"]


def test_every_field_the_guide_shows_is_required():
    def walk(example, schema, where):
        schema = resolve(schema)
        if isinstance(example, dict):
            assert set(example) <= set(schema["required"]), (where, set(example) - set(schema["required"]))
            for key, value in example.items():
                walk(value, schema["properties"][key], f"{where}.{key}")
        elif isinstance(example, list) and example:
            walk(example[0], schema["items"], f"{where}[]")

    for key, name in GUIDE_SCHEMAS.items():
        walk(RESPONSES[key], {"$ref": f"#/components/schemas/{name}"}, name)


def test_no_schema_is_a_bare_object():
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" or "object" in (node.get("type") or []):
                assert "properties" in node or isinstance(node.get("additionalProperties"), dict), where
                if isinstance(node.get("additionalProperties"), dict):
                    assert node["additionalProperties"], f"{where}: additionalProperties is an empty schema"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(DOC["components"]["schemas"], "#/components/schemas")


def test_document_is_valid_openapi_31_and_examples_match_schemas():
    OPENAPI_31_VALIDATOR.validate(DOC)  # the OpenAPI 3.1 meta-schema schemathesis bundles
    assert DOC["openapi"] == "3.1.0"
    for methods in DOC["paths"].values():
        for operation in methods.values():
            for response in operation["responses"].values():
                media = response["content"].get("application/json")
                if media and "example" in media:
                    schema = {"$ref": "urn:routiq-api" + media["schema"]["$ref"]}
                    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(media["example"])
            for param in operation["parameters"]:
                if "example" in param:
                    jsonschema.validate(param["example"], param["schema"])


def test_openapi_json_is_served_and_valid(api):
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == DOC


def test_docs_page_is_rendered_by_us(api, app):
    response = app.test_client().get("/api/docs")
    check_response("GET", "/api/docs", 200, None, response.content_type)
    html = response.get_data(as_text=True)
    assert "<script src=" not in html and "cdn" not in html.lower() and "https://" not in html
    for path in DOC["paths"]:
        assert path in html
    assert "sync_already_running" in html and "Rate limit exceeded" in html and "X-Organization-ID" in html
