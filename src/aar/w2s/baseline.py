"""The baseline table: weak, ceiling, transfer and PGR for shipped methods (or method files) over seeds.

Weak and ceiling accuracies are fixed per testbed as their means over the seeds (as in the original
study); each method's PGR is computed per seed against those. Intervals come from
:func:`aar.w2s.metrics.pgr_estimate` over the per-example correctness on test (computed here, on the
harness side): a t interval over seeds joined with a bootstrap over test examples shared by method,
weak and ceiling (Welch-Satterthwaite), so they cover both seed noise and test-sample noise. (A
percentile bootstrap over three seeds is just [min, max] of three numbers.) Every method is compared
with vanilla on the same examples and seeds (:func:`aar.w2s.metrics.paired_comparison`, p-value).

Methods never see the labelled testbed: they run over its cached public view (inputs without labels,
teacher outputs on ``train_unlabel`` only unless the testbed's protocol has ``teacher_on_test``).
Shipped methods run in this process; method *files* run in a child process
(:func:`aar.w2s.worker.run_isolated`), in a bubblewrap sandbox where one works. ``weak`` is the
harness's reference: its row is the cached teacher's own predictions, not a method run.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

import aar
from aar.w2s.data import labels_of
from aar.w2s.experiment import run_method
from aar.w2s.methods.registry import builtin_methods, get_method
from aar.w2s.metrics import paired_comparison, pgr_estimate
from aar.w2s.references import ceiling_probs, teacher_outputs
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.view import cached_public_view, protocol_teacher_on_test

REFERENCE_ONLY = ("weak",)  # methods that are baselines themselves, not transfer methods
COMPARE_TO = "vanilla"
INTERVAL = (
    "weak and ceiling accuracy averaged over seeds; PGR per seed; 95% interval: t over seeds + "
    "bootstrap over test examples shared by method, weak and ceiling (Welch-Satterthwaite)"
)


def code_version() -> str:
    """The git commit of the source tree if available, else the package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(aar.__file__).parent,
        )
        if sha.returncode == 0 and sha.stdout.strip():
            return f"{aar.__version__}+g{sha.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return aar.__version__


def resolve_methods(names: Sequence[str]) -> list[str]:
    """Expand ``all`` and check every name (a clear error for unknown ones)."""
    if list(names) == ["all"]:
        return [n for n in builtin_methods() if n not in REFERENCE_ONLY]
    for n in names:
        get_method(n)
    return list(names)


def accuracy_estimate(correct: np.ndarray) -> dict[str, Any]:
    """Mean accuracy over seeds with the same interval as PGR (t over seeds + example bootstrap).

    PGR against a weak accuracy of 0 and a ceiling of 1 *is* the accuracy, so this is
    :func:`pgr_estimate` with those baselines.
    """
    n = correct.shape[1]
    return pgr_estimate(correct, np.zeros((1, n)), np.ones((1, n))).to_dict()


def _correct(probs: dict[str, float], ids: list[str], labels: np.ndarray) -> np.ndarray:
    p = np.array([probs[i] for i in ids], dtype=float)
    return cast(np.ndarray, ((p > 0.5).astype(int) == labels).astype(float))


