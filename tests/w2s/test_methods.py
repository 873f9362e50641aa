import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aar.cli import app
from aar.w2s.cache import CacheError
from aar.w2s.experiment import ceiling_probs, run_method, teacher_outputs
from aar.w2s.methods.base import MethodContext, MethodError
from aar.w2s.methods.registry import builtin_methods, get_method, load_method_file

SHIPPED = {"weak", "vanilla", "soft", "confident", "aux_conf", "zero_shot", "self_train"}
TRANSFER = sorted(SHIPPED - {"weak"})  # weak is the harness's reference


def test_shipped_methods_are_discovered_with_docs():
    methods = builtin_methods()
    assert set(methods) >= SHIPPED
    for m in methods.values():
        assert m.description, m.name


@pytest.mark.parametrize("name", TRANSFER)
def test_every_method_runs_on_binary_and_pairwise(name, math_tiny, chat_tiny):
    for tb in (math_tiny, chat_tiny):
        run = run_method(tb, get_method(name), seed=0, splits=("test", "dev"))
        n = tb.dataset.sizes()["test"] + tb.dataset.sizes()["dev"]
        assert len(run.probs) == n
        p = np.array(list(run.probs.values()))
        assert np.all((p >= 0) & (p <= 1))


def test_runs_are_deterministic_per_seed(math_tiny):
    a = run_method(math_tiny, get_method("vanilla"), seed=1)
    b = run_method(math_tiny, get_method("vanilla"), seed=1)
    assert a.probs == b.probs


def test_context_never_carries_labels(math_tiny):
    seen = {}

    def spy(ctx: MethodContext):
        seen["labels"] = {e.label for e in (*ctx.unlabelled, *ctx.dev, *ctx.predict_inputs)}
        seen["attrs"] = set(vars(ctx))
        seen["bound"] = hasattr(ctx.new_strong_model, "__self__")
        seen["teacher_ids"] = set(ctx.teacher.probs)
        seen["model"] = ctx.strong_model()
        return np.full(len(ctx.predict_inputs), 0.5)

    method = get_method("weak")
    method = type(method)("spy", "spy", {}, spy, "test")
    run_method(math_tiny, method)
    assert seen["labels"] == {None}
    assert not any("label" in a and a != "unlabelled" for a in seen["attrs"])
    # the strong model comes from a plain checkpoint loader, not a bound method of the labelled testbed
    assert not seen["bound"] and seen["model"] is not None
    # the original protocol: teacher outputs on train_unlabel only
    assert seen["teacher_ids"] == {e.id for e in math_tiny.dataset.splits["train_unlabel"]}
    with pytest.raises(MethodError, match="must not carry labels"):
        MethodContext("x", math_tiny.dataset.splits["dev"], [], [], None, None, None)


def _user_method(tmp_path, body: str):
    f = tmp_path / "my_method.py"
    f.write_text(f"NAME = 'mine'\nPARAMS = {{'shift': 0.0}}\nimport numpy as np\n{body}\n")
    return f


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("def run(ctx, shift):\n    return np.full(3, 0.5)", "returned 3 predictions"),
        ("def run(ctx, shift):\n    return np.full(len(ctx.predict_inputs), np.nan)", "NaN"),
        ("def run(ctx, shift):\n    return np.full(len(ctx.predict_inputs), 1.5)", r"outside \[0, 1\]"),
        ("def run(ctx, shift):\n    return 'hello'", "not an array of numbers"),
    ],
)
def test_bad_method_output_is_a_clear_error(tmp_path, math_tiny, body, message):
    with pytest.raises(MethodError, match=message):
        run_method(math_tiny, load_method_file(_user_method(tmp_path, body)))


def test_teacher_outputs_on_test_inputs_are_a_clear_error_by_default(tmp_path, math_tiny):
    body = "def run(ctx, shift):\n    return ctx.teacher.of(ctx.predict_inputs)"
    with pytest.raises(MethodError, match=r"train_unlabel inputs only.*teacher_on_test"):
        run_method(math_tiny, load_method_file(_user_method(tmp_path, body)))
    with pytest.raises(MethodError, match=r"harness's reference.*teacher_on_test is"):
        run_method(math_tiny, get_method("weak"))


def test_teacher_on_test_protocol_exposes_dev_and_test(math_tiny):
    from aar.w2s.public import cached_public_view, with_teacher_on_test

    tb = with_teacher_on_test(math_tiny)
    run = run_method(tb, get_method("weak"), seed=0, splits=("test", "dev"))
    teacher = teacher_outputs(math_tiny, 0).probs
    assert run.probs == {i: teacher[i] for i in run.probs}
    view = cached_public_view(tb, [0])
    assert view.teacher_on_test and json.loads((view.path / "view.json").read_text())["teacher_on_test"]
    plain = cached_public_view(math_tiny, [0])
    meta = json.loads((plain.path / "view.json").read_text())
    assert meta["teacher_on_test"] is False and meta["teacher_splits"] == ["train_unlabel"]
    shown = json.loads((plain.path / "teacher-s0.json").read_text())["probs"]
    assert set(shown) == {e.id for e in math_tiny.dataset.splits["train_unlabel"]}


