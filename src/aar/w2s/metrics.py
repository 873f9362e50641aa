"""Accuracy, PGR and bootstrap confidence intervals.

PGR (performance gap recovered) = (transfer - weak) / (ceiling - weak). The weak and ceiling
baselines are fixed per testbed (means over seeds, as in the original study); a transfer figure
is computed per seed and then aggregated with a bootstrap confidence interval over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


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


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with a 95% bootstrap confidence interval and the per-seed values."""

    mean: float
    ci_low: float
    ci_high: float
    values: list[float]

    def to_dict(self) -> dict:
        """JSON-ready form: mean, ci_low, ci_high, values."""
        return asdict(self)

    def fmt(self, digits: int = 3) -> str:
        """Human form, e.g. '0.412 [0.350, 0.470]'."""
        return f"{self.mean:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_boot: int = 10_000, seed: int = 0
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
