"""The OpenAPI document and the human page rendered from it (no CDN)."""

import json

from flask import Blueprint, jsonify, render_template
from markdown_it import MarkdownIt
from markupsafe import Markup

from .openapi import document

bp = Blueprint("api_docs", __name__)

# CommonMark without raw HTML: the document's descriptions are Markdown (`**Auth**`, backticks).
_markdown = MarkdownIt("commonmark", {"html": False})


@bp.app_template_filter("markdown")
def markdown(text, inline=False):
    """Render a description written in Markdown (inline for table cells)."""
    text = text or ""
    return Markup(_markdown.renderInline(text) if inline else _markdown.render(text))


@bp.get("/api/v1/openapi.json")
def openapi_json():
    """Serve the OpenAPI 3.1 document."""
    return jsonify(document())


def _type(schema, schemas):
    """Return a short human type for a schema ("string | null", "array of HistoryItem")."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "enum" in schema:
        return " | ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    kind = " | ".join(kind) if isinstance(kind, list) else kind
    if kind == "array":
        return f"array of {_type(schema['items'], schemas)}"
    return kind


def _fields(name, schemas):
    """Return (field, type, required, description) rows of a named object schema."""
    schema = schemas[name]
    required = set(schema.get("required", ()))
    return [
        (key, _type(sub, schemas), key in required, sub.get("description", ""))
        for key, sub in schema.get("properties", {}).items()
    ]


@bp.get("/api/docs")
def page():
    """Render the API reference page from the OpenAPI document."""
    doc = document()
    schemas = doc["components"]["schemas"]
    operations = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ok = op["responses"]["200"]["content"]
            media = ok.get("application/json", {})
            schema_name = media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1] or None
            operations.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "op": op,
                    "params": [
                        (
                            p["name"],
                            p["in"],
                            _type(p["schema"], schemas),
                            p.get("required", False),
                            p.get("description", ""),
                        )
                        for p in op["parameters"]
                    ],
                    "schema": schema_name,
                    "fields": _fields(schema_name, schemas) if schema_name in schemas else [],
                    "example": json.dumps(media["example"], indent=2, ensure_ascii=False)
                    if "example" in media
                    else None,
                    "errors": [
                        (code, r["description"]) for code, r in op["responses"].items() if code != "200"
                    ],
                }
            )
    return render_template(
        "api/docs.html", doc=doc, operations=operations, error_fields=_fields("Error", schemas)
    )
