"""Context management for long runs: when the prompt grows past a budget, old turns are replaced by a
summary, and the agent's notebook (its long-term memory, ``notebook.md`` in the workspace) is put
back in front of it.

The conversation is kept in a backend-neutral form (each backend converts it to its wire format):

    {"role": "user", "content": str}
    {"role": "assistant", "content": str, "calls": [{"id", "name", "args", "error"?}]}
    {"role": "tool", "results": [{"id", "name", "content": str, "is_error": bool}], "note": str | None}

A compacted conversation is ``[user: kickoff + summary + notebook] + recent turns``, where the recent
turns start at an assistant turn, so every tool call still has its result next to it.
"""

from __future__ import annotations

import json
from typing import Any

SUMMARY_INSTRUCTIONS = (
    "Below is the older part of your research session (tool calls and results, abbreviated). Write a "
    "compact summary for your future self: what you tried (methods, parameters, run ids, submission ids, "
    "code hashes), what the results and public PGR figures were, what you concluded, what failed and "
    "why, and what you planned next. Plain text, at most 500 words. Facts only; no new plans."
)


def estimate_tokens(obj: object) -> int:
    """A rough token count (about 3.5 characters per token of JSON text)."""
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    return int(len(text) / 3.5) + 1


def _short(x: object, n: int) -> str:
    s = x if isinstance(x, str) else json.dumps(x, default=str)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


def digest(items: list[dict[str, Any]], per_item: int = 300) -> str:
    """One line per message, call and result: a mechanical summary of ``items``."""
    lines = []
    for m in items:
        if m["role"] == "user":
            lines.append(f"[user] {_short(m['content'], per_item)}")
        elif m["role"] == "assistant":
            if m.get("content"):
                lines.append(f"[you] {_short(m['content'], per_item)}")
            for c in m.get("calls", []):
                lines.append(f"[call {c['name']}] {_short(c.get('args'), per_item)}")
        elif m["role"] == "tool":
            for r in m["results"]:
                tag = "error" if r.get("is_error") else "result"
                lines.append(f"[{tag} {r['name']}] {_short(r['content'], per_item)}")
    return "\n".join(lines)


def split(
    history: list[dict[str, Any]], keep_recent: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(old, recent): ``recent`` is about the last ``keep_recent`` messages, starting at an assistant turn;
    ``old`` is everything between the kickoff (history[0]) and it. None when there is nothing to drop."""
    if len(history) <= 2:
        return None
    first = start = max(1, len(history) - keep_recent)
    while start < len(history) and history[start]["role"] != "assistant":
        start += 1
    if start >= len(history):  # no assistant turn in the tail: look further back
        start = first
        while start > 1 and history[start]["role"] != "assistant":
            start -= 1
    if start <= 1 or history[start]["role"] != "assistant":
        return None
    return history[1:start], history[start:]


def compacted(
    kickoff: str, summary: str, notebook: str, recent: list[dict[str, Any]], n_dropped: int
) -> list[dict[str, Any]]:
    """The new conversation: a user message (kickoff, summary of ``n_dropped`` messages, notebook), recent."""
    text = (
        f"{kickoff}\n\n---\n[Context note] To keep your context small, {n_dropped} older messages of this "
        f"session were replaced by this summary:\n\n{summary.strip()}\n"
    )
    if notebook.strip():
        text += (
            "\n---\nYour notebook (notebook.md in your workspace, your long-term memory):\n\n"
            f"{notebook.strip()}\n"
        )
    else:
        text += "\n(Your notebook, notebook.md, is empty: write down what you learn there.)\n"
    if recent and recent[0]["role"] != "assistant":
        raise ValueError("recent turns must start at an assistant turn")
    return [{"role": "user", "content": text}, *recent]


def repair(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make a saved conversation continuable: every tool call gets a result (an interrupted call gets an
    error) and the conversation ends with a user or tool message."""
    out = list(history)
    if out and out[-1]["role"] == "assistant" and out[-1].get("calls"):
        out.append(
            {
                "role": "tool",
                "results": [
                    {
                        "id": c["id"],
                        "name": c["name"],
                        "content": json.dumps(
                            {"error": "interrupted: the agent was stopped before this call finished"}
                        ),
                        "is_error": True,
                    }
                    for c in out[-1]["calls"]
                ],
                "note": None,
            }
        )
    return out
