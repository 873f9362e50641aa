"""Operator-side views for the audit's runs, made from the labelled testbed (never from an agent's files).

* the agents' view: what every agent got (the campaign's ``public/<testbed>``, or exported again
  with the agents' teacher seeds); used only to reproduce a submission at its own seed;
* the audit view: the public view with teacher outputs for the *hidden* audit seeds (1000+k, never
  exported to agents) and the ``final`` split's inputs appended to the ``test`` split (no labels),
  so one run predicts the test and the final ids the server's evaluation needs;
* its strong-model ablation: ``strong.pt`` replaced by a seeded random initialisation of the same
  architecture (built-in views; Hugging Face views name their model instead of shipping weights and
  are not ablated: the ablation reports itself unavailable);
* its teacher ablation: every teacher file's outputs permuted over its ids with a seeded rng, so
  the labels keep their balance and confidence histogram but carry no information.

Each view is built in a temp folder and renamed into place, and made world-readable (the
sandboxes run as unprivileged uids); nothing in it carries a label.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from aar.fileio import write_json_atomic
from aar.w2s.cache import build_atomically, make_readable
from aar.w2s.testbeds.protocol import LabelledTestbed

ABLATION_SEED = 7919  # the rng of the random strong model and the teacher permutation


@dataclass
class AuditViews:
    """The views one audit runs on, and the ids the server evaluates."""

    agent: Path
    audit: Path
    strong_ablation: Path | None
    teacher_ablation: Path
    test_ids: list[str]
    final_ids: list[str]
    notes: list[str] = field(default_factory=list)


def _derive(src: Path, dest: Path, modify: Callable[[Path], object]) -> Path:
    """Copy view ``src`` to ``dest`` atomically, applying ``modify`` to the copy before it is renamed."""

    def build(tmp: Path) -> None:
        shutil.copytree(src, tmp, symlinks=False, dirs_exist_ok=True)
        modify(tmp)

    build_atomically(dest, build)
    make_readable(dest)
    return dest


def _inputs(view: Path) -> dict[str, Any]:
    raw = json.loads((view / "inputs.json").read_text())
    return cast(dict[str, Any], raw.get("splits", raw))


def add_final_inputs(view: Path, testbed: LabelledTestbed) -> list[str]:
    """Append the final split's inputs (labels stripped) to the view's ``test`` split; their ids."""
    final = [e.unlabeled() for e in testbed.dataset.splits.get("final", [])]
    if not final:
        return []
    raw = json.loads((view / "inputs.json").read_text())
    splits = raw.get("splits", raw)
    splits["test"] = list(splits["test"]) + [e.to_json() for e in final]
    splits.pop("final", None)
    write_json_atomic(view / "inputs.json", raw)
    meta = json.loads((view / "view.json").read_text())
    if isinstance(meta.get("sizes"), dict):
        meta["sizes"]["test"] = len(splits["test"])
    write_json_atomic(view / "view.json", meta)
    # under the teacher-on-test protocol the teacher files cover test ids: cover the final ids too
    from aar.w2s.experiment import teacher_outputs

    test_ids = {e["id"] for e in splits["test"]}
    for f in sorted(view.glob("teacher-s*.json")):
        blob = json.loads(f.read_text())
        if not test_ids & set(blob["probs"]):
            continue
        probs = teacher_outputs(testbed, int(blob["seed"])).probs
        blob["probs"].update({e.id: float(probs[e.id]) for e in final if e.id in probs})
        write_json_atomic(f, blob)
    return [e.id for e in final]


def randomise_strong(view: Path, seed: int = ABLATION_SEED) -> bool:
    """Replace ``strong.pt`` by a seeded random init of the same architecture; False for HF views."""
    import torch

    from aar.w2s.cache import save_torch_atomic
    from aar.w2s.models.tiny import GPT, GPTConfig

    f = view / "strong.pt"
    if not f.exists():
        return False
    blob = torch.load(f, weights_only=True)
    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(**blob["config"]))
    save_torch_atomic({**blob, "state": gpt.state_dict()}, f)
    return True


def shuffle_teacher(view: Path, seed: int = ABLATION_SEED) -> None:
    """Permute each teacher file's outputs over its ids (same balance, no information)."""
    rng = np.random.default_rng(seed)
    for f in sorted(view.glob("teacher-s*.json")):
        blob = json.loads(f.read_text())
        ids = sorted(blob["probs"])
        values = np.array([blob["probs"][i] for i in ids], dtype=float)
        blob["probs"] = dict(zip(ids, rng.permutation(values).tolist(), strict=True))
        write_json_atomic(f, blob)


def build_views(
    testbed: LabelledTestbed,
    root: Path,
    hidden_seeds: Sequence[int],
    agent_view: Path | None = None,
    public_seeds: Sequence[int] = (0,),
    say: Callable[[str], None] = lambda _m: None,
) -> AuditViews:
    """Build (or rebuild) every view of one audit under ``root``."""
    from aar.w2s.public import export_public_view

    root.mkdir(parents=True, exist_ok=True)
    if agent_view is None:
        say(f"exporting the agents' view of {testbed.name} (seeds {list(public_seeds)})")
        agent_view = export_public_view(testbed, root / "agent", list(public_seeds))
        make_readable(agent_view)
    say(f"exporting the audit view (hidden seeds {list(hidden_seeds)}, final inputs)")
    base = export_public_view(testbed, root / "base", list(hidden_seeds))
    test_ids = [e["id"] for e in _inputs(base)["test"]]
    final_ids: list[str] = []

    def with_final(v: Path) -> None:
        final_ids.extend(add_final_inputs(v, testbed))

    audit = _derive(base, root / "audit", with_final)
    shutil.rmtree(base, ignore_errors=True)
    notes = []
    strong: Path | None = None
    if (audit / "strong.pt").exists():
        strong = _derive(audit, root / "ablate-strong", randomise_strong)
    else:
        notes.append("strong-model ablation unavailable: the view names a Hugging Face model, no weights")
    teacher = _derive(audit, root / "ablate-teacher", shuffle_teacher)
    return AuditViews(agent_view, audit, strong, teacher, test_ids, final_ids, notes)
