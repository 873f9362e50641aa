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
