"""Scoring rules: prediction checks, the Ladder release of public figures, submission budgets.

Ladder (Blum & Hardt 2015, "The Ladder: A Reliable Leaderboard for Machine Learning Competitions",
fixed-margin variant). Per agent and testbed the server keeps a released best public accuracy R.
A new submission with public accuracy a changes R only when a > R + eta; the new R is then a with
its error rate 1 - a rounded to the nearest multiple of eta. Otherwise R is released again.
The default margin is eta = 1/sqrt(n_public) (about two standard errors of a public accuracy; set
``ladder_margin`` to override): a single flipped prediction (a change of 1/n_public) never moves
the released figure, and the whole transcript an agent sees is fixed by at most 1/eta update
points. The released PGR is the released accuracy put through the public half's fixed weak and
ceiling baselines. Nothing else about the labels (counts, per-example correctness, which ids are
public) is ever returned; the private-half figures are stored for the final ranking only.

Budgets: per agent, a sliding one-hour window and a lifetime total; exhausted budgets get 429.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, func, select

from aar.server.errors import ApiError
from aar.server.models import Submission
from aar.server.schemas import BudgetStatus, SubmissionIn
from aar.server.vault import TestbedArrays

SUBMISSIONS = Submission.__table__
HOUR = 3600.0


def default_margin(n_public: int) -> float:
    """The default Ladder margin in public accuracy: 1/sqrt(n_public)."""
    return 1.0 / math.sqrt(max(n_public, 1))


def ladder_step(best: float | None, acc: float, margin: float) -> tuple[float, bool]:
    """Released accuracy after a submission with public accuracy ``acc``, and whether it moved."""
    if best is None or acc > best + margin:
        error_steps = round((1.0 - acc) / margin)  # the loss (error rate) is what gets rounded
        return max(0.0, 1.0 - error_steps * margin), True
    return best, False


def canonical_probs(arrays: TestbedArrays, sub: SubmissionIn) -> np.ndarray:
    """Probabilities in the testbed's canonical order; 422 on any mismatch with the test ids."""
    ids, probs = sub.example_ids, sub.probabilities
    n = len(arrays.ids)
    if len(ids) != len(probs):
        raise ApiError(422, "length_mismatch", f"{len(ids)} example ids but {len(probs)} probabilities")
    p = np.asarray(probs, dtype=np.float64)
    bad = ~np.isfinite(p) | (p < 0.0) | (p > 1.0)
    if bad.any():
        where = [ids[i] for i in np.flatnonzero(bad)[:5]]
        raise ApiError(
            422,
            "bad_probability",
            "probabilities must be finite and in [0, 1]",
            {"example_ids": where, "count": int(bad.sum())},
        )
    if ids == arrays.ids:
        return p
    seen = set(ids)
    if len(seen) != len(ids):
        dup: list[str] = []
        s: set[str] = set()
        for i in ids:
            if i in s and len(dup) < 5:
                dup.append(i)
            s.add(i)
        raise ApiError(422, "duplicate_ids", "example ids must be unique", {"example_ids": dup})
    pos = arrays.pos
    unknown = [i for i in ids if i not in pos]
    if unknown:
        raise ApiError(
            422,
            "unknown_ids",
            "ids that are not test examples of this testbed",
            {"example_ids": unknown[:5], "count": len(unknown)},
        )
    if len(ids) != n:
        missing = [i for i in arrays.ids if i not in seen]
        raise ApiError(
            422,
            "missing_ids",
            "a probability is needed for every test example",
            {"example_ids": missing[:5], "count": len(missing)},
        )
    out = np.empty(n, dtype=np.float64)
    out[[pos[i] for i in ids]] = p
    return out


@dataclass(frozen=True)
class Limits:
    """Effective budget of an agent (None = unlimited)."""

    per_hour: int | None
    total: int | None


def budget_status(
    conn: Connection, agent_id: int, used_total: int, limits: Limits, now: float | None = None
) -> BudgetStatus:
    """Current usage of an agent against its limits (the hour is a sliding window)."""
    now = time.time() if now is None else now
    count, oldest = conn.execute(
        select(func.count(), func.min(SUBMISSIONS.c.created_at)).where(
            SUBMISSIONS.c.agent_id == agent_id, SUBMISSIONS.c.created_at > now - HOUR
        )
    ).one()
    return BudgetStatus(
        per_hour=limits.per_hour,
        total=limits.total,
        used_last_hour=int(count),
        used_total=used_total,
        hour_resets_at=None if oldest is None else float(oldest) + HOUR,
    )


def check_budget(status: BudgetStatus, now: float | None = None) -> None:
    """Raise 429 when one more submission would exceed the budget."""
    now = time.time() if now is None else now
    if status.total is not None and status.used_total >= status.total:
        raise ApiError(
            429,
            "budget_exhausted",
            f"total submission budget of {status.total} is used up; it does not reset",
            {"limit": "total", "budget": status.model_dump(), "resets_at": None},
        )
    if status.per_hour is not None and status.used_last_hour >= status.per_hour:
        resets = status.hour_resets_at if status.hour_resets_at is not None else now + HOUR
        wait = max(1, math.ceil(resets - now))
        raise ApiError(
            429,
            "budget_exhausted",
            f"hourly submission budget of {status.per_hour} is used up; retry in {wait} s",
            {"limit": "per_hour", "budget": status.model_dump(), "resets_at": resets},
            headers={"Retry-After": str(wait)},
        )
