"""The campaign timeline, from the server's own records (never from what agents claim): every scored
submission with its agent, public and private PGR, and cumulative agent-hours at that moment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aar.campaign.state import CampaignState
from aar.client import Client
from aar.fileio import write_json_atomic


def all_submissions(admin: Client, testbed_id: str, agents: set[str] | None = None) -> list[dict[str, Any]]:
    """Every submission on ``testbed_id`` (oldest first), optionally only by ``agents``."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = admin.admin_submissions(testbed_id=testbed_id, limit=100, offset=offset)
        out.extend(s.model_dump() for s in page.items)
        if page.next_offset is None:
            break
        offset = page.next_offset
    if agents is not None:
        out = [s for s in out if s["agent"] in agents]
    return sorted(out, key=lambda s: (s["created_at"], s["id"]))


def build_timeline(state: CampaignState, submissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timeline rows: submission, agent, method, figures, cumulative and own agent-hours."""
    by_name = {a.name: a for a in state.agents}
    rows = []
    for s in submissions:
        a = by_name.get(s["agent"])
        rows.append(
            {
                "submission_id": s["id"],
                "agent": s["agent"],
                "created_at": s["created_at"],
                "method": s["method"],
                "description": s["description"],
                "artifact_sha256": s["artifact_sha256"],
                "released_pgr": s["released_pgr"],
                "public_pgr": s["public_pgr"],
                "private_pgr": s["private_pgr"],
                "agent_hours": round(state.agent_hours_at(s["created_at"]), 5),
                "own_agent_hours": round(a.seconds_until(s["created_at"]) / 3600, 5) if a else None,
            }
        )
    return rows


def write_timeline(state: CampaignState, rows: list[dict[str, Any]]) -> Path:
    """Write ``DIR/timeline.json`` atomically."""
    path = Path(state.dir) / "timeline.json"
    return write_json_atomic(path, rows, indent=1)
