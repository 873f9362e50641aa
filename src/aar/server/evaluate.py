"""Operator-side evaluation of runs on every split (the admin evaluate endpoint), for audits and
headline figures.

Runs (e.g. one per audit seed) are scored on the public and private halves of the test split and on
the final split, each with :func:`aar.w2s.metrics.pgr_estimate` against that split's weak and
ceiling reference runs (intervals over seeds and test examples). ``above_ceiling_p`` is the one-sided
p-value of :func:`aar.w2s.metrics.paired_comparison` for "the runs beat the ceiling" on the same
examples. ``compare`` is the same comparison against the caller's other runs (``compare_runs``, e.g. an
ablation of the same method; paired by seed when the counts match), a named reference, or the best shipped
baseline, which is chosen on the PUBLIC half only (highest mean public PGR over its seeds) so that
picking it never looks at the private or final figures it is then compared on. Reference seeds and
audit seeds are different runs, so the comparison does not pair seeds. Nothing is stored.
"""

from __future__ import annotations

import numpy as np

from aar.server.errors import ApiError
from aar.server.schemas import ComparisonOut, EvaluateOut, PgrEstimateOut, SplitEval
from aar.server.scoring import majority_share
from aar.server.vault import TestbedArrays
from aar.w2s.metrics import paired_comparison, pgr, pgr_estimate

BASELINE_EXCLUDED = ("weak", "ceiling")


def best_baseline(arrays: TestbedArrays) -> str | None:
    """The shipped reference (not weak or ceiling) with the highest mean public-half PGR, or None."""
    best, best_pgr = None, -np.inf
    for name in sorted(arrays.references):
        if name in BASELINE_EXCLUDED:
            continue
        accs = _public_accs(arrays, arrays.references[name])
        value = float(np.mean([pgr(a, arrays.weak[0], arrays.ceiling[0]) for a in accs]))
        if value > best_pgr:
            best, best_pgr = name, value
    return best


def _public_accs(arrays: TestbedArrays, runs: np.ndarray) -> list[float]:
    labels = arrays.labels[arrays.public]
    return [float(np.mean((r[arrays.public] > 0.5) == labels)) for r in runs]


def run_matrices(arrays: TestbedArrays, runs: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(runs x test ids) and (runs x final ids) probabilities in canonical order; 422 on any id
    mismatch or bad probability."""
    final_pos = {k: i for i, k in enumerate(arrays.final_ids)}
    n_test, n_final = len(arrays.ids), len(arrays.final_ids)
    test = np.empty((len(runs), n_test), dtype=np.float64)
    final = np.empty((len(runs), n_final), dtype=np.float64)
    for r, run in enumerate(runs):
        unknown = [k for k in run if k not in arrays.pos and k not in final_pos]
        if unknown:
            raise ApiError(
                422,
                "unknown_ids",
                f"run {r}: ids that are not test or final examples of this testbed",
                {"run": r, "example_ids": unknown[:5], "count": len(unknown)},
            )
        if len(run) != n_test + n_final:
            missing = [k for k in (*arrays.ids, *arrays.final_ids) if k not in run]
            raise ApiError(
                422,
                "missing_ids",
                f"run {r}: a probability is needed for every test and final example",
                {"run": r, "example_ids": missing[:5], "count": len(missing)},
            )
        for k, p in run.items():
            if k in arrays.pos:
                test[r, arrays.pos[k]] = p
            else:
                final[r, final_pos[k]] = p
    for m in (test, final):
        bad = ~np.isfinite(m) | (m < 0.0) | (m > 1.0)
        if bad.any():
            msg = "probabilities must be finite and in [0, 1]"
            raise ApiError(422, "bad_probability", msg, {"count": int(bad.sum())})
    return test, final


def _correct(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    correct: np.ndarray = ((probs > 0.5).astype(np.int8) == labels[None, :]).astype(np.float64)
    return correct


def _split(
    probs: np.ndarray,
    labels: np.ndarray,
    refs: dict[str, np.ndarray],
    reference: str | None,
    other: np.ndarray | None = None,
) -> SplitEval:
    correct = _correct(probs, labels)
    weak, ceiling = _correct(refs["weak"], labels), _correct(refs["ceiling"], labels)
    est = pgr_estimate(correct, weak, ceiling)
    above = paired_comparison(correct, ceiling, weak, ceiling, paired_seeds=False)
    compare = None
    if other is not None:  # the caller's own runs, paired by seed when the counts match
        pair = other.shape[0] == probs.shape[0]
        c = paired_comparison(correct, _correct(other, labels), weak, ceiling, paired_seeds=pair)
        compare = ComparisonOut(reference="compare_runs", **c.to_dict())
    elif reference is not None:
        c = paired_comparison(correct, _correct(refs[reference], labels), weak, ceiling, paired_seeds=False)
        compare = ComparisonOut(reference=reference, **c.to_dict())
    return SplitEval(
        n=int(labels.size),
        accuracy=correct.mean(axis=1).tolist(),
        pgr=PgrEstimateOut(**est.to_dict()),
        majority_share=float(np.mean([majority_share(p) for p in probs])),
        above_ceiling_p=above.p_greater,
        compare=compare,
    )


def evaluate(
    arrays: TestbedArrays,
    runs: list[dict[str, float]],
    compare_to: str | None,
    compare_runs: list[dict[str, float]] | None = None,
) -> EvaluateOut:
    """Figures of ``runs`` on the public half, the private half and the final split (None if empty),
    compared with a reference (``compare_to``) or with other runs (``compare_runs``)."""
    if compare_to is not None and compare_runs:
        raise ApiError(422, "two_comparisons", "give compare_to or compare_runs, not both")
    reference = compare_to
    if compare_to == "best_baseline":
        reference = best_baseline(arrays)
        if reference is None:
            raise ApiError(422, "no_baseline", "the testbed has no shipped baseline besides weak and ceiling")
    elif compare_to is not None and compare_to not in arrays.references:
        raise ApiError(
            422,
            "unknown_reference",
            f"no reference {compare_to!r} in this testbed",
            {"references": sorted(arrays.references)},
        )
    test, final = run_matrices(arrays, runs)
    o_test, o_final = run_matrices(arrays, compare_runs) if compare_runs else (None, None)
    splits: dict[str, SplitEval | None] = {}
    for name, mask in (("public", arrays.public), ("private", ~arrays.public)):
        refs = {k: v[:, mask] for k, v in arrays.references.items()}
        other = None if o_test is None else o_test[:, mask]
        splits[name] = _split(test[:, mask], arrays.labels[mask], refs, reference, other)
    splits["final"] = (
        _split(final, arrays.final_labels, arrays.final_references, reference, o_final)
        if arrays.final_ids
        else None
    )
    return EvaluateOut(testbed_id=arrays.testbed_id, splits=splits)
