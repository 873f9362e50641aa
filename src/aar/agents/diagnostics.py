"""Label-free diagnostics of a method run: what an agent can know about predictions without ground truth.

Under the original study's protocol the weak teacher's outputs exist for ``train_unlabel`` only, so
"agreement with the teacher" cannot be measured on dev or test. Measuring it on ``train_unlabel``
itself would be meaningless (the student is trained on those very teacher labels and largely
memorises them), so experiments keep a fixed slice of ``train_unlabel`` away from the method (its
inputs and its teacher outputs; :func:`aar.w2s.experiment.holdout_ids`), predict it as well, and the
teacher agreement and the teacher's label balance are measured there: the same quantity as before (how
far the run departs from the teacher on inputs it did not fit), on a fresh sample of the same
distribution. Everything else (label balance, confidence, agreement between seeds and with the strong
prior) is measured on the dev/test inputs the run predicted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _arr(probs: Mapping[str, float], ids: Sequence[str]) -> np.ndarray:
    return np.array([probs[i] for i in ids], dtype=float)


def diagnostics(
    runs: Sequence[Mapping[str, float]],
    ids: Sequence[str],
    seconds: Sequence[float],
    prior: Mapping[str, float] | None = None,
    holdout_runs: Sequence[Mapping[str, float]] | None = None,
    teachers: Sequence[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Diagnostics of one method over seeds, on ``ids`` (unlabelled inputs: dev and/or test).

    ``runs[k]`` is the method's P(label=1) for seed k on ``ids``. ``holdout_runs[k]`` (optional) are its
    predictions on the held-out slice of ``train_unlabel`` and ``teachers[k]`` seed k's teacher
    outputs (covering that slice). Returns agreement with the teacher on the held-out slice (None
    without one), label balance (and the teacher's, on the slice), a 10-bin confidence histogram of
    max(p, 1-p), mean confidence, agreement between seeds, optional agreement with the strong model's
    zero-shot prior (and the teacher's on the slice is not measurable: the prior is predicted on
    dev/test), and run time. None of it needs a label.
    """
    if not runs:
        raise ValueError("need at least one run")
    ps = [_arr(r, ids) for r in runs]
    hard = [p > 0.5 for p in ps]
    conf = np.concatenate([np.maximum(p, 1 - p) for p in ps])
    hist, _ = np.histogram(conf, bins=10, range=(0.5, 1.0))
    pairs = [(i, j) for i in range(len(ps)) for j in range(i + 1, len(ps))]
    agree_t = t_balance = None
    n_held = 0
    if holdout_runs and teachers and all(holdout_runs):
        if len(holdout_runs) != len(runs) or len(teachers) != len(runs):
            raise ValueError("need one held-out prediction set and one teacher output per run")
        held = sorted(holdout_runs[0])
        n_held = len(held)
        hs = [_arr(h, held) > 0.5 for h in holdout_runs]
        ts = [_arr(t, held) > 0.5 for t in teachers]
        agree_t = float(np.mean([np.mean(h == t) for h, t in zip(hs, ts, strict=True)]))
        t_balance = float(np.mean([t.mean() for t in ts]))
    out = {
        "n_examples": len(ids),
        "n_seeds": len(ps),
        "n_holdout": n_held,
        "agreement_with_teacher": agree_t,
        "label_balance": float(np.mean([h.mean() for h in hard])),
        "teacher_label_balance": t_balance,
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
    return out
