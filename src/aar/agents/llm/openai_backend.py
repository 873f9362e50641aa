"""Any OpenAI-compatible chat-completions endpoint (official ``openai`` SDK with a base URL): OpenAI,
vLLM, llama.cpp's server, Ollama, ...

Tool calls arrive as JSON *strings*; small local models often write invalid JSON, a non-object, or an
empty name, and each becomes a tool error for the model to correct rather than a crash. Models that
write their calls as text (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, common with
small open models whose chat template has no tool support) are parsed too. Cached prompt tokens
(``prompt_tokens_details.cached_tokens``) are billed at the cache-read price.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from aar.agents.llm.backend import FatalError, ToolCall, TransientError, Turn, retry_after_seconds
from aar.agents.llm.pricing import Usage

_TEXT_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def to_wire(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages to chat-completions ``messages`` (system first)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for m in messages:
        if m["role"] == "user":
            out.append({"role": "user", "content": m["content"]})
        elif m["role"] == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
            calls = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {
                        "name": c["name"],
                        "arguments": c["raw"]
                        if c.get("raw") is not None
                        else json.dumps(c.get("args") or {}),
                    },
                }
                for c in m.get("calls", [])
            ]
            if calls:
                msg["tool_calls"] = calls
            elif msg["content"] is None:
                msg["content"] = "(no reply)"
            out.append(msg)
        elif m["role"] == "tool":
            for r in m["results"]:
                out.append({"role": "tool", "tool_call_id": r["id"], "content": r["content"]})
            if m.get("note"):
                out.append({"role": "user", "content": m["note"]})
    return out


def tools_wire(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs as OpenAI ``function`` tools."""
    return [
        {
            "type": "function",
            "function": {"name": s["name"], "description": s["description"], "parameters": s["input_schema"]},
        }
        for s in specs
    ]


def _args(raw: object) -> tuple[dict[str, Any] | None, str | None]:
    if isinstance(raw, dict):
        return raw, None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}, None
    try:
        val = json.loads(raw)  # type: ignore[arg-type]  # a str, or a wrong type that raises TypeError
    except (ValueError, TypeError) as e:
        return None, f"arguments are not valid JSON ({e})"
    if not isinstance(val, dict):
        return None, f"arguments must be a JSON object, got {type(val).__name__}"
    return val, None


def parse(resp: Any) -> Turn:
    """An SDK ``ChatCompletion`` (or a dict of the same shape) to a :class:`Turn`."""
    get: Callable[..., Any] = (
        (lambda o, k, d=None: o.get(k, d))
        if isinstance(resp, dict)
        else (lambda o, k, d=None: getattr(o, k, d))
    )
    choices = get(resp, "choices") or []
    if not choices:
        raise TransientError("the response has no choices")
    choice = choices[0]
    msg = get(choice, "message") or {}
    text = get(msg, "content") or ""
    calls: list[ToolCall] = []
    for i, tc in enumerate(get(msg, "tool_calls") or []):
        fn = get(tc, "function") or {}
        name = str(get(fn, "name") or "")
        raw = get(fn, "arguments")
        args, err = _args(raw)
        if not name:
            args, err = None, "the call has no tool name"
        cid = get(tc, "id") or f"call_{uuid.uuid4().hex[:12]}_{i}"
        calls.append(ToolCall(cid, name, args, err, raw=raw if isinstance(raw, str) else json.dumps(raw)))
    if not calls and "<tool_call>" in text:
        for i, m in enumerate(_TEXT_CALL.finditer(text)):
            try:
                obj = json.loads(m.group(1))
                name, (args, err) = (
                    str(obj.get("name") or ""),
                    _args(obj.get("arguments", obj.get("parameters"))),
                )
            except (ValueError, AttributeError) as e:
                name, args, err = "", None, f"unreadable tool call in text ({e})"
            calls.append(
                ToolCall(
                    f"text_call_{uuid.uuid4().hex[:8]}_{i}",
                    name or "?",
                    args,
                    err or (None if name else "the call has no tool name"),
                    raw=m.group(1),
                )
            )
    finish = get(choice, "finish_reason") or "other"
    stop = {
        "stop": "end_turn",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "length": "max_tokens",
    }.get(finish, finish)
    if stop == "end_turn" and calls:
        stop = "tool_use"
    u = get(resp, "usage")
    usage = Usage()
    if u is not None:
        prompt = int(get(u, "prompt_tokens", 0) or 0)
        details = get(u, "prompt_tokens_details")
        cached = int((get(details, "cached_tokens", 0) or 0) if details is not None else 0)
        usage = Usage(prompt - cached, int(get(u, "completion_tokens", 0) or 0), cached, 0)
    return Turn(text, calls, stop, usage, str(get(resp, "model", "") or ""))


class OpenAIBackend:
    """Chat completions with function tools at ``base_url``."""

    name = "openai"

    def __init__(
        self,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 600.0,
        max_tokens_param: str = "max_tokens",
    ) -> None:
        """A client for ``model``; local servers accept any ``api_key`` (a placeholder is used)."""
        import openai

        self.model, self.max_tokens_param = model, max_tokens_param
        self._sdk = openai
        self.client = openai.OpenAI(
            api_key=api_key or "none", base_url=base_url, max_retries=0, timeout=timeout
        )

    def complete(
        self, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int
    ) -> Turn:
        """One chat-completions call."""
        o = self._sdk
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_wire(system, messages),
            self.max_tokens_param: max_tokens,
        }
        if tools:
            kwargs["tools"] = tools_wire(tools)
        try:
            resp = self.client.chat.completions.create(**kwargs)
        except o.APIStatusError as e:
            status = e.status_code
            msg = f"HTTP {status}: {str(getattr(e, 'message', e))[:500]}"
            if status in (408, 409, 429) or status >= 500:
                raise TransientError(msg, retry_after_seconds(e.response.headers), status) from e
            raise FatalError(msg) from e
        except o.APIError as e:  # connection errors, timeouts, unreadable (e.g. truncated) responses
            raise TransientError(f"{type(e).__name__}: {e}") from e
        return parse(resp)
