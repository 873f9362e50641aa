"""Admin audit endpoints over HTTP: evaluate on every split, stored predictions, audit records, and
scoring-time flags that only the admin sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aar.client import ApiError, AuthError, NotFound
from aar.w2s.metrics import accuracy

from .helpers import halves_of, labels_of, make_bundle, noisy_predictions


def _runs(bundle, acc: float, n_runs: int, seed: int = 0) -> list[dict[str, float]]:
    """Runs over the test and final ids, right with probability ``acc``."""
    truth = {**bundle.labels, **bundle.final_labels}
    ids = sorted(truth)
    y = np.array([truth[k] for k in ids])
    rng = np.random.default_rng(seed)
    return [dict(zip(ids, noisy_predictions(y, acc, rng).tolist(), strict=True)) for _ in range(n_runs)]


def test_evaluate_every_split(harness):
    bundle = harness.testbed(n=400, seed=21)
    tid = bundle.testbed_id
    runs = _runs(bundle, 0.85, 3)
    before = harness.admin.admin_submissions(testbed_id=tid).total
    out = harness.admin.admin_evaluate(tid, runs, compare_to="best_baseline")
    assert out.testbed_id == tid and set(out.splits) == {"public", "private", "final"}
    halves = halves_of(harness.srv.settings.data_dir, bundle)
    pub = sorted(k for k, h in halves.items() if h == "public")
    public = out.splits["public"]
    assert public.n == len(pub) == 200 and out.splits["private"].n == 200
    assert out.splits["final"].n == len(bundle.final_labels)
    # the public figure is computed on exactly the server's public half
    expect = [accuracy([r[k] for k in pub], [bundle.labels[k] for k in pub]) for r in runs]
    assert public.accuracy == pytest.approx(expect)
    for split in out.splits.values():
        assert split.pgr.n_seeds == 3 and split.pgr.ci_low <= split.pgr.mean <= split.pgr.ci_high
        assert 0.0 < split.pgr.mean < 1.0  # 0.85 sits between weak (0.65) and ceiling (0.9)
        assert 0.4 < split.majority_share < 0.7
        assert split.above_ceiling_p > 0.5
        assert split.compare is not None and split.compare.reference in ("vanilla", "confident")
        assert split.compare.diff > 0 and split.compare.paired_seeds is False
    # the best baseline is the shipped reference with the best public PGR
    (board,) = harness.admin.admin_leaderboard(tid)
    assert public.compare.reference == board.best_baseline
    assert harness.admin.admin_submissions(testbed_id=tid).total == before  # nothing recorded
    # perfect runs are far above the ceiling on every split; a named reference is compared
    truth = {**bundle.labels, **bundle.final_labels}
    perfect = harness.admin.admin_evaluate(tid, [{k: float(v) for k, v in truth.items()}], "vanilla")
    assert all(s.above_ceiling_p < 0.05 and s.pgr.mean > 1 for s in perfect.splits.values())
    assert perfect.splits["private"].above_ceiling_p < 0.01
    assert perfect.splits["final"].compare.reference == "vanilla"
    const = harness.admin.admin_evaluate(tid, [dict.fromkeys(truth, 0.9)])
    assert const.splits["private"].majority_share == 1.0 and const.splits["private"].compare is None


def test_evaluate_compares_with_other_runs_paired_by_seed(harness):
    bundle = harness.testbed(n=400, seed=22)
    tid = bundle.testbed_id
    # Five seeds (t with 4 df): with two, the one-sided p of a 0.2 accuracy gap hovers near 0.05
    # depending on the server's random halves key, which makes the assertion a coin toss.
    good, worse = _runs(bundle, 0.9, 5, seed=1), _runs(bundle, 0.7, 5, seed=2)
    out = harness.admin.admin_evaluate(tid, good, compare_runs=worse)
    for split in out.splits.values():
        assert split.compare.reference == "compare_runs" and split.compare.paired_seeds is True
        assert split.compare.diff > 0 and split.compare.p_greater < 0.01
    unpaired = harness.admin.admin_evaluate(tid, good, compare_runs=worse[:1])
    assert unpaired.splits["private"].compare.paired_seeds is False
    with pytest.raises(ApiError) as e:
        harness.admin.admin_evaluate(tid, good, compare_to="vanilla", compare_runs=worse)
    assert e.value.status == 422 and e.value.code == "two_comparisons"


def test_evaluate_refuses_bad_runs(harness):
    bundle = harness.testbed(n=100, seed=22)
    tid = bundle.testbed_id
    (run,) = _runs(bundle, 0.8, 1)
    test_only = {k: run[k] for k in bundle.labels}
    cases = {
        "missing_ids": [test_only],  # the final ids are required too
        "unknown_ids": [{**run, "nope": 0.5}],
        "bad_probability": [{**run, next(iter(run)): 1.5}],
    }
    for code, runs in cases.items():
        with pytest.raises(ApiError) as e:
            harness.admin.admin_evaluate(tid, runs)
        assert e.value.status == 422 and e.value.code == code, code
    for runs, compare in (([], None), ([run] * 21, None), ([run], "no-such-ref")):
        with pytest.raises(ApiError) as e:
            harness.admin.admin_evaluate(tid, runs, compare)
        assert e.value.status == 422
    with pytest.raises(NotFound):
        harness.admin.admin_evaluate("no-such-testbed", [run])
    agent, _ = harness.agent()
    with pytest.raises(AuthError) as e:
        agent.admin_evaluate(tid, [run])
    assert e.value.status == 403


def test_evaluate_without_final_split(harness):
    bundle = make_bundle(n=120, seed=23, n_final=0)
    harness.admin.register_testbed(bundle)
    (run,) = _runs(bundle, 0.8, 1)
    out = harness.admin.admin_evaluate(bundle.testbed_id, [run])
    assert out.splits["final"] is None and out.splits["private"].n == 60
    (info,) = [b.testbed for b in harness.admin.admin_leaderboard(bundle.testbed_id)]
    assert info.n_final == 0 and info.weak_final is None


def test_predictions_and_audit_records(harness):
    bundle = harness.testbed(n=200, seed=24)
    tid = bundle.testbed_id
    agent, name = harness.agent()
    sha = harness.code(agent)
    preds = {k: v for k, v in _runs(bundle, 0.8, 1)[0].items() if k in bundle.labels}
    sub = agent.submit(tid, preds, sha, "honest")
    assert harness.admin.admin_predictions(sub.id) == pytest.approx(preds)
    with pytest.raises(AuthError):
        agent.admin_predictions(sub.id)
    with pytest.raises(NotFound):
        harness.admin.admin_predictions(2**31 - 1)

    first = harness.admin.record_audit(
        sub.id, "flagged", ["scan: open() at method.py:3"], {"private_pgr": {"mean": 0.4}}, {"scan": []}
    )
    assert (first.agent, first.testbed_id, first.verdict) == (name, tid, "flagged")
    second = harness.admin.record_audit(sub.id, "ok", [], {"final_pgr": 0.41}, {"reproduction": 0.99})
    listed = harness.admin.audits(submission_id=sub.id)
    assert [a.id for a in listed] == [first.id, second.id]  # oldest first: the latest is last
    assert listed[-1].figures == {"final_pgr": 0.41} and listed[0].reasons == ["scan: open() at method.py:3"]
    assert [a.id for a in harness.admin.audits(testbed_id=tid)] == [first.id, second.id]
    assert harness.admin.audits(testbed_id="other-testbed") == []
    (board,) = harness.admin.admin_leaderboard(tid)
    assert next(e for e in board.agents if e.agent == name).audit_verdict == "ok"
    # every audit is in the append-only request log
    outcomes = [e.outcome for e in harness.admin.audit_log(limit=50).items if e.path == "/v1/admin/audits"]
    assert f"audit {second.id} of submission {sub.id}: ok" in outcomes
    assert f"audit {first.id} of submission {sub.id}: flagged" in outcomes
    with pytest.raises(AuthError):
        agent.record_audit(sub.id, "ok")
    with pytest.raises(AuthError):
        agent.audits()


def test_audit_validation(harness):
    bundle = harness.testbed(n=100, seed=25)
    agent, _ = harness.agent()
    sub = agent.submit(bundle.testbed_id, dict.fromkeys(bundle.labels, 0.7), harness.code(agent))
    bad = [
        {"verdict": "fine"},
        {"reasons": ["r"] * 21},
        {"reasons": ["x" * 501]},
        {"reasons": ["nul \x00 inside"]},
        {"figures": {"big": "x" * (256 * 1024)}},
        {"figures": {"nan": float("nan")}},
        {"checks": ["not", "an", "object"]},
        {"checks": {"deep": {"a": {"b": "\x00"}}}},
        {"submission_id": 0},
    ]
    for over in bad:
        body = {"submission_id": sub.id, "verdict": "ok", "reasons": [], "figures": {}, "checks": {}, **over}
        with pytest.raises(ApiError) as e:
            harness.admin._post(dict, "/v1/admin/audits", body)  # raw body (NaN allowed through)
        assert e.value.status == 422, over
    with pytest.raises(NotFound):
        harness.admin.record_audit(2**31 - 1, "ok")
    assert harness.admin.audits(submission_id=sub.id) == []


def test_flags_are_admin_only(harness):
    bundle = harness.testbed(n=400, seed=26)
    tid = bundle.testbed_id
    truth = labels_of(bundle)
    agent, name = harness.agent()
    sha = harness.code(agent)
    honest = agent.submit(tid, {k: v for k, v in _runs(bundle, 0.8, 1)[0].items() if k in truth}, sha)
    perfect = agent.submit(tid, {k: float(v) for k, v in truth.items()}, sha, "labels")
    constant = agent.submit(tid, dict.fromkeys(truth, 0.8), sha, "constant")
    rows = {s.id: s for s in harness.admin.admin_submissions(agent=name).items}
    assert rows[honest.id].flags == []
    assert rows[perfect.id].flags == ["above_ceiling"]
    assert rows[constant.id].flags == ["near_constant"]
    flagged = harness.admin.admin_submissions(agent=name, flagged=True).items
    assert sorted(s.id for s in flagged) == sorted([perfect.id, constant.id])
    assert [s.id for s in harness.admin.admin_submissions(agent=name, flagged=False).items] == [honest.id]
    # the admin board entry (the Ladder best: the perfect submission) carries the flags
    (board,) = harness.admin.admin_leaderboard(tid)
    entry = next(e for e in board.agents if e.agent == name)
    assert entry.submission_id == perfect.id and entry.private_pgr.mean > 1
    assert "above_ceiling" in entry.flags and "pgr_above_1" in entry.flags
    # agents see nothing of them, in any answer
    raw = [
        agent.request("GET", f"/v1/submissions/{perfect.id}").text,
        agent.request("GET", "/v1/submissions").text,
        agent.request("GET", "/v1/leaderboard").text,
        json.dumps(perfect.model_dump()),
    ]
    for text in raw:
        assert "flag" not in text and "above_ceiling" not in text and "near_constant" not in text


def test_final_ids_are_not_submittable(harness):
    bundle = harness.testbed(n=100, seed=27)
    agent, _ = harness.agent()
    preds = dict.fromkeys([*bundle.labels, next(iter(bundle.final_labels))], 0.6)
    with pytest.raises(ApiError) as e:
        agent.submit(bundle.testbed_id, preds, harness.code(agent))
    assert e.value.status == 422 and e.value.code == "unknown_ids"
    assert agent.testbed(bundle.testbed_id).n_test == 100
