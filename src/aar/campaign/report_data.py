"""The campaign report's data (``DIR/report.json``) as typed records.

:func:`aar.campaign.report.collect` builds a :class:`ReportData` (one :class:`AgentRow` per agent), the
audit adds its sections (:func:`aar.audit.report.augment`: audited ranking, headline, generalisation,
controls) as further keys, and :func:`read_report` is how code reads the file back (``aar report``,
the campaign's summary line, ``aar compare``): validated, with its format version checked. Files
written before the version existed are version 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

REPORT_FILE = "report.json"
REPORT_VERSION = 1


class ReportError(ValueError):
    """``report.json`` is missing, malformed or of a version this aar does not read."""


class AgentRow(BaseModel):
    """One agent's line of the report: its entry (the submission behind its Ladder best) and its cost."""

    model_config = ConfigDict(extra="allow")  # the audit adds "audit"

    name: str
    direction: str
    agent_hours: float
    submissions: int
    status: str
    stop_reason: str | None
    released_pgr: float | None
    entry_submission_id: int | None
    method: str | None
    artifact_sha256: str | None
    public_pgr: dict[str, Any] | None  # {mean, ci_low, ci_high, ...}
    private_pgr: dict[str, Any] | None
    tokens: int
    cost_usd: float
    usd_per_agent_hour: float | None = None  # not in reports written before cost per hour existed
    token_detail: dict[str, Any] | None = None  # LLM backends only
    model_calls: int | None = None
    model: str | None = None
    placements: list[dict[str, Any]] | None = None  # Ray campaigns: node of each run (start, end, ip, id)
    node_losses: int | None = None  # Ray campaigns: restarts because the agent's node died


class ReportData(BaseModel):
    """Everything ``report.md`` is written from."""

    model_config = ConfigDict(extra="allow")  # the audit's sections (aar.audit.report.augment)

    dir: str
    testbed: str
    options: dict[str, Any]  # the campaign options without the admin token
    same_direction: str | None
    n_agents: int
    weak_private_acc: float
    ceiling_private_acc: float
    n_private: int
    best_private_pgr: float | None
    best_private_pgr_ci: dict[str, Any] | None
    best_agent: str | None
    best_method: str | None
    best_public_selected_private_pgr: float | None
    best_baseline: str | None
    best_baseline_private_pgr: float | None
    best_baseline_private_pgr_ci: dict[str, Any] | None
    beats_best_baseline: bool
    baselines: dict[str, dict[str, Any]]
    agent_hours: float
    submissions: int
    cost_usd: float
    tokens: int
    usd_per_agent_hour: float | None = None  # not in reports written before cost per hour existed
    prices: dict[str, Any] | None = None  # the price table version of an LLM campaign
    agents: list[AgentRow]
    ranking: str
    ci: str
    version: int = REPORT_VERSION
    headline: dict[str, Any] | None = None  # the audited headline entry (set by the audit)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict (only the keys that were set, in the order above)."""
        return self.model_dump(mode="json", exclude_unset=True)


def read_report(directory: str | Path) -> ReportData:
    """``DIR/report.json``, validated; :class:`ReportError` when it is missing, malformed or of another
    version."""
    path = Path(directory) / REPORT_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"{directory} has no {REPORT_FILE}") from None
    except ValueError as e:
        raise ReportError(f"{path} is not JSON: {e}") from None
    version = raw.get("version", 1) if isinstance(raw, dict) else None
    if version != REPORT_VERSION:
        raise ReportError(
            f"{path} has report version {version!r}; this version of aar reads {REPORT_VERSION}"
        )
    try:
        return ReportData.model_validate(raw)
    except ValidationError as e:
        raise ReportError(f"{path} is not a valid campaign report: {e}") from None
