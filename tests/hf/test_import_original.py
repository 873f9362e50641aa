"""Importing the original release: labelled folders only, clear errors, its label conventions, and its
shipped weak-teacher outputs (``cache_results/<dataset>_weak_artifacts/<config>/seed_N.json``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aar.cli import app
from aar.w2s.cache import CacheError
from aar.w2s.experiment import teacher_outputs
from aar.w2s.testbeds.imported import LayoutError, import_testbed, load_imported, read_layout
from aar.w2s.train import TrainConfig

from .layout import SIZES, write_domain

FAST = TrainConfig(epochs=1, lr=1e-4, batch_size=8)


def _rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_agents_data_folder_without_labels_points_to_labeled_data(tmp_path):
    d = write_domain(tmp_path / "data" / "chat", "chat")
    (d / "train_label.jsonl").unlink()  # the original's data/<dataset>: test and train_unlabel only
    for f in ("train_unlabel.jsonl", "test.jsonl"):
        rows = [{k: v for k, v in r.items() if k != "label"} for r in _rows(d / f)]
        (d / f).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(LayoutError, match="labeled_data/<dataset>"):
        read_layout(d, "x")
    write_domain(d, "chat")
    rows = [{k: v for k, v in r.items() if k != "label"} for r in _rows(d / "test.jsonl")]
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(LayoutError, match=r"test.jsonl:1: .*labeled_data"):
        read_layout(d, "x")


def test_a_bad_utf8_byte_is_reported_with_file_and_line(tmp_path):
    d = write_domain(tmp_path / "math", "math")
    with open(d / "train_unlabel.jsonl", "ab") as f:
        f.write(b'{"question": "caf\xe9", "choice": "x", "label": true}\n')
    with pytest.raises(LayoutError, match=rf"train_unlabel.jsonl:{SIZES['train_unlabel'] + 1}: not UTF-8"):
        read_layout(d, "x")


def test_chat_labels_0_and_1_follow_the_original(tmp_path):
    d = write_domain(tmp_path / "chat", "chat")
    rows = _rows(d / "test.jsonl")
    ints = [{**r, "label": 0 if r["label"] == "A" else 1} for r in rows]  # the original's 0 is "A"
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ints))
    data = read_layout(d, "x")
    assert [e.label for e in data.splits["test"]] == [int(r["label"] == "A") for r in rows]
    (d / "test.jsonl").write_text(json.dumps({**rows[0], "label": 2}) + "\n")
    with pytest.raises(LayoutError, match=r"test\.jsonl:1"):
        read_layout(d, "x")


def test_models_are_checked_at_import(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.setenv("AAR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty local hub cache
    src = write_domain(tmp_path / "math", "math")
    env = {"AAR_HOME": str(tmp_path / "home")}
    args = ["testbed", "import", str(src), "--name", "m", "--strong-model", str(tiny_llama)]
    r = CliRunner().invoke(app, [*args, "--weak-model", "/nonexistent"], env=env)
    assert r.exit_code == 2 and "weak model /nonexistent: no such file or folder" in r.output, r.output
    r = CliRunner().invoke(app, [*args, "--weak-model", str(tmp_path)], env=env)
    assert r.exit_code == 2 and "no config.json" in r.output
    r = CliRunner().invoke(app, [*args, "--weak-model", "nobody/no-such-model"], env=env)
    assert r.exit_code == 2 and "local Hugging Face cache" in r.output
    assert not (tmp_path / "home" / "imported" / "m").exists()


def test_nothing_agent_visible_names_the_labelled_source(tmp_path, tiny_llama, tiny_qwen2_chat):
    from aar.w2s.public import export_public_view

    src = write_domain(tmp_path / "secret-place" / "labeled_data" / "math", "math", seed=3)
    tb = import_testbed(
        src, "m-desc", str(tiny_qwen2_chat), str(tiny_llama), tmp_path / "home",
        weak_train=FAST, model_settings={"max_length": 64, "lora": {"rank": 4}},
    )  # fmt: skip
    assert "secret-place" not in tb.spec.description and tb.spec.description.startswith("math (binary)")
    view = export_public_view(tb, tmp_path / "view", [0])
    assert "secret-place" not in (view / "view.json").read_text()
    assert "secret-place" not in (view / "inputs.json").read_text()


def _weak_artifacts(root, dataset: str, src, seeds=(42, 43), p_right=(0.9, 0.7), pairwise=True):
    """The original's cache layout: soft labels [P(label 0), P(label 1)] per train_unlabel row."""
    folder = root / "cache_results" / f"{dataset}_weak_artifacts" / "Qwen_Qwen1_5_0_5B_Chat_e5_lr0.0001"
    folder.mkdir(parents=True)
    rows = _rows(src / "train_unlabel.jsonl")
    for seed, p in zip(seeds, p_right, strict=True):
        soft = []
        for r in rows:
            # the original's label 0: "A" for chat rows, False for binary ones
            orig = (0 if r["label"] == "A" else 1) if pairwise else int(r["label"])
            soft.append([p, 1 - p] if orig == 0 else [1 - p, p])
        (folder / f"seed_{seed}.json").write_text(
            json.dumps({"weak_acc": 0.6 + seed / 1000, "soft_labels": soft, "hard_label_acc": 1.0})
        )
    return folder


