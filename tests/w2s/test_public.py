import json

import numpy as np

from aar.w2s.experiment import run_method
from aar.w2s.methods.registry import get_method
from aar.w2s.public import VISIBLE_SPLITS, build_vault_bundle, export_public_view, load_public_view


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


def test_vault_bundle_is_format_2_with_test_and_final_and_is_cached(math_tiny):
    b = build_vault_bundle(math_tiny, seeds=[0, 1], baselines=["vanilla"])
    test_ids = {e.id for e in math_tiny.dataset.splits["test"]}
    final_ids = {e.id for e in math_tiny.dataset.splits["final"]}
    assert b.format == 2 and set(b.labels) == test_ids and set(b.final_labels) == final_ids
    assert len(final_ids) == 200 and not test_ids & final_ids
    assert b.final_labels == {e.id: e.label for e in math_tiny.dataset.splits["final"]}
    for name in ("weak", "ceiling", "vanilla"):
        assert len(b.references[name]) == 2
        assert all(set(run) == test_ids | final_ids for run in b.references[name])
    assert b.teacher_on_test is bool(getattr(math_tiny.spec, "teacher_on_test", False))
    assert "halves" not in b.model_dump()
    assert build_vault_bundle(math_tiny, seeds=[0, 1], baselines=["vanilla"]) == b


def test_public_view_holds_nothing_of_final_nor_the_salt(tmp_path, math_tiny):
    """Final inputs, ids and teacher outputs, and the draw salt, appear in no file of the view."""
    view_dir = export_public_view(math_tiny, tmp_path / "view", seeds=[0, 1])
    assert VISIBLE_SPLITS == ("train_unlabel", "dev", "test")
    files = [p for p in view_dir.rglob("*") if p.is_file()]
    assert not [p for p in view_dir.rglob("*") if "secret" in p.name or "salt" in p.name]
    blob = b"".join(p.read_bytes() for p in files)
    salt = (math_tiny.path / "secret" / "salt").read_bytes()
    assert salt not in blob and salt.hex().encode() not in blob
    text = blob.decode("utf-8", errors="replace")
    final = math_tiny.dataset.splits["final"]
    assert final and not [e.id for e in final if e.id in text]
    assert not [e for e in final if json.dumps(e.prompt) in text]
    view = load_public_view(view_dir)
    assert view.dataset.splits["final"] == []
    assert "final" not in json.loads((view_dir / "inputs.json").read_text())["splits"]
    assert {e.id for e in view.dataset.splits["test"]} == {e.id for e in math_tiny.dataset.splits["test"]}
