"""Scoring rules: prediction checks, the Ladder release of public figures, flags, submission budgets.

The Ladder (Blum & Hardt 2015, "The Ladder: A Reliable Leaderboard for Machine Learning
Competitions"). Per agent and testbed the server keeps a released best public accuracy R and the
submission behind it. A new submission either moves R (and becomes the best) or R is released
again. Nothing else about the labels (counts, per-example correctness, which ids are public) is
ever returned; the private-half figures are stored for the final ranking only. The released PGR is
the released accuracy put through the public half's fixed weak and ceiling baselines. Two rules:

``paired`` (the default; the paper's parameter-free Ladder with a stricter threshold). Let
d_i = correct_new_i - correct_best_i over the n public examples (0/1 correctness of the thresholded
prediction), so mean(d) is the accuracy improvement over the agent's best and
SE = sd(d) / sqrt(n) its standard error. The submission moves R only when

    mean(d) > max(2 * SE, 4 / n)

and R is then its accuracy with the error rate rounded to the grid ``max(0.01, 1/n)`` (0.01 resolves
accuracy differences of 0.02). Why this threshold: 2 * SE is a one-sided paired test at about the
2.3% level, so a submission that only differs from the best by noise (the boosting attack's random
vectors, re-submitted seeds of the same method) almost never moves the figure, while a real gain of
0.03 accuracy on 1,000 public examples whose predictions differ from the best's on up to ~20% of the
examples clears it (SE <= 0.0141). The 4/n floor is a hard guarantee independent of the SE: a
submission that differs from the agent's best in at most four predictions (in particular any single
flipped prediction, whatever the label) never moves the figure (for a single flip 2 * SE is itself
about 2/n, twice the gain). As with any threshold, a submission just below it can be pushed over
by one more change; what crosses is then still a significant gain over the agent's best itself. A
submission that changes many predictions can of course cross the threshold: the information an
agent gets is then one release per significant, at least 5-example improvement, which is what the
Ladder's transcript bound counts. The receipt's ``margin`` is the grid, not the data-dependent
threshold (which would reveal mean(d) through the SE).

``fixed`` (the paper's fixed-margin Ladder). R moves only when a > R + eta; the new R is a with
its error rate 1 - a rounded to the nearest multiple of eta. The default margin is
eta = 1/sqrt(n_public) (about two standard errors of a public accuracy; ``ladder_margin`` overrides
it). One Ladder step is then 0.08-0.16 PGR on the built-in testbeds, and a single flip can still
move the figure when the previous submission sat just below the margin.

Flags (admin only, stored on the submission at scoring time; agents never see them):
``above_ceiling`` when the private-half accuracy is significantly above the private ceiling's,
by a one-sided exact binomial test of the private correct count against the ceiling's accuracy
(H0: true accuracy <= ceiling accuracy; flagged when p < 0.01) - a W2S method should not beat a
model trained on ground truth, and a significant excess points at leaked labels;
``near_constant`` when at least 95% of the test predictions share one label.

Budgets: per agent, a sliding one-hour window and a lifetime total; exhausted budgets get 429.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats
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
    """Fixed-margin Ladder: released accuracy after a submission with public accuracy ``acc``, and
    whether it moved."""
    if best is None or acc > best + margin:
        return round_to_grid(acc, margin), True
    return best, False


PAIRED_SE_MULTIPLE = 2.0  # improvement must exceed this many standard errors of the paired differences
PAIRED_MIN_NET = 4  # ... and this many examples' worth (4/n): <= 4 changed predictions never move it
PAIRED_GRID = 0.01  # released accuracies are multiples of max(PAIRED_GRID, 1/n_public)


def round_to_grid(acc: float, step: float) -> float:
    """``acc`` with its error rate rounded to the nearest multiple of ``step`` (the grid is anchored at
    zero error, so a perfect submission shows 1.0)."""
    error_steps = round((1.0 - acc) / step)
    return max(0.0, 1.0 - error_steps * step)


def paired_grid(n_public: int) -> float:
    """The release grid of the paired Ladder: 0.01 accuracy, or 1/n_public on tiny testbeds."""
    return max(PAIRED_GRID, 1.0 / max(n_public, 1))


def paired_threshold(diff: np.ndarray) -> float:
    """Improvement in accuracy that ``diff`` (per-example correctness differences) must exceed:
    ``max(2 * SE, 4 / n)`` with SE the standard error of the mean difference."""
    n = diff.size
    se = float(np.std(diff, ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return max(PAIRED_SE_MULTIPLE * se, PAIRED_MIN_NET / n)


def public_correct(arrays: TestbedArrays, probs: np.ndarray) -> np.ndarray:
    """0/1 correctness (int8) of thresholded ``probs`` on the public half."""
    correct: np.ndarray = (
        (probs[arrays.public] > 0.5).astype(np.int8) == arrays.labels[arrays.public]
    ).astype(np.int8)
    return correct


def paired_release(
    correct: np.ndarray, best: float | None, best_correct: np.ndarray | None
) -> tuple[float, bool]:
    """Paired Ladder on public-half correctness vectors: released accuracy and whether it moved.

    ``best`` is the released accuracy and ``best_correct`` the correctness of the agent's best
    submission so far (None before its first submission, which is always released).
    """
    grid = paired_grid(correct.size)
    acc = float(correct.mean())
    if best is None or best_correct is None:
        return round_to_grid(acc, grid), True
    diff = correct.astype(np.float64) - best_correct
    if float(diff.mean()) > paired_threshold(diff):
        return max(best, round_to_grid(acc, grid)), True
    return best, False


def paired_ladder_step(
    arrays: TestbedArrays, probs: np.ndarray, best: float | None, best_probs: np.ndarray | None
) -> tuple[float, bool]:
    """Paired Ladder: released accuracy after a submission with predictions ``probs``, and whether it
    moved; ``best_probs`` are the predictions of the agent's best so far (None before the first)."""
    best_correct = None if best_probs is None else public_correct(arrays, best_probs)
    return paired_release(public_correct(arrays, probs), best, best_correct)


