"""Leaderboards: public Ladder figures only; the admin view with private PGR, CIs and baselines."""

from __future__ import annotations

import numpy as np
import pytest

from aar.client import ApiError

from .helpers import REFERENCE_ACCURACY, labels_of, make_bundle


def _preds(truth: dict[str, int], acc: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {k: float(v if rng.random() < acc else 1 - v) for k, v in sorted(truth.items())}


def test_public_and_admin_boards(harness):
    bundle = harness.testbed(n=400)
    tid = bundle.testbed_id
    truth = labels_of(bundle)
    strong, strong_name = harness.agent()
    weak, weak_name = harness.agent()
    s_sha, w_sha = harness.code(strong, "strong"), harness.code(weak, "weak")
    for seed in range(3):
        strong.submit(tid, _preds(truth, 0.88, seed), s_sha, "PGR 1.0 claimed", method="good", seed=seed)
    weak.submit(tid, _preds(truth, 0.70, 7), w_sha, "I got PGR 0.99", method="meh")
    board = weak.leaderboard(tid)
    assert [r.agent for r in board.rows] == [strong_name, weak_name]
    assert board.rows[0].n_submissions == 3 and board.rows[0].method == "good"
    assert board.rows[0].artifact_sha256 == s_sha
    mine = weak.submissions().items[0]
    assert board.rows[1].pgr == mine.released_pgr  # the server's Ladder figure, not the claim
    assert "private" not in weak.request("GET", "/v1/leaderboard").text

    (adm,) = harness.admin.admin_leaderboard(tid)
    assert adm.testbed.n_public + adm.testbed.n_private == 400
    assert [a.agent for a in adm.agents] == [strong_name, weak_name]
    top = adm.agents[0]
    assert top.private_pgr.ci_low <= top.private_pgr.mean <= top.private_pgr.ci_high
    assert top.private_pgr.over == "examples" and top.artifact_sha256 == s_sha
    good = next(m for m in adm.methods if m.method == "good")
    assert good.n_submissions == 3 and good.private_pgr.n == 3 and good.private_pgr.over == "submissions"
    refs = {r.name: r for r in adm.references}
    assert set(refs) == set(REFERENCE_ACCURACY)
    assert abs(refs["weak"].private_pgr.mean) < 1e-9 and abs(refs["ceiling"].private_pgr.mean - 1) < 1e-9
    assert refs["vanilla"].private_pgr.n == 3 and refs["vanilla"].private_pgr.over == "seeds"
    assert adm.best_agent == strong_name and adm.best_agent_private_pgr == top.private_pgr.mean
    best_ref = max(("vanilla", "confident"), key=lambda k: refs[k].public_pgr.mean)  # chosen on public
    assert adm.best_baseline == best_ref and adm.best_baseline_private_pgr == refs[best_ref].private_pgr.mean


def test_testbed_listing_hides_ground_truth(harness):
    bundle = harness.testbed(n=120)
    agent, _ = harness.agent()
    raw = agent.request("GET", f"/v1/testbeds/{bundle.testbed_id}").json()
    assert set(raw) == {"id", "description", "n_test", "created_at"} and raw["n_test"] == 120
    again = harness.admin.register_testbed(bundle)
    assert not again.created  # identical bundle: idempotent


def test_register_conflicting_or_invalid_bundle(harness):
    bundle = harness.testbed(n=50, seed=5)
    other = make_bundle(bundle.testbed_id, n=50, seed=6)
    with pytest.raises(ApiError) as e:
        harness.admin.register_testbed(other)
    assert e.value.status == 409
    flat = make_bundle(n=50, seed=7).model_dump()
    flat["references"]["ceiling"] = flat["references"]["weak"]  # no gap: PGR undefined
    with pytest.raises(ApiError) as e:
        harness.admin.register_testbed(flat)
    assert e.value.status == 422 and e.value.code == "invalid_bundle"
    with pytest.raises(ApiError) as e:
        harness.admin.register_testbed({"testbed_id": "x", "labels": {}})
    assert e.value.status == 422
