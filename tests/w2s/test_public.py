import json

import numpy as np

from aar.w2s.experiment import run_method
from aar.w2s.methods.registry import get_method
from aar.w2s.public import build_vault_bundle, export_public_view, load_public_view, split_halves


def test_public_view_has_no_labels_and_runs_methods(tmp_path, math_tiny):
    view_dir = export_public_view(math_tiny, tmp_path / "view", seeds=[0])
    text = (view_dir / "inputs.json").read_text()
    blob = json.loads(text)
    assert blob["splits"]["train_label"] == []
    assert all(e["label"] is None for xs in blob["splits"].values() for e in xs)
    assert not (view_dir / "weak.pt").exists() and not (view_dir / "dataset.json").exists()
    assert "public" not in text and "private" not in text
    view = load_public_view(view_dir)
    a = run_method(view, get_method("vanilla"), seed=0)
    b = run_method(math_tiny, get_method("vanilla"), seed=0)
    assert np.allclose(list(a.probs.values()), [b.probs[k] for k in a.probs], atol=1e-6)


def test_halves_are_stable_and_balanced():
    ids = [f"x{i}" for i in range(101)]
    h = split_halves("math", ids)
    assert h == split_halves("math", list(reversed(ids)))
    assert sum(v == "public" for v in h.values()) == 50


def test_vault_bundle_covers_test_and_is_cached(math_tiny):
    b = build_vault_bundle(math_tiny, seeds=[0, 1], baselines=["vanilla"])
    test_ids = {e.id for e in math_tiny.dataset.splits["test"]}
    assert set(b.labels) == test_ids == set(b.halves)
    assert len(b.references["weak"]) == len(b.references["vanilla"]) == 2
    assert build_vault_bundle(math_tiny, seeds=[0, 1], baselines=["vanilla"]) == b
