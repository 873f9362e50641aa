"""The one tool mechanism of every researcher backend (offline, LLM loop, MCP): a tool is a typed Python
function; its signature is its contract.

:meth:`ToolRegistry.tool` registers a function. Its parameters after the first (what the tool acts on)
become the tool's arguments: their type hints (with ``Annotated[..., Field(...)]`` for limits and
descriptions) give both the JSON schema every backend shows (:meth:`Tool.spec`) and the pydantic model
that checks the arguments a model sends. Checking is strict (no coercion: ``"1"`` is not an integer)
and an optional argument may be left out but not sent as ``null``. A failed check reads like the rest of
the tool errors (``arguments.limit must be <= 100``), so a model can correct its call.

:func:`run_tool` is the one place where a tool's failures become the error envelope a model sees:
``{"error": message}``, plus ``status``, ``code`` and ``details`` for an error answer of the server.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from aar.server.errors import ApiError


class ToolError(RuntimeError):
    """A tool could not do what was asked (bad path, unknown run, ...); its message goes to the agent."""


class ArgumentError(ValueError):
    """Tool arguments do not match the tool's signature (its JSON schema)."""


@dataclass(frozen=True)
class Tool:
    """One tool: its name, docstring (the description every backend shows), JSON schema, argument model
    and implementation."""

    name: str
    description: str
    schema: dict[str, Any]
    model: type[BaseModel]
    fn: Callable[..., dict[str, Any]]

    def spec(self) -> dict[str, Any]:
        """``{name, description, input_schema}`` (the Anthropic/MCP shape; OpenAI calls it parameters)."""
        return {"name": self.name, "description": self.description, "input_schema": self.schema}

    def check(self, args: object) -> dict[str, Any]:
        """``args`` as given, once they fit the signature; else :class:`ArgumentError` naming the first
        place that does not."""
        if not isinstance(args, dict):
            raise ArgumentError("arguments must be a JSON object")
        try:
            self.model.model_validate(args)
        except ValidationError as e:
            raise ArgumentError(_message(e, args, self.schema)) from None
        return args


