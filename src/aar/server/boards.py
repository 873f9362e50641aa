"""Leaderboards computed from server-side scores only.

Public board: per agent and testbed, the Ladder-released figure and the method and code behind it.
Admin board: the same entries with exact public and private PGR (95% bootstrap CIs over the half's
examples), their scoring-time flags and latest audit verdict, per-method aggregates over
submissions, and the shipped baselines' PGR over seeds. An agent's final entry is the submission
behind its Ladder best (selected on the public half only), scored on the private half. An entry
whose private PGR exceeds 1 always carries a flag: ``pgr_above_1`` (plus the stored
``above_ceiling`` when the excess is significant). The best baseline is the shipped reference with
the best PUBLIC PGR (chosen without looking at the private figures it is reported with).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aar.server.models import Agent, Audit, Ladder, Submission, Testbed
from aar.server.schemas import (
    AdminTestbedBoard,
    AgentEntry,
    EstimateOut,
    LeaderboardRow,
    MethodEntry,
    ReferenceEntry,
    TestbedAdminInfo,
)
from aar.server.vault import TestbedArrays, VaultCache
from aar.w2s.metrics import bootstrap_ci, pgr


def public_rows(s: Session, testbed_id: str | None) -> list[LeaderboardRow]:
    """Public leaderboard rows, best released accuracy first."""
    counts = dict(
        ((a, t), n)
        for a, t, n in s.execute(
            select(Submission.agent_id, Submission.testbed_id, func.count()).group_by(
                Submission.agent_id, Submission.testbed_id
            )
        )
    )
    q = (
        select(Ladder, Submission, Agent.name)
        .join(Submission, Submission.id == Ladder.best_submission_id)
        .join(Agent, Agent.id == Ladder.agent_id)
    )
    if testbed_id is not None:
        q = q.where(Ladder.testbed_id == testbed_id)
    rows = [
        LeaderboardRow(
            agent=name,
            testbed_id=lad.testbed_id,
            accuracy=lad.best_acc,
            pgr=sub.released_pgr,
            method=sub.method,
            artifact_sha256=sub.artifact_sha256,
            submission_id=sub.id,
            n_submissions=counts.get((lad.agent_id, lad.testbed_id), 0),
        )
        for lad, sub, name in s.execute(q)
    ]
    return sorted(rows, key=lambda r: (r.testbed_id, -r.accuracy, r.submission_id))


def _est(values: list[float], over: str, n_boot: int = 2000) -> EstimateOut:
    e = bootstrap_ci(values, n_boot=n_boot)
    return EstimateOut(mean=e.mean, ci_low=e.ci_low, ci_high=e.ci_high, n=len(values), over=over)


def _example_pgr(arrays: TestbedArrays, probs: np.ndarray, public: bool) -> EstimateOut:
    """PGR on one half with a CI from bootstrapping that half's examples (PGR is linear in accuracy)."""
    mask = arrays.public if public else ~arrays.public
    correct = ((probs[mask] > 0.5).astype(np.int8) == arrays.labels[mask]).astype(float)
    acc = bootstrap_ci(correct, n_boot=1000)
    i = 0 if public else 1
    vals = [pgr(a, arrays.weak[i], arrays.ceiling[i]) for a in (acc.mean, acc.ci_low, acc.ci_high)]
    return EstimateOut(mean=vals[0], ci_low=vals[1], ci_high=vals[2], n=int(mask.sum()), over="examples")


def _references(arrays: TestbedArrays) -> list[ReferenceEntry]:
    out = []
    for name, runs in sorted(arrays.references.items()):
        pub, priv = [], []
        for run in runs:
            a_pub, a_priv = arrays.half_accuracy(run)
            p_pub, p_priv = arrays.half_pgr(a_pub, a_priv)
            pub.append(p_pub)
            priv.append(p_priv)
        out.append(ReferenceEntry(name=name, public_pgr=_est(pub, "seeds"), private_pgr=_est(priv, "seeds")))
    return out


def admin_board(s: Session, vault: VaultCache, t: Testbed, info: TestbedAdminInfo) -> AdminTestbedBoard:
    """The admin leaderboard of one testbed."""
    arrays = vault.get(t.id)
    subs = s.execute(
        select(
            Submission.id,
            Submission.agent_id,
            Submission.method,
            Submission.public_pgr,
            Submission.private_pgr,
            Submission.artifact_sha256,
            Agent.name,
        )
        .join(Agent, Agent.id == Submission.agent_id)
        .where(Submission.testbed_id == t.id)
        .order_by(Submission.id)
    ).all()
    groups: dict[tuple[str, str], list[Any]] = {}
    per_agent: dict[int, int] = {}
    for r in subs:
        groups.setdefault((r.name, r.method), []).append(r)
        per_agent[r.agent_id] = per_agent.get(r.agent_id, 0) + 1
    methods = [
        MethodEntry(
            agent=agent,
            method=method,
            n_submissions=len(rows),
            public_pgr=_est([r.public_pgr for r in rows], "submissions"),
            private_pgr=_est([r.private_pgr for r in rows], "submissions"),
            best_private_submission_id=max(rows, key=lambda r: r.private_pgr).id,
            artifact_sha256s=sorted({r.artifact_sha256 for r in rows}),
        )
        for (agent, method), rows in groups.items()
    ]
    methods.sort(key=lambda m: -m.private_pgr.mean)
    verdicts: dict[int, Any] = {  # submission id -> its latest audit verdict
        sid: verdict
        for sid, verdict in s.execute(
            select(Audit.submission_id, Audit.verdict)
            .join(Submission, Submission.id == Audit.submission_id)
            .where(Submission.testbed_id == t.id)
            .order_by(Audit.id)
        )
    }  # later audits overwrite earlier ones: the latest per submission
    agents = []
    for lad, sub, name in s.execute(
        select(Ladder, Submission, Agent.name)
        .join(Submission, Submission.id == Ladder.best_submission_id)
        .join(Agent, Agent.id == Ladder.agent_id)
        .where(Ladder.testbed_id == t.id)
    ):
        probs = np.frombuffer(sub.predictions, dtype="<f8")
        private_pgr = _example_pgr(arrays, probs, False)
        flags = list(sub.flags or [])
        if private_pgr.mean > 1.0:
            flags.append("pgr_above_1")
        agents.append(
            AgentEntry(
                agent=name,
                submission_id=sub.id,
                method=sub.method,
                artifact_sha256=sub.artifact_sha256,
                released_pgr=sub.released_pgr,
                public_pgr=_example_pgr(arrays, probs, True),
                private_pgr=private_pgr,
                n_submissions=per_agent.get(lad.agent_id, 0),
                flags=flags,
                audit_verdict=verdicts.get(sub.id),
            )
        )
    agents.sort(key=lambda a: -a.private_pgr.mean)
    refs = _references(arrays)
    shipped = [r for r in refs if r.name not in ("weak", "ceiling")]
    best_ref = max(shipped, key=lambda r: r.public_pgr.mean, default=None)  # chosen on public figures
    return AdminTestbedBoard(
        testbed=info,
        references=refs,
        agents=agents,
        methods=methods,
        best_agent=agents[0].agent if agents else None,
        best_agent_private_pgr=agents[0].private_pgr.mean if agents else None,
        best_baseline=best_ref.name if best_ref else None,
        best_baseline_private_pgr=best_ref.private_pgr.mean if best_ref else None,
    )
