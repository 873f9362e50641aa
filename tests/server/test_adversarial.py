"""An adaptive agent learns no label from the responses."""

from __future__ import annotations

import numpy as np

from .helpers import labels_of


def test_flipping_one_prediction_at_a_time_reveals_nothing(harness):
    """Flip each prediction of a base submission in turn: every answer is identical to the base's,
    so the transcript carries no information about any flipped label (whatever its half)."""
    bundle = harness.testbed(n=400)
    agent, name = harness.agent()
    sha = harness.code(agent)
    truth = labels_of(bundle)
    rng = np.random.default_rng(0)
    ids = sorted(truth)
    base = {k: float(rng.random() < 0.5) for k in ids}
    first = agent.submit(bundle.testbed_id, base, sha, "base")
    released = (first.public.accuracy, first.public.pgr)
    answers = []
    probe = ids[:60]
    for k in probe:
        flipped = dict(base)
        flipped[k] = 1.0 - base[k]
        r = agent.submit(bundle.testbed_id, flipped, sha, f"flip {k}")
        answers.append((r.public.accuracy, r.public.pgr, r.public.improved))
    assert set(answers) == {(*released, False)}
    # the best an attacker can do with identical answers is guess; check it learns nothing here
    guesses = {k: (1 - base[k]) if a[2] else base[k] for k, a in zip(probe, answers, strict=True)}
    agree_with_base = sum(guesses[k] == base[k] for k in probe)
    assert agree_with_base == len(probe)  # guesses equal the base, which is independent of the labels
    # the server did score them exactly (and kept that to itself)
    exact = {s.public_accuracy for s in harness.admin.admin_submissions(agent=name, limit=100).items}
    assert len(exact) > 1


def test_boosting_attack_gains_nothing_on_private_half(harness):
    """Blum & Hardt's boosting attack: submit random vectors, keep those the board rewards, vote.
    Under the Ladder the answers barely move, and the private half stays at chance."""
    bundle = harness.testbed(n=400, seed=12)
    agent, name = harness.agent()
    sha = harness.code(agent)
    rng = np.random.default_rng(1)
    ids = sorted(bundle.labels)
    kept = []
    base = None
    for _ in range(40):
        vec = rng.integers(0, 2, len(ids)).astype(float)
        r = agent.submit(bundle.testbed_id, dict(zip(ids, vec.tolist(), strict=True)), sha, "random")
        if base is None or r.public.improved:
            kept.append(vec)
        base = r.public.accuracy
    vote = (np.mean(kept, axis=0) > 0.5).astype(float)
    final = agent.submit(bundle.testbed_id, dict(zip(ids, vote.tolist(), strict=True)), sha, "vote")
    row = next(s for s in harness.admin.admin_submissions(agent=name).items if s.id == final.id)
    assert abs(row.private_accuracy - 0.5) < 0.12
    assert len(kept) <= 3
