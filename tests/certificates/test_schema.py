"""``docs/certificate.schema.json`` describes exactly what the service issues.

jsonschema is not a dependency, so a naive validator of the subset of JSON
Schema 2020-12 the document uses (type, const, required, properties,
additionalProperties, items, minItems, pattern, minimum, maximum, $ref) checks
a real certificate against it — and fails on an unknown or missing field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from client.certificate.refresh import disclose_statement
from custody import parse_bundle
from tests.app.conftest import World
from tests.certificates.helpers import history

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "certificate.schema.json")
                    .read_text("utf-8"))
TYPES: dict[str, type] = {"object": dict, "array": list, "string": str, "null": type(None)}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """Raise ``AssertionError`` naming the first place ``value`` breaks ``schema``."""
    if "$ref" in schema:
        validate(value, SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]], where)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        assert any(_type_ok(value, k) for k in kinds), f"{where}: not {kinds}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: not {schema['const']!r}"
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{where}: does not match the pattern"
    if "minimum" in schema:
        assert schema["minimum"] <= value <= schema["maximum"], f"{where}: out of range"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key}"
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{where}: unknown {set(value) - set(properties)}"
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{where}.{key}")
    if isinstance(value, list):
        assert len(value) >= schema.get("minItems", 0), f"{where}: too few items"
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), f"{where}[{i}]")


def test_an_issued_disclosed_certificate_matches_the_schema(world: World) -> None:
    h = history(world)
    statement, signature = h.statement()
    bundle = disclose_statement(parse_bundle(h.certificate()), statement, signature, "bob")
    obj = json.loads(bundle.to_bytes())
    validate(obj, SCHEMA)
    obj["certificate"]["unexpected"] = 1
    with pytest.raises(AssertionError, match="unknown"):
        validate(obj, SCHEMA)
    del obj["certificate"]["unexpected"], obj["certificate"]["custody"][0]["authority"]
    with pytest.raises(AssertionError, match="missing authority"):
        validate(obj, SCHEMA)


def test_a_refresh_matches_the_schema() -> None:
    validate({"checkpoint": "x\n", "consistency": ["A" * 43 + "="]}, SCHEMA["$defs"]["refresh"])
    with pytest.raises(AssertionError):
        validate({"checkpoint": "x\n", "consistency": ["AA=="]}, SCHEMA["$defs"]["refresh"])
