"""The admin leaderboard as the dashboard shows it, built to stay fast while a campaign runs.

It holds the same entries as :func:`aar.server.boards.admin_board` (the API's admin leaderboard): per
agent the submission behind its Ladder best with public and private PGR and their 95% bootstrap
intervals over the half's examples, scoring flags (plus ``pgr_above_1``), the latest audit verdict
and its reasons; the shipped baselines over seeds; the best baseline chosen on its public figure.
What differs is the cost: an entry's intervals depend only on its (immutable) submission and the
baselines only on the (immutable) vault bundle, so both are cached; the per-method table is
aggregated in SQL (count, mean, and a normal interval, mean ± 1.96 standard errors over
submissions) instead of bootstrapping every group on every request.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aar.server.boards import _example_pgr, _references  # the API board's own estimators
from aar.server.errors import ApiError
from aar.server.models import Agent, Audit, Ladder, Submission, Testbed
from aar.server.routers.admin import testbed_admin_info
from aar.server.vault import TestbedArrays, VaultCache

_LOCK = threading.Lock()
_ENTRIES: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()
_REFS: dict[tuple[Any, ...], list[dict[str, Any]]] = {}


def _entry_intervals(
    key: tuple[Any, ...], arrays: TestbedArrays, predictions: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public, private) PGR estimates of one submission, cached by (database, submission id)."""
    with _LOCK:
        hit = _ENTRIES.get(key)
        if hit is not None:
            return hit
    probs = np.frombuffer(predictions, dtype="<f8")
    value = (_example_pgr(arrays, probs, True).model_dump(), _example_pgr(arrays, probs, False).model_dump())
    with _LOCK:
        _ENTRIES[key] = value
        while len(_ENTRIES) > 4096:
            _ENTRIES.popitem(last=False)
    return value


def _baselines(key: tuple[Any, ...], arrays: TestbedArrays) -> list[dict[str, Any]]:
    """The shipped references' PGR over seeds, cached by (database, testbed, bundle hash)."""
    with _LOCK:
        hit = _REFS.get(key)
    if hit is None:
        hit = [r.model_dump() for r in _references(arrays)]
        with _LOCK:
            _REFS[key] = hit
    return hit


def _normal(mean: float, mean_sq: float, n: int) -> dict[str, Any]:
    var = max(0.0, mean_sq - mean * mean) * n / (n - 1) if n > 1 else 0.0
    half = 1.96 * math.sqrt(var / n) if n > 1 else 0.0
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "over": "submissions"}


def method_rows(s: Session, testbed: str, limit: int = 30) -> tuple[list[dict[str, Any]], int]:
    """Per (agent, method): submissions, mean public and private PGR with normal intervals, the best
    private submission; best private mean first. Returns (top ``limit`` rows, number of groups)."""
    q = (
        select(
            Submission.agent_id,
            Agent.name,
            Submission.method,
            func.count(),
            func.avg(Submission.public_pgr),
            func.avg(Submission.public_pgr * Submission.public_pgr),
            func.avg(Submission.private_pgr),
            func.avg(Submission.private_pgr * Submission.private_pgr),
        )
        .join(Agent, Agent.id == Submission.agent_id)
        .where(Submission.testbed_id == testbed)
        .group_by(Submission.agent_id, Agent.name, Submission.method)
    )
    groups = sorted(s.execute(q).all(), key=lambda r: -float(r[6]))
    n_groups = len(groups)
    groups = groups[:limit]
    rank = (
        func.row_number()
        .over(
            partition_by=(Submission.agent_id, Submission.method),
            order_by=(Submission.private_pgr.desc(), Submission.id),
        )
        .label("rank")
    )
    ranked = (
        select(Submission.agent_id, Submission.method, Submission.id, rank)
        .where(Submission.testbed_id == testbed)
        .subquery()
    )
    best = {
        (a, m): i
        for a, m, i in s.execute(
            select(ranked.c.agent_id, ranked.c.method, ranked.c.id).where(ranked.c.rank == 1)
        )
    }
    rows = [
        {
            "agent": name,
            "method": method,
            "n_submissions": int(n),
            "public_pgr": _normal(float(pub), float(pub_sq), int(n)),
            "private_pgr": _normal(float(priv), float(priv_sq), int(n)),
            "best_private_submission_id": best.get((agent_id, method)),
        }
        for agent_id, name, method, n, pub, pub_sq, priv, priv_sq in groups
    ]
    return rows, n_groups