ABOVE_CEILING_P = 0.01  # one-sided binomial p-value below which "above_ceiling" is set
NEAR_CONSTANT_SHARE = 0.95  # share of the most common predicted label from which "near_constant" is set


def majority_share(probs: np.ndarray) -> float:
    """Share of the most common thresholded label among ``probs``."""
    ones = float(np.mean(np.asarray(probs) > 0.5))
    return max(ones, 1.0 - ones)


def above_ceiling_p(n_correct: int, n: int, ceiling_acc: float) -> float:
    """One-sided exact binomial p-value of ``n_correct`` of ``n`` right under H0: accuracy <= ceiling."""
    if n <= 0:
        return 1.0
    return float(stats.binom.sf(n_correct - 1, n, min(max(ceiling_acc, 0.0), 1.0)))


@functools.lru_cache(maxsize=1024)
def above_ceiling_min_correct(n: int, ceiling_acc: float) -> int:
    """The smallest private correct count (of ``n``) that is flagged ``above_ceiling``; ``n + 1`` when
    none is. The p-value falls as the count grows, so a binary search over the exact test finds it
    once per testbed, and scoring a submission compares one integer instead of running the test."""
    lo, hi = 0, n + 1  # the answer lies in [lo, hi]; n + 1 stands for "never"
    while lo < hi:
        mid = (lo + hi) // 2
        if above_ceiling_p(mid, n, ceiling_acc) < ABOVE_CEILING_P:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Assessment:
    """What one pass over a submission's predictions gives: per-half accuracy, the public half's
    correctness vector (for the paired Ladder) and the admin-only flags."""

    public_acc: float
    private_acc: float
    public_correct: np.ndarray  # int8 0/1 over the public half
    flags: list[str]


def assess(arrays: TestbedArrays, probs: np.ndarray) -> Assessment:
    """Score ``probs`` (canonical order) in one vectorised pass: the figures of
    :meth:`TestbedArrays.half_accuracy` and :func:`public_correct`, and the flags of the module
    docstring (``above_ceiling`` by :func:`above_ceiling_p` < 0.01, ``near_constant`` by
    :func:`majority_share` >= 0.95)."""
    predicted = probs > 0.5
    right = predicted == arrays.labels
    public_correct = right[arrays.public].astype(np.int8)
    n_pub, n = public_correct.size, right.size
    n_priv = n - n_pub
    if n_pub == 0 or n_priv == 0:
        raise ValueError("accuracy: no examples")
    pub_right = int(np.count_nonzero(public_correct))
    priv_right = int(np.count_nonzero(right)) - pub_right
    flags = []
    if priv_right >= above_ceiling_min_correct(n_priv, float(arrays.ceiling[1])):
        flags.append("above_ceiling")
    ones = int(np.count_nonzero(predicted)) / n
    if max(ones, 1.0 - ones) >= NEAR_CONSTANT_SHARE:
        flags.append("near_constant")
    return Assessment(pub_right / n_pub, priv_right / n_priv, public_correct, flags)


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
