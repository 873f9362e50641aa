"""Where audits are kept: the server (``record_audit``, the record of truth, shown on the admin
leaderboard) and one JSON file per audited submission under the audit folder (linked from the report).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from aar.client import ApiError, Client
from aar.fileio import write_json_atomic


def as_dict(x: object) -> dict[str, Any]:
    """A pydantic model or a dict as a plain dict."""
    if hasattr(x, "model_dump"):
        return cast(dict[str, Any], x.model_dump())
    return cast(dict[str, Any], dict(x))  # type: ignore[call-overload]


def stored_audits(admin: Client, testbed_id: str) -> dict[int, dict[str, Any]]:
    """The latest stored audit of each submission on ``testbed_id`` ({} when the server has none)."""
    try:
        records = admin.audits(testbed_id=testbed_id)
    except (ApiError, AttributeError):
        return {}
    out: dict[int, dict[str, Any]] = {}
    for r in records:  # latest per submission last
        d = as_dict(r)
        out[int(d["submission_id"])] = d
    return out


def record(admin: Client, submission_id: int, verdict: str, reasons: list[str], figures: dict[str, Any],
           checks: dict[str, Any]) -> dict[str, Any]:
    """Store one audit on the server; returns the stored record."""
    rec = admin.record_audit(submission_id, verdict, reasons, figures, checks)
    return as_dict(rec)


def write_local(folder: Path, audit: dict[str, Any]) -> Path:
    """``folder/<submission id>.json`` (atomic), the per-audit file the report links to."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{audit['submission_id']}.json"
    return write_json_atomic(path, audit, indent=1, sort_keys=True)


def read_local(folder: Path) -> dict[int, dict[str, Any]]:
    """Every per-audit file in ``folder`` (written by this module, operator-side only)."""
    out = {}
    for f in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            d = json.loads(f.read_text())
            out[int(d["submission_id"])] = d
        except (OSError, ValueError, KeyError):
            continue
    return out
