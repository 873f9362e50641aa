"""Accuracy, PGR, and intervals that are honest about both seed noise and test-sample noise.

PGR (performance gap recovered) = (transfer - weak) / (ceiling - weak). The weak and ceiling
baselines are fixed per testbed (means over seeds, as in the original study); a transfer figure
is computed per seed and then aggregated.

Two sources of noise make a PGR figure uncertain: the seed (teacher, student initialisation and
data order) and the finite test sample. :func:`pgr_estimate` combines both: a t-interval over
seeds (a percentile bootstrap over 3-5 seeds is just [min, max] and covers the mean far less than
95% of the time) with the variance of an example bootstrap (which resamples the same test examples
for the method, the weak baseline and the ceiling together, so their shared sample noise cancels),
joined by the Welch-Satterthwaite degrees of freedom. A deterministic method therefore still gets
an interval as wide as its test sample warrants. :func:`paired_comparison` tests a difference of
two methods on the same examples (and the same seeds where both have them) the same way, with a
one-sided p-value for "a beats b".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
from scipy import stats as _stats


class GapError(ValueError):
    """The ceiling does not beat the weak baseline, so PGR is undefined."""


def accuracy(probs: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Fraction of examples where the thresholded probability (p > 0.5) matches the 0/1 label."""
    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels, dtype=int)
    if p.shape != y.shape:
        raise ValueError(f"accuracy: {p.size} predictions for {y.size} labels")
    if p.size == 0:
        raise ValueError("accuracy: no examples")
    return float(np.mean((p > 0.5).astype(int) == y))


def pgr(transfer_acc: float, weak_acc: float, ceiling_acc: float, min_gap: float = 1e-9) -> float:
    """Performance gap recovered; raises GapError when ceiling - weak is zero or negative."""
    gap = ceiling_acc - weak_acc
    if not math.isfinite(gap) or gap <= min_gap:
        raise GapError(
            f"PGR undefined: ceiling accuracy {ceiling_acc:.4f} does not exceed weak accuracy {weak_acc:.4f}"
        )
    return (transfer_acc - weak_acc) / gap


# Bootstrap resamples, for every interval here (callers that need speed pass fewer): at 2,000 the
# percentile and spread estimates move by well under the reported precision between resampling seeds.
N_BOOT = 2000

