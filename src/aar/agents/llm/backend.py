"""What a model backend is and returns: the contract between the researcher loop
(:mod:`aar.agents.llm.loop`) and the backends (:mod:`aar.agents.llm.anthropic_backend`,
:mod:`aar.agents.llm.openai_backend`), and what the loop needs of a toolbox (:class:`Tools`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aar.agents.llm.pricing import Usage


# -- what backends return --------------------------------------------------------------------------
@dataclass
class ToolCall:
    """One tool call of a model turn; ``error`` is set when the call is malformed (args then None)."""

    id: str
    name: str
    args: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None  # the arguments as the model wrote them (OpenAI-style APIs)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "args": self.args, "error": self.error, "raw": self.raw}


@dataclass
class Turn:
    """A model turn: text, tool calls, why it stopped (end_turn, tool_use, max_tokens, other), usage."""

    text: str
    calls: list[ToolCall]
    stop: str
    usage: Usage
    model: str = ""


class TransientError(RuntimeError):
    """A call failed in a way worth retrying (rate limit, overload, 5xx, timeout, dropped connection)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


class FatalError(RuntimeError):
    """A call failed in a way retrying will not fix (bad request, authentication, unknown model)."""


class Backend(Protocol):
    """A chat model with tool use."""

    name: str
    model: str

    def complete(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int
    ) -> Turn: ...


class Tools(Protocol):
    """Where tool calls run."""

    def specs(self) -> list[dict[str, Any]]: ...

    def call(self, name: str, args: Any) -> dict[str, Any]: ...

    def read_notebook(self, limit: int = 12_000) -> str: ...


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        v = headers.get("retry-after")
        if v is None:
            return None
        try:
            return max(0.0, float(v))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(v).timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None