def run_baseline(
    testbed: LabelledTestbed,
    methods: Sequence[str],
    seeds: Sequence[int],
    on_progress: Callable[[str], None] | None = None,
    compare_to: str | None = COMPARE_TO,
    sandbox: bool | None = None,
) -> dict[str, Any]:
    """Run ``methods`` for each seed and return the JSON-ready result (config, timings, methods).

    ``compare_to`` (default vanilla) is run too when not among ``methods`` and every method gets a
    paired comparison with it. ``sandbox`` is passed to :func:`aar.w2s.worker.run_isolated` for
    method files (None: bubblewrap when it works, else a plain child process).
    """
    from aar.w2s.worker import run_isolated

    say = on_progress or (lambda _msg: None)
    names = resolve_methods(methods)
    seeds = list(seeds)
    t_start = time.time()
    test = testbed.dataset.splits["test"]
    ids = [e.id for e in test]
    labels = np.array(labels_of(test))
    weak_c: list[np.ndarray] = []
    ceil_c: list[np.ndarray] = []
    timings: dict[str, list[float]] = {"teacher_s": [], "ceiling_s": []}
    for seed in seeds:
        say(f"seed {seed}: weak teacher")
        t = time.time()
        weak_c.append(_correct(teacher_outputs(testbed, seed).probs, ids, labels))
        timings["teacher_s"].append(round(time.time() - t, 2))
        say(f"seed {seed}: ceiling")
        t = time.time()
        ceil_c.append(_correct(ceiling_probs(testbed, seed), ids, labels))
        timings["ceiling_s"].append(round(time.time() - t, 2))
    weak_m, ceil_m = np.array(weak_c), np.array(ceil_c)
    weak, ceiling = accuracy_estimate(weak_m), accuracy_estimate(ceil_m)
    say("public view")
    view = cached_public_view(testbed, seeds)
    to_run = list(names)
    if compare_to and compare_to not in to_run:
        to_run.append(compare_to)
    correct: dict[str, np.ndarray] = {}
    results: dict[str, dict[str, Any]] = {}
    for name in to_run:
        seconds: list[float] = []
        if name in REFERENCE_ONLY:
            m, source = weak_m, "harness reference (cached teacher outputs)"
            params: dict[str, Any] = {}
        elif name.endswith(".py"):
            say(f"{name}: seeds {seeds} (child process)")
            iso = run_isolated(view.path, name, seeds, sandbox=sandbox)
            if not iso.ok:
                from aar.w2s.methods.base import MethodError

                raise MethodError(f"method file {name} failed: {iso.error}")
            m = np.array([_correct(r["probs"], ids, labels) for r in iso.runs])
            seconds = [round(float(r["seconds"]), 2) for r in iso.runs]
            params = iso.runs[0]["params"] if iso.runs else {}
            where = "bubblewrap sandbox" if iso.isolation == "bwrap" else "NO sandbox"
            source = f"file, child process ({where})"
        else:
            method = get_method(name)
            rows = []
            for seed in seeds:
                say(f"{name}: seed {seed}")
                run = run_method(view, method, seed)
                rows.append(_correct(run.probs, ids, labels))
                seconds.append(round(run.seconds, 2))
            m, params, source = np.array(rows), method.resolve_params(None), "shipped, over the public view"
        correct[name] = m
        results[name] = {
            "params": params,
            "weak_acc": weak,
            "ceiling_acc": ceiling,
            "transfer_acc": accuracy_estimate(m),
            "pgr": pgr_estimate(m, weak_m, ceil_m).to_dict(),
            "seconds": seconds,
            "source": source,
        }
    if compare_to:
        ref = correct[compare_to]
        for name in names:
            if name == compare_to:
                results[name]["vs_" + compare_to] = None
                continue
            cmp = paired_comparison(correct[name], ref, weak_m, ceil_m).to_dict()
            results[name]["vs_" + compare_to] = {**cmp, "reference": compare_to}
    extra = {}
    if compare_to and compare_to not in names:
        extra = {compare_to: results.pop(compare_to)}
    return {
        "testbed": testbed.name,
        "config": {
            "testbed_spec": testbed.spec.to_dict(),
            "methods": names,
            "seeds": seeds,
            "teacher_on_test": protocol_teacher_on_test(testbed),
            "compare_to": compare_to,
            "pgr_baselines": INTERVAL,
        },
        "split_sizes": testbed.dataset.sizes(),
        "code_version": code_version(),
        "python": platform.python_version(),
        "timings": {**timings, "total_s": round(time.time() - t_start, 2)},
        "weak_acc": weak,
        "ceiling_acc": ceiling,
        "methods": results,
        **({"reference_runs": extra} if extra else {}),
    }


def render_table(result: dict[str, Any]) -> str:
    """The result as a fixed-width text table: means with their 95% intervals, and the comparison."""
    ref = result["config"].get("compare_to")
    head: tuple[str, ...] = ("method", "weak acc", "ceiling acc", "transfer acc", "PGR")
    rows = [(*head, f"PGR - {ref} [95% CI], p(>)") if ref else head]
    for name, r in result["methods"].items():
        row: tuple[str, ...] = (
            name, _fmt(r["weak_acc"]), _fmt(r["ceiling_acc"]), _fmt(r["transfer_acc"]), _fmt(r["pgr"])
        )
        if ref:
            c = r.get("vs_" + ref)
            row = (*row, "-" if c is None else f"{c['diff']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], "
                   f"p={c['p_greater']:.3g}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    seeds = result["config"]["seeds"]
    on_test = result["config"].get("teacher_on_test")
    protocol = "teacher on test" if on_test else "teacher on train_unlabel only"
    lines.append(
        f"testbed {result['testbed']}, seeds {seeds}, test n={result['split_sizes']['test']}, {protocol}; "
        "mean [95% CI: t over seeds + test-example bootstrap]"
        + (f"; paired comparison with {ref} (one-sided p)" if ref else "")
    )
    return "\n".join(lines)


def _fmt(est: dict[str, Any]) -> str:
    return f"{est['mean']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}]"
