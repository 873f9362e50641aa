"""The campaign's persistent state (``DIR/campaign.json``): written atomically, read on resume.

It holds the options, the server's address and admin token, and per agent its credential,
direction, seed and the wall-clock intervals it ran (so agent-hours add up across resumes). The
file is mode 600: it carries tokens.

Both records are validated dataclasses (pydantic): a state is checked when built and when read, and a
file of another format version is refused with a clear error instead of being half understood.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from aar.fileio import write_json_atomic

STATE_FILE = "campaign.json"
STATE_VERSION = 1  # the format of campaign.json this code writes and reads


class StateError(ValueError):
    """``campaign.json`` is not a campaign state this version of aar can read."""


@dataclass
class AgentState:
    """One agent of the campaign."""

    name: str
    index: int
    direction: dict[str, Any]
    seed: int
    token: str
    workspace: str
    log: str
    # [start, end] epoch seconds of each run
    intervals: list[list[float | None]] = field(default_factory=list)
    status: str = "pending"  # pending, running, done, stopped
    pid: int | None = None
    exit_code: int | None = None
    stop_reason: str | None = None
    restarts: int = 0
    node_losses: int = 0  # restarts because the agent's node died (not the agent's doing)
    # where each run (interval) took place: {"node_id", "ip"} on a Ray cluster, None on this machine
    nodes: list[dict[str, str] | None] = field(default_factory=list)

    def seconds(self, now: float | None = None) -> float:
        """Wall seconds this agent has run, over all sessions (an open interval counts up to ``now``)."""
        now = now or time.time()
        return sum((e if e is not None else now) - s for s, e in (_pair(i) for i in self.intervals))

    def seconds_until(self, t: float) -> float:
        """Wall seconds this agent had run by epoch time ``t``."""
        total = 0.0
        for s, e in (_pair(i) for i in self.intervals):
            end = min(e if e is not None else t, t)
            total += max(0.0, end - s)
        return total


def _pair(i: list[Any]) -> tuple[float, float | None]:
    return float(i[0]), (float(i[1]) if len(i) > 1 and i[1] is not None else None)


@dataclass
class CampaignState:
    """Everything needed to continue a campaign after a kill."""

    dir: str
    testbed: str
    options: dict[str, Any]  # CampaignOptions as a dict, plus "view" (the public view's folder)
    server: dict[str, Any]  # {"mode": "local"|"attach", "socket": path, "url": str|None, "admin_token": str}
    agents: list[AgentState]
    created_at: float = field(default_factory=time.time)
    sessions: list[list[float]] = field(default_factory=list)
    finished: bool = False
    version: int = STATE_VERSION
    isolation: str | None = None  # "bubblewrap" or "none (--unsafe-no-sandbox)"; "a, then b" if it changed

    def save(self) -> None:
        """Atomic write (temp file, fsync, rename), mode 600."""
        write_json_atomic(Path(self.dir) / STATE_FILE, asdict(self), mode=0o600, indent=1)

    @classmethod
    def load(cls, directory: str | Path) -> CampaignState:
        """Read ``DIR/campaign.json``; :class:`StateError` if it is of another version or malformed."""
        path = Path(directory) / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{directory} is not a campaign directory (no {STATE_FILE})")
        raw = json.loads(path.read_text())
        version = raw.get("version") if isinstance(raw, dict) else None
        if version != STATE_VERSION:
            raise StateError(
                f"{path} has state version {version!r}; this version of aar reads version {STATE_VERSION}"
            )
        try:
            return TypeAdapter(cls).validate_python(raw)
        except ValidationError as e:
            raise StateError(f"{path} is not a valid campaign state: {e}") from None

    def agent_seconds(self, now: float | None = None) -> float:
        """Cumulative agent wall seconds over all agents and sessions."""
        return sum(a.seconds(now) for a in self.agents)

    def agent_hours_at(self, t: float) -> float:
        """Cumulative agent-hours by epoch time ``t``."""
        return sum(a.seconds_until(t) for a in self.agents) / 3600
