"""Claude through the Anthropic Messages API (official ``anthropic`` SDK): tool use and prompt caching.

The system prompt, the tool list and the newest message carry ``cache_control`` breakpoints, so each
turn re-reads the conversation so far from the prompt cache (billed at the cache-read price) and only
the new messages are written. The SDK's own retries are off: the loop retries with its own backoff
and accounting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aar.agents.llm.backend import FatalError, ToolCall, TransientError, Turn, retry_after_seconds
from aar.agents.llm.pricing import Usage

_EPHEMERAL = {"type": "ephemeral"}


def to_wire(messages: list[dict[str, Any]], cache: bool = True) -> list[dict[str, Any]]:
    """Neutral messages (see :mod:`aar.agents.llm.context`) to Anthropic ``messages``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "user":
            role, blocks = "user", [{"type": "text", "text": m["content"] or "(empty)"}]
        elif m["role"] == "assistant":
            role, blocks = "assistant", []
            if m.get("content"):
                blocks.append({"type": "text", "text": m["content"]})
            for c in m.get("calls", []):
                args = c.get("args") if isinstance(c.get("args"), dict) else {}
                blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": args})
            if not blocks:
                blocks = [{"type": "text", "text": "(no reply)"}]
        elif m["role"] == "tool":
            role = "user"
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": r["id"],
                    "content": r["content"],
                    "is_error": bool(r["is_error"]),
                }
                for r in m["results"]
            ]
            if m.get("note"):
                blocks.append({"type": "text", "text": m["note"]})
        else:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if cache and out:
        last = out[-1]["content"][-1]
        out[-1]["content"][-1] = {**last, "cache_control": _EPHEMERAL}
    return out


def tools_wire(specs: list[dict[str, Any]], cache: bool = True) -> list[dict[str, Any]]:
    """Tool specs (already in the Anthropic shape), with a cache breakpoint on the last one."""
    tools = [
        {"name": s["name"], "description": s["description"], "input_schema": s["input_schema"]} for s in specs
    ]
    if cache and tools:
        tools[-1] = {**tools[-1], "cache_control": _EPHEMERAL}
    return tools


def parse(resp: Any) -> Turn:
    """An SDK ``Message`` (or a dict of the same shape) to a :class:`Turn`."""
    get: Callable[..., Any] = (
        (lambda o, k, d=None: o.get(k, d))
        if isinstance(resp, dict)
        else (lambda o, k, d=None: getattr(o, k, d))
    )
    text, calls = [], []
    for i, b in enumerate(get(resp, "content", None) or []):
        kind = get(b, "type")
        if kind == "text":
            text.append(get(b, "text", "") or "")
        elif kind == "tool_use":
            args = get(b, "input")
            cid = get(b, "id") or f"call_{i}"
            name = str(get(b, "name") or "")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    calls.append(ToolCall(cid, name, None, "arguments are not valid JSON", raw=args))
                    continue
            if not isinstance(args, dict):
                calls.append(
                    ToolCall(cid, name, None, f"arguments must be a JSON object, got {type(args).__name__}")
                )
            else:
                calls.append(ToolCall(cid, name, args))
    u = get(resp, "usage")
    usage = (
        Usage(
            int(get(u, "input_tokens", 0) or 0),
            int(get(u, "output_tokens", 0) or 0),
            int(get(u, "cache_read_input_tokens", 0) or 0),
            int(get(u, "cache_creation_input_tokens", 0) or 0),
        )
        if u is not None
        else Usage()
    )
    stop = get(resp, "stop_reason") or "other"
    stop = (
        stop
        if stop in ("end_turn", "tool_use", "max_tokens")
        else ("end_turn" if stop == "stop_sequence" else stop)
    )
    return Turn("".join(text), calls, stop, usage, str(get(resp, "model", "") or ""))


class AnthropicBackend:
    """Claude models through the Messages API."""

    name = "anthropic"

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 600.0,
        cache: bool = True,
    ) -> None:
        """A client for ``model``; ``api_key`` defaults to ``ANTHROPIC_API_KEY`` (read by the caller)."""
        import anthropic

        self.model, self.cache = model, cache
        self._sdk = anthropic
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    def complete(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int
    ) -> Turn:
        """One Messages API call."""
        a = self._sdk
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": [
                {"type": "text", "text": system, **({"cache_control": _EPHEMERAL} if self.cache else {})}
            ],
            "messages": to_wire(messages, self.cache),
        }
        if tools:
            kwargs["tools"] = tools_wire(tools, self.cache)
        try:
            resp = self.client.messages.create(**kwargs)
        except a.APIStatusError as e:
            status = e.status_code
            msg = f"HTTP {status}: {_message(e)}"
            if status in (408, 409, 429) or status >= 500:
                raise TransientError(msg, retry_after_seconds(e.response.headers), status) from e
            raise FatalError(msg) from e
        except a.APIError as e:  # connection errors, timeouts, unreadable (e.g. truncated) responses
            raise TransientError(f"{type(e).__name__}: {e}") from e
        return parse(resp)


def _message(e: Exception) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return f"{err.get('type', 'error')}: {err['message']}"
    return str(getattr(e, "message", e))[:500]
