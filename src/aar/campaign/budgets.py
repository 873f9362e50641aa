"""Budgets per agent and for the whole campaign: wall clock, submissions, tokens and dollars.

Wall clock is measured by the campaign (agent-seconds, across resumes); submissions are counted by
the server (which also refuses submissions past each agent's total); tokens and dollars are what
LLM backends report in ``usage.json`` in their workspace (zero for the offline researcher).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aar.sandbox.safe_read import read_json_safely


@dataclass(frozen=True)
class Budgets:
    """Limits; ``None`` means unlimited."""

    agent_seconds: float
    agent_submissions: int
    total_submissions: int | None = None
    agent_tokens: int | None = None
    agent_dollars: float | None = None
    total_dollars: float | None = None
    total_seconds: float | None = None  # the campaign's own wall clock, over all sessions
    grace_seconds: float = 15.0  # past its wall budget an agent is killed, whatever it is doing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


USAGE_MAX_BYTES = 1 << 20


def usage(workspace: str | Path) -> dict[str, Any]:
    """Tokens and dollars an agent's backend reported (``usage.json``); zeros when absent or unreadable.

    LLM backends account in the supervising process and write ``usage.json`` beside the workspace
    (``agents/<name>/usage.json``, out of the agent's reach); that file wins when it exists. The one in
    the workspace is the agent's: it is read with the safe reader (no symlinks, FIFOs or huge files).
    """
    ws = Path(workspace)
    for root in (ws.parent, ws):
        try:
            raw = read_json_safely("usage.json", USAGE_MAX_BYTES, root=root)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            break
        try:
            tokens, dollars = int(raw.get("tokens", 0)), float(raw.get("dollars", 0.0))
        except (ValueError, TypeError, AttributeError, OverflowError):
            break
        dollars = dollars if math.isfinite(dollars) and dollars > 0 else 0.0  # NaN would never trip a budget
        return {"tokens": max(0, tokens), "dollars": dollars}
    return {"tokens": 0, "dollars": 0.0}


def agent_over(b: Budgets, seconds: float, submissions: int, used: dict[str, Any]) -> str | None:
    """Why an agent must stop now, or None. Submissions only stop it once the server has refused more."""
    if seconds >= b.agent_seconds + b.grace_seconds:
        return "wall-clock budget"
    if b.agent_tokens is not None and used["tokens"] >= b.agent_tokens:
        return "token budget"
    if b.agent_dollars is not None and used["dollars"] >= b.agent_dollars:
        return "dollar budget"
    if submissions >= b.agent_submissions + 1:
        return "submission budget"
    return None


def campaign_over(b: Budgets, submissions: int, dollars: float, elapsed: float = 0.0) -> str | None:
    """Why the whole campaign must stop now, or None (``elapsed``: campaign wall seconds, all sessions)."""
    if b.total_seconds is not None and elapsed >= b.total_seconds:
        return "campaign wall-clock budget"
    if b.total_submissions is not None and submissions >= b.total_submissions:
        return "campaign submission budget"
    if b.total_dollars is not None and dollars >= b.total_dollars:
        return "campaign dollar budget"
    return None