@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with a 95% bootstrap confidence interval and the per-seed values."""

    mean: float
    ci_low: float
    ci_high: float
    values: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: mean, ci_low, ci_high, values."""
        return asdict(self)


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> Estimate:
    """Mean of ``values`` with a percentile bootstrap CI (resampling the values with replacement).

    With a single value the interval collapses to that value: there is no spread to estimate.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci: no values")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"bootstrap_ci: non-finite values {v.tolist()}")
    mean = float(v.mean())
    if v.size == 1:
        return Estimate(mean, mean, mean, v.tolist())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Estimate(mean, float(lo), float(hi), v.tolist())


def _as_matrix(correct: np.ndarray | Sequence[Sequence[float]], what: str) -> np.ndarray:
    m = np.asarray(correct, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{what}: expected a (seeds x examples) matrix of 0/1 correctness, got {m.shape}")
    return m


def _seed_var(values: np.ndarray) -> tuple[float, int]:
    """Variance of the mean of per-seed ``values`` and its degrees of freedom (0 for one seed)."""
    if values.size < 2:
        return 0.0, 0
    return float(np.var(values, ddof=1)) / values.size, values.size - 1


def _robust_var(boot: np.ndarray) -> float:
    """Variance of a bootstrap distribution from its central 68% (half the 16-84% range, squared).

    PGR is a ratio: on a small sample, resamples where the weak-ceiling gap nearly vanishes give a few
    huge values that would blow up a plain variance; for a normal distribution both agree.
    """
    if boot.size < 2:
        return 0.0
    lo, hi = np.quantile(boot, [0.15865, 0.84135])
    return float((hi - lo) / 2.0) ** 2


def _combined(
    mean: float, seed_parts: list[tuple[float, int]], boot: np.ndarray, level: float
) -> tuple[float, float, float, float]:
    """(low, high, standard error, df) of ``mean`` from seed variances and an example bootstrap.

    ``seed_parts`` are (variance, degrees of freedom) pairs; the example bootstrap's variance is
    taken to have infinite degrees of freedom (thousands of draws). Welch-Satterthwaite joins them.
    """
    var_ex = _robust_var(boot)
    var = var_ex + sum(v for v, _ in seed_parts)
    if var <= 0.0:
        return mean, mean, 0.0, math.inf
    denom = sum(v * v / df for v, df in seed_parts if df > 0 and v > 0)
    df = var * var / denom if denom > 0 else math.inf
    dist = _stats.t(df) if math.isfinite(df) else _stats.norm()
    q = float(dist.ppf(0.5 + level / 2.0))
    se = math.sqrt(var)
    return mean - q * se, mean + q * se, se, df


@dataclass(frozen=True)
class PgrEstimate:
    """Mean PGR over seeds with a 95% interval covering seed and test-sample noise."""

    mean: float
    ci_low: float
    ci_high: float
    values: list[float]  # per-seed PGR
    se: float
    n_seeds: int
    n_examples: int
    method: str = "t over seeds + example bootstrap (Welch-Satterthwaite)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _boot_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _pgr_rows(acc: np.ndarray, weak: np.ndarray | float, ceiling: np.ndarray | float) -> np.ndarray:
    gap = np.asarray(ceiling, dtype=float) - np.asarray(weak, dtype=float)
    if np.any(gap <= 1e-9):
        raise GapError("PGR undefined: the ceiling does not exceed the weak baseline on this sample")
    return cast(np.ndarray, (acc - weak) / gap)


def pgr_estimate(
    correct: np.ndarray | Sequence[Sequence[float]],
    weak_correct: np.ndarray | Sequence[Sequence[float]],
    ceiling_correct: np.ndarray | Sequence[Sequence[float]],
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> PgrEstimate:
    """PGR of a method from its per-seed correctness on one test sample, with an honest interval.

    ``correct`` is (seeds x examples) 0/1: whether each seed's prediction was right on each example;
    ``weak_correct`` and ``ceiling_correct`` are the same for the weak teacher and the ceiling on the
    same examples (their seed means are the fixed baselines). The example bootstrap resamples one set
    of example indices for all three, so noise they share cancels.
    """
    m = _as_matrix(correct, "correct")
    w = _as_matrix(weak_correct, "weak_correct")
    c = _as_matrix(ceiling_correct, "ceiling_correct")
    n = m.shape[1]
    if w.shape[1] != n or c.shape[1] != n:
        raise ValueError("pgr_estimate: method, weak and ceiling must be scored on the same examples")
    w_acc, c_acc = float(w.mean()), float(c.mean())
    values = _pgr_rows(m.mean(axis=1), w_acc, c_acc)
    mean = float(values.mean())
    idx = _boot_index(n, n_boot, seed)
    # per-example means over seeds, resampled: accuracy of the seed-mean on each bootstrap sample
    mb, wb, cb = (x.mean(axis=0)[idx].mean(axis=1) for x in (m, w, c))
    ok = (cb - wb) > 1e-9
    boot = (mb[ok] - wb[ok]) / (cb[ok] - wb[ok])
    lo, hi, se, _ = _combined(mean, [_seed_var(values)], boot, level)
    return PgrEstimate(mean, lo, hi, values.tolist(), se, m.shape[0], n)


@dataclass(frozen=True)
class Comparison:
    """PGR of ``a`` minus PGR of ``b`` on the same examples, with its interval and p-values."""

    diff: float
    ci_low: float
    ci_high: float
    p_greater: float  # one-sided: H0 a <= b
    p_two_sided: float
    paired_seeds: bool
    n_examples: int
    method: str = "paired over examples (and seeds); t over seeds + example bootstrap"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def paired_comparison(
    a_correct: np.ndarray | Sequence[Sequence[float]],
    b_correct: np.ndarray | Sequence[Sequence[float]],
    weak_correct: np.ndarray | Sequence[Sequence[float]],
    ceiling_correct: np.ndarray | Sequence[Sequence[float]],
    level: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
    paired_seeds: bool | None = None,
) -> Comparison:
    """Is method ``a`` better than ``b``? A paired test on the same examples.

    Rows of ``a_correct`` and ``b_correct`` are seeds. When both have the same number of rows and
    ``paired_seeds`` is not False, row i of both is taken to be the same seed (same teacher), and the
    seed part of the variance comes from the per-seed differences; otherwise from each side's own
    spread. The example part comes from one bootstrap of example indices shared by both methods.
    """
    a = _as_matrix(a_correct, "a_correct")
    b = _as_matrix(b_correct, "b_correct")
    w = _as_matrix(weak_correct, "weak_correct")
    c = _as_matrix(ceiling_correct, "ceiling_correct")
    n = a.shape[1]
    if b.shape[1] != n or w.shape[1] != n or c.shape[1] != n:
        raise ValueError("paired_comparison: both methods and the baselines need the same examples")
    pair = a.shape[0] == b.shape[0] if paired_seeds is None else paired_seeds
    if pair and a.shape[0] != b.shape[0]:
        raise ValueError("paired_comparison: paired seeds need the same number of seeds on both sides")
    w_acc, c_acc = float(w.mean()), float(c.mean())
    pa, pb = _pgr_rows(a.mean(axis=1), w_acc, c_acc), _pgr_rows(b.mean(axis=1), w_acc, c_acc)
    diff = float(pa.mean() - pb.mean())
    seed_parts = [_seed_var(pa - pb)] if pair else [_seed_var(pa), _seed_var(pb)]
    idx = _boot_index(n, n_boot, seed)
    gap = c.mean(axis=0)[idx].mean(axis=1) - w.mean(axis=0)[idx].mean(axis=1)
    ok = gap > 1e-9
    d_ex = a.mean(axis=0) - b.mean(axis=0)
    boot = d_ex[idx].mean(axis=1)[ok] / gap[ok]
    lo, hi, se, df = _combined(diff, seed_parts, boot, level)
    if se == 0.0:
        p_gt = 0.0 if diff > 0 else 1.0
        p_two = 0.0 if diff != 0 else 1.0
    else:
        dist = _stats.t(df) if math.isfinite(df) else _stats.norm()
        t = diff / se
        p_gt, p_two = float(dist.sf(t)), float(2 * dist.sf(abs(t)))
    return Comparison(diff, lo, hi, p_gt, p_two, bool(pair), n)