@pytest.mark.parametrize("kind", ["chat", "math"])
def test_the_original_weak_outputs_are_the_teacher(kind, tmp_path, tiny_llama, tiny_qwen2_chat):
    src = write_domain(tmp_path / "labeled_data" / kind, kind, seed=5)
    folder = _weak_artifacts(tmp_path, kind, src, pairwise=kind == "chat")
    env = {"AAR_HOME": str(tmp_path / "home")}
    r = CliRunner().invoke(
        app,
        ["testbed", "import", str(src), "--name", f"w-{kind}", "--weak-model", str(tiny_qwen2_chat),
         "--strong-model", str(tiny_llama), "--dev-size", "8", "--max-length", "64", "--lora-rank", "4",
         "--weak-epochs", "1", "--batch-size", "8", "--grad-accum", "1",
         "--weak-outputs", str(folder.parent)],  # the <dataset>_weak_artifacts folder: one config inside
        env=env,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "original weak outputs: seeds 42, 43" in r.output
    tb = load_imported(f"w-{kind}", tmp_path / "home")
    w = tb.spec.weak_outputs
    assert w["config"] == folder.name and w["original_seeds"] == [42, 43] and w["weak_acc"] == [0.642, 0.643]
    for seed, p in ((0, 0.9), (1, 0.7)):
        probs = teacher_outputs(tb, seed).probs
        for split in ("train_unlabel", "dev"):
            xs = tb.dataset.splits[split]
            got = np.array([probs[e.id] for e in xs])
            # P(label=1) is the right index of the pair: the teacher agrees with every label here
            assert np.allclose(got, [p if e.label == 1 else 1 - p for e in xs]), (kind, split)
        assert all(0 < probs[e.id] < 1 for e in tb.dataset.splits["test"])  # aar's own weak teacher
    with pytest.raises(CacheError, match=r"seeds 0\.\.1"):
        teacher_outputs(tb, 2)


def test_weak_outputs_must_align_with_train_unlabel(tmp_path, tiny_llama, tiny_qwen2_chat):
    src = write_domain(tmp_path / "labeled_data" / "chat", "chat")
    folder = _weak_artifacts(tmp_path, "chat", src, seeds=(42,), p_right=(0.8,))
    blob = json.loads((folder / "seed_42.json").read_text())
    (folder / "seed_42.json").write_text(json.dumps({**blob, "soft_labels": blob["soft_labels"][:-1]}))
    models = (str(tiny_qwen2_chat), str(tiny_llama))
    with pytest.raises(LayoutError, match=f"{SIZES['train_unlabel'] - 1} soft labels for"):
        import_testbed(src, "w", *models, tmp_path / "home", weak_outputs=folder)
    with pytest.raises(LayoutError, match=r"no seed_N\.json"):
        import_testbed(src, "w", *models, tmp_path / "home", weak_outputs=src)
