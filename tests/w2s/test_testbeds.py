import json

import pytest

from aar.w2s.cache import CacheError
from aar.w2s.testbeds.build import build_testbed, testbed_dir
from aar.w2s.testbeds.registry import TESTBEDS, UnknownTestbedError, get_spec, is_built, load_testbed


def test_unknown_testbed_names_the_known_ones():
    with pytest.raises(UnknownTestbedError, match=r"known testbeds: .*math"):
        get_spec("nope")


def test_build_is_cached_and_complete(math_tiny, aar_home):
    assert is_built("math-tiny", aar_home)
    assert (math_tiny.path / "COMPLETE").exists()
    meta = json.loads((math_tiny.path / "spec.json").read_text())
    assert meta["spec"]["name"] == "math-tiny" and meta["timings"]["total_s"] > 0
    again = load_testbed("math-tiny", aar_home)
    assert again.path == math_tiny.path
    assert math_tiny.dataset.sizes() == TESTBEDS["math-tiny"].sizes


def test_killed_build_leaves_no_entry(tmp_path):
    spec = TESTBEDS["math-tiny"]
    calls = []

    def explode(task, done, total):
        calls.append(task)
        if "weak" in task:
            raise KeyboardInterrupt  # a kill mid-build

    with pytest.raises(KeyboardInterrupt):
        build_testbed(spec, tmp_path, explode)
    assert calls
    assert not testbed_dir(spec, tmp_path).exists()
    assert not [p for p in (tmp_path / "testbeds").iterdir() if not p.name.startswith(".")]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, math_tiny):
    import shutil

    copy = tmp_path / "testbeds" / math_tiny.path.name
    shutil.copytree(math_tiny.path, copy)
    (copy / "strong.pt").write_bytes(b"garbage")
    tb = load_testbed("math-tiny", tmp_path)
    with pytest.raises(CacheError, match="corrupt model checkpoint"):
        tb.strong_model()


def test_strong_model_prior_knows_more_than_weak(math_tiny):
    """The pretrained strong LM assigns the right answer more likelihood than the weak one."""
    xs = math_tiny.dataset.splits["test"]
    pos = [e for e in xs if e.label == 1]
    strong, weak = math_tiny.strong_model(), math_tiny.weak_model()
    s = strong.raw_scores(pos).mean().item()
    w = weak.raw_scores(pos).mean().item()
    assert s > w


def test_testbeds_and_build_cli(aar_home, math_tiny, monkeypatch):
    from typer.testing import CliRunner

    from aar.cli import app

    monkeypatch.setenv("AAR_HOME", str(aar_home))
    res = CliRunner().invoke(app, ["testbeds"])
    assert res.exit_code == 0
    line = next(ln for ln in res.output.splitlines() if ln.startswith("math-tiny"))
    assert "built" in line and "not built" not in line and "test 300" in line
    res = CliRunner().invoke(app, ["build", "--testbed", "math-tiny"])
    assert res.exit_code == 0 and str(math_tiny.path) in res.output.replace("\n", "")
    res = CliRunner().invoke(app, ["build", "--testbed", "atlantis"])
    assert res.exit_code == 2 and "unknown testbed 'atlantis'" in res.output
