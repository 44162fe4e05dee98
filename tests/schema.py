"""The subset of JSON Schema the project's documented outputs use (compare's results.json, inspect's --json).

type (a name or a list; bools are not numbers; null skips the rest), enum,
required, properties, items — enough to hold each output to its schema
without a validator dependency.
"""

from __future__ import annotations

TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool,
         "null": type(None)}


def validate(value, schema: dict, where: str = "$") -> None:
    """Assert ``value`` fits ``schema``; the message names the path that does not."""
    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        assert any(isinstance(value, TYPES[n]) and not (n in ("integer", "number") and isinstance(value, bool))
                   for n in names), f"{where}: {type(value).__name__} is not {names}"
    if value is None:
        return
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    for key in schema.get("required", []):
        assert key in value, f"{where}: missing {key!r}"
    for key, sub in schema.get("properties", {}).items():
        if key in value:
            validate(value[key], sub, f"{where}.{key}")
    for i, item in enumerate(value if "items" in schema else []):
        validate(item, schema["items"], f"{where}[{i}]")
