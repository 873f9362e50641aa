"""End-to-end happy path over HTTP."""

from __future__ import annotations

from .helpers import labels_of


def test_happy_path(harness):
    bundle = harness.testbed(n=200)
    agent, _ = harness.agent()
    sha = harness.code(agent)
    truth = labels_of(bundle)
    receipt = agent.submit(bundle.testbed_id, {k: float(v) for k, v in truth.items()}, sha, "perfect")
    assert receipt.public.improved
    assert receipt.public.accuracy == 1.0
    assert receipt.budget.used_total == 1
    assert [t.id for t in agent.testbeds()].count(bundle.testbed_id) == 1
