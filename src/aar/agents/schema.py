"""A small JSON-schema checker for tool arguments (the subset the tool schemas use)."""

from __future__ import annotations

_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}


class ArgumentError(ValueError):
    """Tool arguments do not match the tool's JSON schema."""


def check(value: object, schema: dict, where: str = "arguments") -> None:
    """Raise :class:`ArgumentError` naming the first place where ``value`` breaks ``schema``."""
    kind = schema.get("type")
    if kind is not None:
        py = _TYPES[kind]
        if (isinstance(value, bool) and kind in ("integer", "number")) or not isinstance(value, py):
            raise ArgumentError(f"{where} must be a {kind}, got {type(value).__name__}")
    if "enum" in schema and value not in schema["enum"]:
        raise ArgumentError(f"{where} must be one of {schema['enum']}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ArgumentError(f"{where} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ArgumentError(f"{where} must be <= {schema['maximum']}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", 1 << 30):
        raise ArgumentError(f"{where} is longer than {schema['maxLength']} characters")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", 1 << 30):
            raise ArgumentError(f"{where} has more than {schema['maxItems']} items")
        for i, item in enumerate(value):
            check(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict) and kind == "object":
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise ArgumentError(f"{where} is missing required '{name}'")
        for name, item in value.items():
            if name in props:
                check(item, props[name], f"{where}.{name}")
            elif schema.get("additionalProperties", True) is False:
                raise ArgumentError(f"{where} has unknown property '{name}' (known: {', '.join(props)})")
