import math

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
