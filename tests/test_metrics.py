import math

import numpy as np
import pytest

from aar.w2s.metrics import GapError, accuracy, bootstrap_ci, pgr


def test_accuracy_thresholds_at_half():
    assert accuracy([0.9, 0.2, 0.6, 0.5], [1, 0, 0, 1]) == 0.5


def test_pgr_and_gap_error():
    assert math.isclose(pgr(0.7, 0.6, 0.8), 0.5)
    with pytest.raises(GapError, match="does not exceed"):
        pgr(0.7, 0.8, 0.8)
    with pytest.raises(GapError):
        pgr(0.7, 0.8, 0.6)


def test_bootstrap_ci_brackets_mean_and_is_deterministic():
    est = bootstrap_ci([0.1, 0.2, 0.3, 0.4])
    assert est.ci_low <= est.mean <= est.ci_high
    assert est.values == [0.1, 0.2, 0.3, 0.4]
    assert bootstrap_ci([0.1, 0.2, 0.3, 0.4]) == est
    single = bootstrap_ci([0.5])
    assert single.ci_low == single.ci_high == 0.5
    with pytest.raises(ValueError):
        bootstrap_ci([float("nan"), 1.0])


def _simulate(rng, n_examples: int, n_seeds: int, seed_sd: float):
    """One test sample from a population with per-example difficulty and a per-seed shift."""
    from aar.w2s.metrics import pgr as _pgr

    base = rng.beta(2, 2, size=n_examples)  # how easy each example is

    def runs(offset: float, sd: float, k: int):
        shift = rng.normal(0, sd, size=(k, 1))
        p = np.clip(base[None, :] * 0.0 + offset + (base[None, :] - 0.5) * 0.6 + shift, 0, 1)
        return (rng.random((k, n_examples)) < p).astype(float)

    truth = _pgr(0.70, 0.60, 0.90)  # population accuracies: method 0.70, weak 0.60, ceiling 0.90
    return runs(0.70, seed_sd, n_seeds), runs(0.60, 0.0, 5), runs(0.90, 0.0, 5), truth


def test_pgr_estimate_covers_the_truth_with_seed_and_sample_noise():
    from aar.w2s.metrics import pgr_estimate

    rng = np.random.default_rng(7)
    hits = old_hits = 0
    reps = 200
    for _ in range(reps):
        m, w, c, truth = _simulate(rng, 400, 3, seed_sd=0.03)
        e = pgr_estimate(m, w, c, n_boot=400)
        hits += e.ci_low <= truth <= e.ci_high
        old = bootstrap_ci(e.values, n_boot=400)  # the percentile bootstrap over seeds alone
        old_hits += old.ci_low <= truth <= old.ci_high
    assert hits / reps >= 0.88  # nominal 0.95; the sample of 200 repetitions has sd ~0.015
    assert old_hits / reps < hits / reps


def test_pgr_estimate_gives_deterministic_methods_a_sample_interval():
    from aar.w2s.metrics import pgr_estimate

    rng = np.random.default_rng(1)
    m, w, c, _ = _simulate(rng, 500, 1, seed_sd=0.0)
    e = pgr_estimate(np.repeat(m, 3, axis=0), w, c)
    assert e.values[0] == e.values[1] == e.values[2]
    assert e.ci_high - e.ci_low > 0.05  # 500 examples cannot pin PGR down to a point
    with pytest.raises(ValueError, match="same examples"):
        pgr_estimate(m, w[:, :10], c)


def test_paired_comparison_detects_a_real_gain_and_not_a_tie():
    from aar.w2s.metrics import paired_comparison

    rng = np.random.default_rng(3)
    m, w, c, _ = _simulate(rng, 2000, 3, seed_sd=0.01)
    better = m.copy()
    flip = rng.random(m.shape) < 0.06  # fix 6% of the method's errors
    better[(m == 0) & flip] = 1.0
    gain = paired_comparison(better, m, w, c)
    assert gain.paired_seeds and gain.diff > 0 and gain.p_greater < 0.01
    assert gain.ci_low > 0
    tie = paired_comparison(m, m, w, c)
    assert tie.diff == 0 and tie.p_greater == 1.0
    unpaired = paired_comparison(better, m[:2], w, c)
    assert not unpaired.paired_seeds