def test_holdout_keeps_a_fixed_slice_away_from_the_method(math_tiny):
    seen = {}

    def spy(ctx: MethodContext):
        seen["unlabelled"] = {e.id for e in ctx.unlabelled}
        seen["teacher"] = set(ctx.teacher.probs)
        return np.full(len(ctx.predict_inputs), 0.5)

    method = type(get_method("vanilla"))("spy", "spy", {}, spy, "test")
    a = run_method(math_tiny, method, seed=0, holdout=0.1)
    b = run_method(math_tiny, method, seed=1, holdout=0.1)
    held = set(a.holdout_probs)
    tu = {e.id for e in math_tiny.dataset.splits["train_unlabel"]}
    assert held == set(b.holdout_probs) and held < tu and abs(len(held) - 0.1 * len(tu)) <= 1
    assert not held & seen["unlabelled"] and not held & seen["teacher"]
    assert set(a.probs) == {e.id for e in math_tiny.dataset.splits["test"]}


def test_user_method_file_and_params(tmp_path, math_tiny):
    body = "def run(ctx, shift):\n    return np.full(len(ctx.predict_inputs), 0.4 + shift)"
    m = get_method(str(_user_method(tmp_path, body)))
    run = run_method(math_tiny, m, params={"shift": 0.1})
    assert run.params == {"shift": 0.1}
    with pytest.raises(MethodError, match="no parameter 'nope'"):
        run_method(math_tiny, m, params={"nope": 1})
    with pytest.raises(MethodError, match="must be like"):
        run_method(math_tiny, m, params={"shift": "big"})
    with pytest.raises(MethodError, match="unknown method 'nope'; known methods"):
        get_method("nope")
    with pytest.raises(MethodError, match="does not exist"):
        get_method(str(tmp_path / "missing.py"))


def test_corrupt_teacher_cache_is_a_clear_error(tmp_path, math_tiny):
    import shutil

    from aar.w2s.testbeds.registry import load_testbed

    teacher_outputs(math_tiny, 5)
    copy = tmp_path / "testbeds" / math_tiny.path.name
    shutil.copytree(math_tiny.path, copy)
    for f in copy.glob("teacher-s5-*.json"):
        f.write_text("{not json")
    with pytest.raises(CacheError, match="corrupt or unreadable cache file"):
        teacher_outputs(load_testbed("math-tiny", tmp_path), 5)


def test_ceiling_is_cached(math_tiny):
    a = ceiling_probs(math_tiny, 0)
    assert ceiling_probs(math_tiny, 0) == a
    assert set(a) >= {e.id for s in ("dev", "test") for e in math_tiny.dataset.splits[s]}


def test_baseline_cli_writes_the_documented_json(tmp_path, math_tiny, aar_home, monkeypatch):
    monkeypatch.setenv("AAR_HOME", str(aar_home))
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        [
            "baseline",
            "--testbed",
            "math-tiny",
            "--methods",
            "vanilla,zero_shot",
            "--seeds",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "vanilla" in res.output and "PGR" in res.output
    blob = json.loads(out.read_text())
    assert blob["config"]["seeds"] == [0, 1] and blob["code_version"]
    assert blob["config"]["teacher_on_test"] is False and "Welch" in blob["config"]["pgr_baselines"]
    for name in ("vanilla", "zero_shot"):
        for key in ("weak_acc", "ceiling_acc", "transfer_acc", "pgr"):
            est = blob["methods"][name][key]
            assert set(est) >= {"mean", "ci_low", "ci_high", "values", "se"} and len(est["values"]) == 2
            assert est["ci_low"] <= est["mean"] <= est["ci_high"]
        assert "t over seeds" in blob["methods"][name]["pgr"]["method"]
    assert blob["methods"]["vanilla"]["vs_vanilla"] is None
    cmp = blob["methods"]["zero_shot"]["vs_vanilla"]
    assert cmp["reference"] == "vanilla" and 0 <= cmp["p_greater"] <= 1 and cmp["paired_seeds"]
    assert "p=" in res.output


def test_baseline_cli_bad_names(aar_home, monkeypatch):
    monkeypatch.setenv("AAR_HOME", str(aar_home))
    res = CliRunner().invoke(app, ["baseline", "--testbed", "nope"])
    assert res.exit_code == 2 and "unknown testbed 'nope'" in res.output
    res = CliRunner().invoke(app, ["baseline", "--testbed", "math-tiny", "--methods", "bogus"])
    assert res.exit_code == 2 and "unknown method 'bogus'" in res.output
