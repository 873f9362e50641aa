"""Which submissions an audit looks at.

Three sources, merged (a submission picked for several reasons is audited once):
  * each agent's *entry*: the submission behind its Ladder best (chosen on the public half only);
  * the top K submissions by private PGR (so a high private figure never goes unexamined);
  * every submission flagged at scoring time (``above_ceiling``, ``near_constant``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aar.campaign.timeline import all_submissions
from aar.client import Client


@dataclass
class Target:
    """A submission to audit, with its server-side figures and why it was picked."""

    submission_id: int
    agent: str
    method: str
    artifact_sha256: str
    seed: int | None
    public_pgr: float | None
    private_pgr: float | None
    released_pgr: float | None
    flags: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _target(s: dict[str, Any], why: str) -> Target:
    return Target(
        submission_id=int(s["id"]),
        agent=s["agent"],
        method=s.get("method", ""),
        artifact_sha256=s.get("artifact_sha256", ""),
        seed=s.get("seed"),
        public_pgr=s.get("public_pgr"),
        private_pgr=s.get("private_pgr"),
        released_pgr=s.get("released_pgr"),
        flags=list(s.get("flags") or []),
        why=[why],
    )


def choose(submissions: list[dict[str, Any]], entry_ids: list[int], top: int) -> list[Target]:
    """Entries, the top ``top`` by private PGR and flagged submissions, in that order, without repeats."""
    by_id = {int(s["id"]): s for s in submissions}
    out: dict[int, Target] = {}

    def add(s: dict[str, Any], why: str) -> None:
        sid = int(s["id"])
        if sid in out:
            if why not in out[sid].why:
                out[sid].why.append(why)
        else:
            out[sid] = _target(s, why)

    for sid in entry_ids:
        if sid in by_id:
            add(by_id[sid], "entry")
    ranked = sorted(
        (s for s in submissions if s.get("private_pgr") is not None), key=lambda s: -float(s["private_pgr"])
    )
    for s in ranked[: max(0, top)]:
        add(s, "top")
    for s in submissions:
        if s.get("flags"):
            add(s, "flagged")
    return list(out.values())


def select(admin: Client, testbed_id: str, agents: set[str] | None = None, top: int = 5) -> list[Target]:
    """The submissions to audit on ``testbed_id`` (optionally only those of ``agents``)."""
    subs = all_submissions(admin, testbed_id, agents)
    boards = admin.admin_leaderboard(testbed_id)
    entries = [e for b in boards for e in b.agents if agents is None or e.agent in agents]
    return choose(subs, [e.submission_id for e in entries], top)
