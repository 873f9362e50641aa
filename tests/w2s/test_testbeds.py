import json
import shutil
import stat
from pathlib import Path

import pytest

from aar.w2s.cache import CacheError
from aar.w2s.testbeds.build import DRAWN_SPLITS, PUBLIC_SPLITS, build_testbed, make_dataset, testbed_dir
from aar.w2s.testbeds.registry import TESTBEDS, UnknownTestbedError, get_spec, is_built, load_testbed
from aar.w2s.testbeds.secret import SECRET_DIR, read_salt


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
    assert "built" in line and "not built" not in line and "test 300, final 200" in line
    res = CliRunner().invoke(app, ["build", "--testbed", "math-tiny"])
    assert res.exit_code == 0 and str(math_tiny.path) in res.output.replace("\n", "")
    res = CliRunner().invoke(app, ["build", "--testbed", "atlantis"])
    assert res.exit_code == 2 and "unknown testbed 'atlantis'" in res.output


def _home_sharing_pretraining(tmp_path, aar_home) -> Path:
    """A fresh AAR_HOME that reuses the session's pretrained checkpoints (no pretraining here)."""
    home = tmp_path / "home"
    shutil.copytree(aar_home / "pretrained", home / "pretrained")
    return home


def test_salt_is_secret_600_and_draws_test_and_final(math_tiny, aar_home, tmp_path):
    secret = math_tiny.path / SECRET_DIR
    salt = secret / "salt"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o700 and stat.S_IMODE(salt.stat().st_mode) == 0o600
    assert len(salt.read_bytes()) == 32
    sizes = math_tiny.dataset.sizes()
    assert sizes["test"] == 300 and sizes["final"] == 200
    again, _ = make_dataset(math_tiny.spec, read_salt(math_tiny.path))
    assert again.splits == math_tiny.dataset.splits  # the stored salt reproduces the stored draw
    meta = json.loads((math_tiny.path / "spec.json").read_text())
    assert meta["build"] == 2 and set(meta["pretrained"]) == {"strong", "weak"}


def test_two_salts_draw_different_tests_from_identical_public_splits_without_pretraining_again(
    math_tiny, aar_home, tmp_path
):
    home = _home_sharing_pretraining(tmp_path, aar_home)
    a = load_testbed("math-tiny", home)
    meta = json.loads((a.path / "spec.json").read_text())
    assert {v["how"] for v in meta["pretrained"].values()} == {"cached"}
    assert (a.path / "strong.pt").read_bytes() == (math_tiny.path / "strong.pt").read_bytes()
    assert read_salt(a.path) != read_salt(math_tiny.path)
    for s in PUBLIC_SPLITS:
        assert a.dataset.splits[s] == math_tiny.dataset.splits[s]
    for s in DRAWN_SPLITS:
        assert not {e.id for e in a.dataset.splits[s]} & {e.id for e in math_tiny.dataset.splits[s]}
        assert [e.prompt for e in a.dataset.splits[s]] != [e.prompt for e in math_tiny.dataset.splits[s]]
    # --force keeps the salt (the same draw); --new-draw makes a new one
    salt = read_salt(a.path)
    build_testbed(a.spec, home, force=True)
    assert read_salt(a.path) == salt and load_testbed("math-tiny", home).dataset.splits == a.dataset.splits
    build_testbed(a.spec, home, new_draw=True)
    assert read_salt(a.path) != salt
    b = load_testbed("math-tiny", home)
    assert b.dataset.splits["train_unlabel"] == a.dataset.splits["train_unlabel"]
    assert b.dataset.splits["test"] != a.dataset.splits["test"]


def test_version_1_checkpoints_are_adopted_not_retrained(math_tiny, tmp_path):
    """A build of version 1 (same corpus and models) gives its checkpoints to the pretraining cache."""
    from aar.w2s.cache import key_of
    from aar.w2s.testbeds.build import _NOT_IN_BUILD
    from aar.w2s.testbeds.worlds import WORLDS

    spec = math_tiny.spec
    old_sizes = {"train_label": 150, "train_unlabel": 600, "dev": 100, "test": 300}
    old_spec = {**spec.to_dict(), "sizes": old_sizes}
    built_from = {k: v for k, v in old_spec.items() if k not in _NOT_IN_BUILD}
    key = key_of({"spec": built_from, "world": WORLDS[spec.world].version, "build": 1})
    old = tmp_path / "testbeds" / f"math-tiny-{key}"
    old.mkdir(parents=True)
    for f in ("strong.pt", "weak.pt"):
        shutil.copyfile(math_tiny.path / f, old / f)
    (old / "spec.json").write_text(json.dumps({"spec": old_spec, "corpus_lines": 1, "timings": {}}))
    (old / "COMPLETE").write_text("ok")
    tb = load_testbed("math-tiny", tmp_path)
    meta = json.loads((tb.path / "spec.json").read_text())
    assert {v["how"] for v in meta["pretrained"].values()} == {"adopted"}
    assert (tb.path / "weak.pt").read_bytes() == (math_tiny.path / "weak.pt").read_bytes()