class ToolRegistry:
    """A named set of tools, in registration order."""

    def __init__(self) -> None:
        """An empty registry."""
        self.tools: dict[str, Tool] = {}

    def tool(self, fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        """Register ``fn`` as a tool; its name, docstring and typed signature define the tool."""
        model = _arguments_model(fn)
        self.tools[fn.__name__] = Tool(
            fn.__name__, " ".join((fn.__doc__ or "").split()), _clean(model.model_json_schema()), model, fn
        )
        return fn

    def specs(self) -> list[dict[str, Any]]:
        """The specs of every tool, in registration order."""
        return [t.spec() for t in self.tools.values()]


def unknown_tool(name: str, known: list[str]) -> dict[str, Any]:
    """The answer to a call of a tool that does not exist."""
    return {"error": f"unknown tool '{name}'; tools: {', '.join(known)}"}


def run_tool(t: Tool, target: object, args: object) -> dict[str, Any]:
    """Check ``args``, run the tool on ``target``, and turn every expected failure into the error envelope."""
    try:
        return t.fn(target, **t.check({} if args is None else args))
    except (ArgumentError, ToolError) as e:
        return {"error": str(e)}
    except ApiError as e:
        return {"error": f"server: {e}", "status": e.status, "code": e.code, "details": e.details}
    except (OSError, ValueError, KeyError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


# -- signature -> model and schema -------------------------------------------------------------------
_STRICT = ConfigDict(extra="forbid", strict=True)


def _arguments_model(fn: Callable[..., dict[str, Any]]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first; an argument defaulting to None is optional
    but typed without None (a model must leave it out rather than send null)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    # only the arguments' hints: the first parameter's type may be defined after the tool (a Toolbox)
    shim = SimpleNamespace(__annotations__={p.name: fn.__annotations__[p.name] for p in params},
                           __globals__=getattr(fn, "__globals__", {}))
    hints = typing.get_type_hints(shim, include_extras=True)
    fields: dict[str, Any] = {}
    for p in params:
        hint = hints[p.name]
        if p.default is None:
            hint = _without_none(hint)
        fields[p.name] = (hint, ... if p.default is inspect.Parameter.empty else p.default)
    model: type[BaseModel] = create_model(f"{fn.__name__}_arguments", __config__=_STRICT, **fields)
    return model


def _without_none(hint: Any) -> Any:
    """``X | None`` -> ``X`` (keeping ``Annotated`` metadata on either side)."""
    if typing.get_origin(hint) is typing.Annotated:
        inner, *meta = typing.get_args(hint)
        return typing.Annotated[(_without_none(inner), *meta)]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(hint)) == 2:
        return args[0]
    return hint


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's JSON schema in the plain shape tools have always shown: no titles, no defaults, no
    ``additionalProperties: true`` on free-form objects, ``required`` always present on the top object."""
    top = _clean_node(schema)
    top.setdefault("required", [])
    return {k: top[k] for k in ("type", "properties", "required", "additionalProperties") if k in top}


_KEY_ORDER = ("type", "items", "enum", "minimum", "maximum", "maxLength", "maxItems", "description")


def _clean_node(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("title", "default") or (k == "additionalProperties" and v is True):
            continue
        if k == "properties":
            out[k] = {name: _clean_node(sub) for name, sub in v.items()}
        elif k == "items":
            out[k] = _clean_node(v)
        else:
            out[k] = v
    rank = {k: i for i, k in enumerate(_KEY_ORDER)}
    return dict(sorted(out.items(), key=lambda kv: rank.get(kv[0], len(rank))))


# -- validation errors in the tools' words -------------------------------------------------------------
def _where(loc: tuple[int | str, ...]) -> str:
    return "arguments" + "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc)


def _schema_at(schema: dict[str, Any], loc: tuple[int | str, ...]) -> dict[str, Any]:
    for x in loc:
        schema = schema.get("items", {}) if isinstance(x, int) else schema.get("properties", {}).get(x, {})
    return schema


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict,
}


def _has_type(value: object, kind: str | None) -> bool:
    """Whether ``value`` is of JSON-schema type ``kind`` (a bool is not a number)."""
    if kind is None:
        return True
    if isinstance(value, bool) and kind in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[kind])


def _message(e: ValidationError, args: dict[str, Any], schema: dict[str, Any]) -> str:
    """The first failure (missing arguments first, then in the order the arguments came) as one line."""
    order = {name: i for i, name in enumerate(args)}
    errors = sorted(e.errors(), key=lambda x: (x["type"] != "missing", order.get(str(x["loc"][0]), -1)))
    err = errors[0]
    loc = tuple(err["loc"])
    where, at, kind = _where(loc), _schema_at(schema, loc), err["type"]
    if kind == "missing":
        return f"{_where(loc[:-1])} is missing required '{loc[-1]}'"
    if kind == "extra_forbidden":
        known = ", ".join(_schema_at(schema, loc[:-1]).get("properties", {}))
        return f"{_where(loc[:-1])} has unknown property '{loc[-1]}' (known: {known})"
    if kind.endswith("_type") or (kind == "literal_error" and not _has_type(err["input"], at.get("type"))):
        return f"{where} must be a {at.get('type')}, got {type(err['input']).__name__}"
    if kind == "literal_error":
        return f"{where} must be one of {at.get('enum')}, got {err['input']!r}"
    if kind == "greater_than_equal":
        return f"{where} must be >= {at.get('minimum')}"
    if kind == "less_than_equal":
        return f"{where} must be <= {at.get('maximum')}"
    if kind == "string_too_long":
        return f"{where} is longer than {at.get('maxLength')} characters"
    if kind == "too_long":
        return f"{where} has more than {at.get('maxItems')} items"
    return f"{where}: {err['msg']}"
