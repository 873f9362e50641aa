"""Unit checks of the Ladder step, id canonicalisation and the vault arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aar.server.errors import ApiError
from aar.server.schemas import SubmissionIn
from aar.server.scoring import canonical_probs, default_margin, ladder_step
from aar.server.vault import assign_halves, build_arrays

from .helpers import make_bundle

KEY = bytes(range(32))


def test_ladder_step():
    eta = 0.1
    r, up = ladder_step(None, 0.73, eta)
    assert up and r == pytest.approx(0.7)
    assert ladder_step(r, 0.79, eta) == (r, False)  # not beyond the margin
    r2, up = ladder_step(r, 0.86, eta)
    assert up and r2 == pytest.approx(0.9)
    assert ladder_step(None, 1.0, default_margin(30))[0] == 1.0  # the grid is anchored at zero error
    assert default_margin(400) == pytest.approx(0.05)
    assert math.isclose(ladder_step(None, 0.0, eta)[0], 0.0, abs_tol=1e-12)


def test_canonical_probs_orders_and_checks():
    bundle = make_bundle(n=20, seed=1)
    arrays = build_arrays(bundle, KEY)
    ids = list(reversed(arrays.ids))
    probs = [i / 20 for i in range(20)]
    out = canonical_probs(
        arrays,
        SubmissionIn(
            testbed_id=bundle.testbed_id, example_ids=ids, probabilities=probs, artifact_sha256="0" * 64
        ),
    )
    assert out[arrays.pos[ids[3]]] == probs[3]
    with pytest.raises(ApiError) as e:
        canonical_probs(
            arrays,
            SubmissionIn(
                testbed_id="x", example_ids=ids, probabilities=[float("nan")] * 20, artifact_sha256="0" * 64
            ),
        )
    assert e.value.code == "bad_probability" and e.value.details["count"] == 20


def test_baselines_are_seed_means_per_half():
    bundle = make_bundle(n=200, seed=2)
    arrays = build_arrays(bundle, KEY)
    halves = assign_halves(KEY, bundle.testbed_id, sorted(bundle.labels))
    pub = [k for k, h in halves.items() if h == "public"]
    accs = [np.mean([(run[k] > 0.5) == bundle.labels[k] for k in pub]) for run in bundle.references["weak"]]
    assert arrays.weak[0] == pytest.approx(np.mean(accs))
    assert arrays.half_pgr(*arrays.weak) == (pytest.approx(0.0), pytest.approx(0.0))


def test_assess_equals_the_direct_definitions():
    """The one-pass scoring gives exactly the figures and flags of the per-figure definitions, also at
    the edges (perfect, constant, all wrong, exactly 0.5, the above-ceiling threshold)."""
    from aar.server.scoring import (
        ABOVE_CEILING_P,
        NEAR_CONSTANT_SHARE,
        above_ceiling_min_correct,
        above_ceiling_p,
        assess,
        majority_share,
        public_correct,
    )

    arrays = build_arrays(make_bundle(n=301, seed=4), KEY)
    labels = arrays.labels.astype(np.float64)
    rng = np.random.default_rng(0)
    cases = [labels, 1 - labels, np.full(301, 0.5), np.ones(301), np.zeros(301), rng.random(301)]
    cases += [np.where(rng.random(301) < acc, labels, 1 - labels) for acc in (0.6, 0.85, 0.9, 0.93, 0.97)]
    private = ~arrays.public
    for probs in cases:
        got = assess(arrays, probs)
        assert (got.public_acc, got.private_acc) == arrays.half_accuracy(probs)
        assert np.array_equal(got.public_correct, public_correct(arrays, probs))
        right = int(((probs[private] > 0.5) == arrays.labels[private]).sum())
        expected = []
        if above_ceiling_p(right, int(private.sum()), arrays.ceiling[1]) < ABOVE_CEILING_P:
            expected.append("above_ceiling")
        if majority_share(probs) >= NEAR_CONSTANT_SHARE:
            expected.append("near_constant")
        assert got.flags == expected
    for n, ceiling in ((0, 0.9), (1, 0.5), (150, 0.9), (150, 0.0), (150, 1.0), (1000, 0.73)):
        k = above_ceiling_min_correct(n, ceiling)
        assert all(above_ceiling_p(j, n, ceiling) >= ABOVE_CEILING_P for j in range(k))
        assert all(above_ceiling_p(j, n, ceiling) < ABOVE_CEILING_P for j in range(k, n + 1))
