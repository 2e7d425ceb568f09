"""The OpenAPI document tells the truth about errors: they are RFC 9457 problems.

FastAPI documents a request validation error as ``application/json`` with its
own ``HTTPValidationError`` shape, while the service answers every error,
validation included, as ``application/problem+json`` (``app.errors``). This
rewrites the generated document once: each operation's ``422`` and a
``default`` response point at one ``Problem`` schema, so generated clients
and schema-driven testers (schemathesis) expect what the service sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.errors import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; refusals also carry ledger_index and "
                   "ledger_leaf_hash",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "ledger_index": {"type": "integer", "minimum": 0},
        "ledger_leaf_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    "additionalProperties": True,
}
_PROBLEM_RESPONSE = {"content": {PROBLEM_MEDIA_TYPE: {
    "schema": {"$ref": "#/components/schemas/Problem"}}}}


def _document_problems(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {"description": "Invalid request", **_PROBLEM_RESPONSE}
            responses.setdefault("default", {"description": "Error", **_PROBLEM_RESPONSE})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def document_problems(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document describe its errors as problem documents."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_problems(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
