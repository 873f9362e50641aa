"""Label-free diagnostics of a method run: what an agent can know about predictions without ground truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def _arr(probs: Mapping[str, float], ids: Sequence[str]) -> np.ndarray:
    return np.array([probs[i] for i in ids], dtype=float)


def diagnostics(
    runs: Sequence[Mapping[str, float]],
    teachers: Sequence[Mapping[str, float]],
    ids: Sequence[str],
    seconds: Sequence[float],
    prior: Mapping[str, float] | None = None,
) -> dict:
    """Diagnostics of one method over seeds, on ``ids`` (unlabelled inputs: dev and/or test).

    ``runs[k]`` and ``teachers[k]`` are the method's and the teacher's P(label=1) for seed k. Returns
    agreement with the teacher, label balance (and the teacher's), a 10-bin confidence histogram of
    max(p, 1-p), mean confidence, agreement between seeds, optional agreement with the strong
    model's zero-shot prior, and run time. None of it needs a label.
    """
    if not runs or len(runs) != len(teachers):
        raise ValueError("need one teacher output per run")
    ps = [_arr(r, ids) for r in runs]
    ts = [_arr(t, ids) for t in teachers]
    hard = [p > 0.5 for p in ps]
    conf = np.concatenate([np.maximum(p, 1 - p) for p in ps])
    hist, _ = np.histogram(conf, bins=10, range=(0.5, 1.0))
    pairs = [(i, j) for i in range(len(ps)) for j in range(i + 1, len(ps))]
    out = {
        "n_examples": len(ids),
        "n_seeds": len(ps),
        "agreement_with_teacher": float(
            np.mean([np.mean(h == (t > 0.5)) for h, t in zip(hard, ts, strict=True)])
        ),
        "label_balance": float(np.mean([h.mean() for h in hard])),
        "teacher_label_balance": float(np.mean([(t > 0.5).mean() for t in ts])),
        "mean_confidence": float(conf.mean()),
        "confidence_histogram": {
            "bins": [round(0.5 + 0.05 * k, 2) for k in range(11)],
            "share": (hist / max(1, hist.sum())).round(4).tolist(),
        },
        "seed_agreement": float(np.mean([np.mean(hard[i] == hard[j]) for i, j in pairs])) if pairs else None,
        "seconds": [round(float(s), 2) for s in seconds],
    }
    if prior is not None:
        z = _arr(prior, ids) > 0.5
        out["agreement_with_prior"] = float(np.mean([np.mean(h == z) for h in hard]))
        out["teacher_agreement_with_prior"] = float(np.mean([np.mean((t > 0.5) == z) for t in ts]))
    return out
