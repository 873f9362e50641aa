"""Scoring over HTTP: Ladder release, private figures kept back, budgets, bad input stores nothing."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from aar.client import ApiError, BudgetExhausted, NotFound

from .helpers import labels_of


def _walk_keys(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _walk_keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _walk_keys(v)}
    return set()


def _preds(truth: dict[str, int], acc: float, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    ids = sorted(truth)
    wrong = set(rng.choice(len(ids), size=round((1 - acc) * len(ids)), replace=False).tolist())
    return {k: float(1 - truth[k] if i in wrong else truth[k]) for i, k in enumerate(ids)}


def test_ladder_release_and_private_kept_back(harness):
    bundle = harness.testbed(n=400, seed=11)
    agent, name = harness.agent()
    sha = harness.code(agent)
    truth = labels_of(bundle)
    margin = 0.01  # the default (paired) Ladder's release grid for 200 public examples
    base = _preds(truth, 0.70)
    first = agent.submit(bundle.testbed_id, base, sha, "first", method="m1")
    assert first.public.improved
    assert first.public.margin == pytest.approx(margin)
    steps = (1 - first.public.accuracy) / margin
    assert abs(steps - round(steps)) < 1e-9  # released on the margin grid
    # a small change never moves the released figure
    fixed = [k for k in sorted(base) if base[k] != truth[k]][:3]  # +3 correct: at most 3/200 better
    better = {**base, **{k: float(truth[k]) for k in fixed}}
    second = agent.submit(bundle.testbed_id, better, sha, "second", method="m1")
    assert not second.public.improved
    assert second.public.accuracy == first.public.accuracy
    # a clear improvement does
    third = agent.submit(bundle.testbed_id, _preds(truth, 0.95, seed=2), sha, "third", method="m2")
    assert third.public.improved and third.public.accuracy > first.public.accuracy + margin / 2
    # the receipt never carries private figures, counts or per-example data
    raw = agent.request("GET", f"/v1/submissions/{third.id}").json()
    keys = _walk_keys(raw) | _walk_keys(third.model_dump())
    assert not {k for k in keys if "private" in k or "correct" in k or "label" in k}
    # the admin sees exact public and private figures
    rows = harness.admin.admin_submissions(agent=name).items
    assert len(rows) == 3
    assert all(0.5 < r.private_accuracy < 1.0 for r in rows)
    assert rows[0].released_pgr == third.public.pgr
    mine = agent.submissions(testbed_id=bundle.testbed_id)
    assert mine.total == 3 and [s.id for s in mine.items] == [third.id, second.id, first.id]


def test_others_see_only_public_view(harness):
    bundle = harness.testbed()
    a, _ = harness.agent()
    b, _ = harness.agent()
    receipt = a.submit(bundle.testbed_id, _preds(labels_of(bundle), 0.8), harness.code(a), "mine")
    seen = b.submission(receipt.id)
    assert seen.released_pgr == receipt.public.pgr
    assert b.submissions().total == 0
    with pytest.raises(ApiError) as e:
        b.admin_submissions()
    assert e.value.status == 403


def test_hourly_budget_429_with_reset_time(harness):
    bundle = harness.testbed()
    agent, _ = harness.agent(budget_per_hour=2)
    sha = harness.code(agent)
    preds = _preds(labels_of(bundle), 0.8)
    for _ in range(2):
        agent.submit(bundle.testbed_id, preds, sha)
    with pytest.raises(BudgetExhausted) as e:
        agent.submit(bundle.testbed_id, preds, sha)
    assert e.value.status == 429 and e.value.code == "budget_exhausted"
    assert e.value.resets_at is not None and 0 < int(e.value.headers["retry-after"]) <= 3600
    assert agent.me().budget.used_last_hour == 2
    assert agent.submissions().total == 2


def test_total_budget(harness):
    bundle = harness.testbed()
    agent, _ = harness.agent(budget_total=1)
    sha = harness.code(agent)
    agent.submit(bundle.testbed_id, _preds(labels_of(bundle), 0.8), sha)
    with pytest.raises(BudgetExhausted) as e:
        agent.submit(bundle.testbed_id, _preds(labels_of(bundle), 0.8), sha)
    assert e.value.details["limit"] == "total" and e.value.resets_at is None


def _body(bundle, sha: str, **over) -> dict:
    ids = sorted(bundle.labels)
    body = {
        "testbed_id": bundle.testbed_id,
        "example_ids": ids,
        "probabilities": [0.5] * len(ids),
        "artifact_sha256": sha,
        "description": "x",
    }
    body.update(over)
    return body


def test_bad_input_is_4xx_and_stores_nothing(harness):
    bundle = harness.testbed(n=100)
    agent, _ = harness.agent()
    sha = harness.code(agent)
    ids = sorted(bundle.labels)
    http = httpx.Client(base_url=harness.srv.base_url, headers={"Authorization": f"Bearer {agent.token}"})
    cases = {
        "malformed": (b'{"testbed_id": "x", ', 400, "malformed_json"),
        "not_object": (b"[1, 2, 3]", 422, "invalid_body"),
        "missing": (_body(bundle, sha, example_ids=ids[1:], probabilities=[0.5] * 99), 422, "missing_ids"),
        "extra": (
            _body(bundle, sha, example_ids=[*ids, "train-1"], probabilities=[0.5] * 101),
            422,
            "unknown_ids",
        ),
        "duplicate": (_body(bundle, sha, example_ids=[*ids[:-1], ids[0]]), 422, "duplicate_ids"),
        "length": (_body(bundle, sha, probabilities=[0.5] * 99), 422, "length_mismatch"),
        "string_prob": (_body(bundle, sha, probabilities=["0.5"] * 100), 422, "invalid_body"),
        "wrong_type": (_body(bundle, sha, example_ids="all"), 422, "invalid_body"),
        "out_of_range": (_body(bundle, sha, probabilities=[1.5] + [0.5] * 99), 422, "bad_probability"),
        "negative": (_body(bundle, sha, probabilities=[-0.1] + [0.5] * 99), 422, "bad_probability"),
        "extra_field": (_body(bundle, sha, score=0.99), 422, "invalid_body"),
        "no_artifact": (
            {k: v for k, v in _body(bundle, sha).items() if k != "artifact_sha256"},
            422,
            "invalid_body",
        ),
        "bad_hash": (_body(bundle, sha, artifact_sha256="abc"), 422, "invalid_body"),
        "unknown_artifact": (_body(bundle, "0" * 64), 404, "unknown_artifact"),
        "unknown_testbed": (_body(bundle, sha, testbed_id="nope"), 404, "unknown_testbed"),
        "nul": (_body(bundle, sha, description="a\x00b"), 422, "invalid_body"),
    }
    for label, (body, status, code) in cases.items():
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = http.post("/v1/submissions", content=content, headers={"content-type": "application/json"})
        assert r.status_code == status, (label, r.text)
        assert r.json()["error"]["code"] == code, label
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        raw = (
            json.dumps(_body(bundle, sha, probabilities=[0.25] + [0.5] * 99))
            .encode()
            .replace(b"0.25", literal, 1)
        )
        r = http.post("/v1/submissions", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_probability", literal
    big = b'{"testbed_id": "' + b"x" * 1_100_000 + b'"}'
    r = http.post("/v1/submissions", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = http.post("/v1/submissions", content=iter([b"[" * 600_000, b"1" * 600_000]))  # chunked, no length
    assert r.status_code == 413
    assert agent.submissions().total == 0
    assert agent.me().budget.used_total == 0
    with pytest.raises(NotFound):
        agent.testbed("nope")


def test_shuffled_ids_score_the_same(harness):
    bundle = harness.testbed(n=100)
    agent, name = harness.agent()
    sha = harness.code(agent)
    preds = _preds(labels_of(bundle), 0.9)
    ids = sorted(preds, reverse=True)
    body = {
        "testbed_id": bundle.testbed_id,
        "example_ids": ids,
        "probabilities": [preds[i] for i in ids],
        "artifact_sha256": sha,
    }
    agent.request("POST", "/v1/submissions", json=body)
    agent.submit(bundle.testbed_id, preds, sha)
    a, b = harness.admin.admin_submissions(agent=name).items
    assert a.public_accuracy == b.public_accuracy and a.private_accuracy == b.private_accuracy
