"""A deterministic minimal instance of a JSON Schema, for mock-mode answers.

Minimal means: required properties only, the fewest items an array may have, the first
of an `enum`, the smallest number allowed, a string as long as `minLength` asks. It covers
the keywords a step's output schema uses in practice (type, enum, const, properties,
required, items, min*/max*, anyOf/oneOf/allOf, local `$ref`); the caller validates the
result, so a schema outside that set is reported, never answered wrongly.
"""

from __future__ import annotations

from typing import Any


def minimal(schema: Any, root: Any = None) -> Any:
    """The minimal instance of `schema` (`root` resolves `#/...` references)."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None  # `true`, or a schema this generator does not read
    if "$ref" in schema and str(schema["$ref"]).startswith("#/"):
        target: Any = root
        for part in str(schema["$ref"])[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return minimal(target, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return minimal(schema[key][0], root)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    return _of_type(kind, schema, root)


def _of_type(kind: Any, schema: dict[str, Any], root: Any) -> Any:
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal(properties.get(name, {}), root) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema.get("items", {}), root) for _ in range(int(schema.get("minItems", 0)))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = low + 1 if "exclusiveMinimum" in schema and "minimum" not in schema else low
        return int(value) if kind == "integer" else value
    if kind == "string":
        return "x" * int(schema.get("minLength", 0))
    if kind == "boolean":
        return False
    return None  # "null", or no type at all: null is the least value