def _testbed(s: Session, testbed: str) -> Testbed:
    t = s.get(Testbed, testbed)
    if t is None:
        raise ApiError(404, "unknown_testbed", f"no testbed with id {testbed!r}")
    return t


def estimate(audit: Audit | None, key: str) -> dict[str, Any] | None:
    """An audit's figure ``key`` (``{"mean", "ci_low", "ci_high", ...}``), or None when absent."""
    value = ((audit.figures if audit else None) or {}).get(key)
    if isinstance(value, dict) and all(
        isinstance(value.get(k), (int, float)) for k in ("mean", "ci_low", "ci_high")
    ):
        return value
    return None


def admin_leaderboard(s: Session, vault: VaultCache, testbed: str, db_key: str) -> dict[str, Any]:
    """The admin board of one testbed (see the module docstring for what is cached)."""
    t = _testbed(s, testbed)
    arrays = vault.get(testbed)
    counts = dict(
        s.execute(
            select(Submission.agent_id, func.count())
            .where(Submission.testbed_id == testbed)
            .group_by(Submission.agent_id)
        ).all()
    )
    entries = s.execute(
        select(Ladder.agent_id, Agent.name, Submission)
        .join(Submission, Submission.id == Ladder.best_submission_id)
        .join(Agent, Agent.id == Ladder.agent_id)
        .where(Ladder.testbed_id == testbed)
    ).all()
    audits = {
        a.submission_id: a
        for a in s.scalars(
            select(Audit).where(Audit.submission_id.in_([sub.id for _, _, sub in entries])).order_by(Audit.id)
        )
    }
    agents: list[dict[str, Any]] = []
    for agent_id, name, sub in entries:
        public, private = _entry_intervals((db_key, sub.id), arrays, sub.predictions)
        flags = list(sub.flags or [])
        if private["mean"] > 1.0:
            flags.append("pgr_above_1")
        audit = audits.get(sub.id)
        agents.append(
            {
                "agent": name,
                "submission_id": sub.id,
                "method": sub.method,
                "artifact_sha256": sub.artifact_sha256,
                "released_pgr": sub.released_pgr,
                "public_pgr": public,
                "private_pgr": private,
                "n_submissions": counts.get(agent_id, 0),
                "flags": flags,
                "audit_verdict": audit.verdict if audit else None,
                "audit_reasons": list(audit.reasons) if audit else [],
                "audited_private_pgr": estimate(audit, "audited_private_pgr"),
                "audited_final_pgr": estimate(audit, "audited_final_pgr"),
            }
        )
    agents.sort(key=lambda a: -a["private_pgr"]["mean"])
    refs = _baselines((db_key, testbed, t.bundle_sha256), arrays)
    shipped = [r for r in refs if r["name"] not in ("weak", "ceiling")]
    best_ref = max(shipped, key=lambda r: r["public_pgr"]["mean"], default=None)  # chosen on public
    methods, n_methods = method_rows(s, testbed)
    best = agents[0] if agents else None
    return {
        "testbed": testbed_admin_info(t).model_dump(),
        "agents": agents,
        "references": refs,
        "shipped": shipped,
        "methods": methods,
        "n_methods": n_methods,
        "best_agent": best["agent"] if best else None,
        "best_agent_private_pgr": best["private_pgr"]["mean"] if best else None,
        "best_baseline": best_ref["name"] if best_ref else None,
        "best_baseline_public_pgr": best_ref["public_pgr"]["mean"] if best_ref else None,
        "best_baseline_private_pgr": best_ref["private_pgr"]["mean"] if best_ref else None,
        "beats_baseline": None
        if best is None or best_ref is None
        else best["private_pgr"]["mean"] > best_ref["private_pgr"]["mean"],
    }


def best_baseline(s: Session, vault: VaultCache, testbed: str, db_key: str) -> dict[str, Any] | None:
    """The best shipped baseline (chosen on its public PGR) with both halves' means, for the chart."""
    t = _testbed(s, testbed)
    shipped = [
        r
        for r in _baselines((db_key, testbed, t.bundle_sha256), vault.get(testbed))
        if r["name"] not in ("weak", "ceiling")
    ]
    best = max(shipped, key=lambda r: r["public_pgr"]["mean"], default=None)
    if best is None:
        return None
    return {
        "name": best["name"],
        "public": best["public_pgr"]["mean"],
        "private": best["private_pgr"]["mean"],
    }
