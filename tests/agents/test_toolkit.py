"""The tool mechanism: a typed signature gives the JSON schema and the strict argument check."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from aar.agents.toolkit import ToolError, ToolRegistry, run_tool, unknown_tool
from aar.server.errors import ApiError

REG = ToolRegistry()


@REG.tool
def sample(
    target: list,
    name: Annotated[str, Field(max_length=5, description="who")],
    count: Annotated[int, Field(ge=1, le=3)] = 1,
    kinds: Annotated[list[Literal["a", "b"]], Field(max_length=2)] | None = None,
    ratio: float | None = None,
) -> dict:
    """A sample tool. It records its call."""
    target.append((name, count, kinds, ratio))
    return {"ok": True}


@REG.tool
def failing(target: list, what: str) -> dict:
    """Fails the way tools fail."""
    if what == "tool":
        raise ToolError("no such run")
    if what == "server":
        raise ApiError(429, "budget_exhausted", "no budget left", {"limit": "total"})
    raise FileNotFoundError("missing.txt")


def test_the_schema_comes_from_the_signature():
    spec = REG.tools["sample"].spec()
    assert spec["name"] == "sample" and spec["description"] == "A sample tool. It records its call."
    assert spec["input_schema"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 5, "description": "who"},
            "count": {"type": "integer", "minimum": 1, "maximum": 3},
            "kinds": {"type": "array", "items": {"enum": ["a", "b"], "type": "string"}, "maxItems": 2},
            "ratio": {"type": "number"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def test_arguments_are_checked_strictly_and_named_in_the_error():
    calls: list = []
    t = REG.tools["sample"]

    def err(args: object) -> str:
        return run_tool(t, calls, args)["error"]

    assert run_tool(t, calls, {"name": "x", "count": 2, "kinds": ["a"], "ratio": 1}) == {"ok": True}
    assert calls == [("x", 2, ["a"], 1)]  # the arguments as given (an int stays an int)
    assert err({}) == "arguments is missing required 'name'"
    assert err({"name": "x", "count": "2"}) == "arguments.count must be a integer, got str"
    assert err({"name": "x", "count": True}) == "arguments.count must be a integer, got bool"
    assert err({"name": "x", "count": 4}) == "arguments.count must be <= 3"
    assert err({"name": "toolong"}) == "arguments.name is longer than 5 characters"
    assert err({"name": "x", "kinds": ["c"]}) == "arguments.kinds[0] must be one of ['a', 'b'], got 'c'"
    assert err({"name": "x", "kinds": [1]}) == "arguments.kinds[0] must be a string, got int"
    assert err({"name": "x", "kinds": ["a", "b", "a"]}) == "arguments.kinds has more than 2 items"
    assert err({"name": "x", "ratio": None}) == "arguments.ratio must be a number, got NoneType"
    known = "known: name, count, kinds, ratio"
    assert err({"name": "x", "zz": 1}) == f"arguments has unknown property 'zz' ({known})"
    assert err(["x"]) == "arguments must be a JSON object"
    assert len(calls) == 1  # no invalid call reached the tool


def test_failures_become_the_error_envelope():
    t = REG.tools["failing"]
    assert run_tool(t, [], {"what": "tool"}) == {"error": "no such run"}
    assert run_tool(t, [], {"what": "server"}) == {
        "error": "server: 429 budget_exhausted: no budget left",
        "status": 429,
        "code": "budget_exhausted",
        "details": {"limit": "total"},
    }
    assert run_tool(t, [], {"what": "disk"}) == {"error": "FileNotFoundError: missing.txt"}
    assert unknown_tool("rm", list(REG.tools)) == {"error": "unknown tool 'rm'; tools: sample, failing"}
