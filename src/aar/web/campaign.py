"""What the dashboard reads from a campaign directory (never from agents' own claims): each agent's
direction, status, run intervals and restarts (``campaign.json``), its tokens and dollars (the
backend's ``usage.json``), and the sandbox audit trail (``sandbox_events.jsonl``).

``campaign.json`` carries credentials: only the fields listed here leave this module.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aar.campaign.budgets import usage
from aar.campaign.events import AUDIT_FILE
from aar.campaign.state import STATE_FILE, CampaignState

EVENTS_TAIL_BYTES = 512 * 1024


@dataclass
class CampaignSource:
    """A campaign directory the dashboard shows (its state re-read when the file changes)."""

    dir: Path
    _state: CampaignState | None = None
    _mtime: float = -1.0

    @classmethod
    def find(cls, data_dir: Path) -> CampaignSource | None:
        """The campaign whose server data dir is ``data_dir`` (``DIR/server``), if it is one."""
        parent = Path(data_dir).absolute().parent
        return cls(parent) if (parent / STATE_FILE).is_file() else None

    def state(self) -> CampaignState | None:
        """The current state, or None when unreadable (e.g. mid-write on a foreign file system)."""
        try:
            mtime = os.stat(self.dir / STATE_FILE).st_mtime
            if self._state is None or mtime != self._mtime:
                self._state, self._mtime = CampaignState.load(self.dir), mtime
        except (OSError, ValueError, TypeError):
            return self._state
        return self._state


def agent_hours_at(state: CampaignState, times: np.ndarray) -> np.ndarray:
    """Cumulative agent-hours of all agents at each epoch time in ``times`` (vectorised
    :meth:`CampaignState.agent_hours_at`; an open interval counts up to the time asked)."""
    t = np.asarray(times, dtype=float)
    total = np.zeros_like(t)
    for a in state.agents:
        for i, interval in enumerate(a.intervals):
            start = float(interval[0] or 0.0)
            stop = interval[1] if len(interval) > 1 else None
            end = float(stop) if stop is not None else np.inf
            if a.status == "running" and i == len(a.intervals) - 1:
                end = np.inf  # still running: the saved end lags behind the newest submissions
            total += np.clip(np.minimum(t, end) - start, 0.0, None)
    return total / 3600.0


def agent_rows(
    state: CampaignState, submissions: dict[str, int], only: str | None = None
) -> list[dict[str, Any]]:
    """Per agent: direction, status, agent-hours, budget left, submissions, tokens, dollars, restarts.

    ``only``: just this agent (an agent's token sees its own row and no one else's budget).
    """
    opts = state.options
    budget_s = float(opts.get("minutes", 0.0)) * 60.0
    now = time.time()
    rows = []
    for a in state.agents:
        if only is not None and a.name != only:
            continue
        used = usage(a.workspace)
        seconds = a.seconds(now)
        rows.append(
            {
                "name": a.name,
                "direction": a.direction.get("name", ""),
                "direction_text": str(a.direction.get("text") or ""),
                "status": a.status,
                "stop_reason": a.stop_reason,
                "agent_hours": seconds / 3600.0,
                "budget_hours": budget_s / 3600.0,
                "left_hours": max(0.0, budget_s - seconds) / 3600.0,
                "submissions": submissions.get(a.name, 0),
                "submission_budget": opts.get("submissions"),
                "tokens": used["tokens"],
                "token_budget": opts.get("agent_tokens"),
                "dollars": used["dollars"],
                "dollar_budget": opts.get("agent_dollars"),
                "restarts": a.restarts,
                "exit_code": a.exit_code,
            }
        )
    return rows


def sandbox_events(directory: Path, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` sandbox events, newest first (read from the file's tail only)."""
    path = Path(directory) / AUDIT_FILE
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - EVENTS_TAIL_BYTES))
            raw = f.read()
    except OSError:
        return []
    lines = raw.decode("utf-8", "replace").splitlines()
    if len(raw) == EVENTS_TAIL_BYTES:
        lines = lines[1:]  # the first line may be cut
    out: list[dict[str, Any]] = []
    for line in reversed(lines):
        if len(out) >= limit:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            details = {k: v for k, v in event.items() if k not in ("ts", "event", "label")}
            out.append(
                {
                    "ts": event.get("ts"),
                    "event": str(event.get("event", "")),
                    "agent": str(event.get("label") or event.get("agent") or ""),
                    "details": json.dumps(details, sort_keys=True, default=str)[:400],
                }
            )
    return out


def campaign_summary(state: CampaignState) -> dict[str, Any]:
    """Campaign-level facts for the page header (no credentials)."""
    running = sum(a.status == "running" for a in state.agents)
    return {
        "dir": state.dir,
        "testbed": state.testbed,
        "n_agents": len(state.agents),
        "running": running,
        "finished": state.finished,
        "isolation": state.isolation,
        "agent_hours": state.agent_seconds() / 3600.0,
    }
