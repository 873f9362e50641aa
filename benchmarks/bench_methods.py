"""Benchmark every shipped method on every built-in testbed, with the weak teacher cached.

Usage:
    python benchmarks/bench_methods.py [--testbeds math,code,chat] [--methods all] [--repeats 3]
                                       [--home DIR] [--out PATH]

With no arguments: every shipped method (the registry) on ``math``, ``code`` and ``chat`` in the
default cache (``$AAR_HOME`` or ``~/.cache/aar``; testbeds not built yet are built first, which is
not timed), ``--repeats`` runs each at seeds 0, 1, 2, ... The teacher of each seed and the public
view are computed before the timed runs. Each run is timed as :func:`aar.w2s.experiment.run_method`
reports it (the method's own time) and as the whole call (context building included: wall time, and
this process's CPU time, which moves less with the machine's load), and split into phases by timers
wrapped around the science core's entry points (load: fresh strong models from the checkpoint;
prepare: centring the prior; train: ``finetune``; predict: ``predict_proba``; zero_shot and
features: the frozen model's scores and activations; other: the rest of the method). Each run starts
without the in-process memo of the strong model's prepared centre (``--warm`` keeps it across runs,
as a worker serving many runs does); the first run of the process also pays torch's one-time imports
(its first optimizer), which the median leaves out.

``--predictions FILE`` keeps every run's test predictions; ``--compare FILE`` (such a file from an
earlier version of the code) adds, per testbed, method and seed, whether the predictions are
bit-identical, their largest difference, and accuracy and PGR before and after: the evidence that a
speed-up did not change the science.

``weak`` needs the teacher's outputs on test inputs, so it runs on the ``teacher_on_test`` protocol
of each testbed. Results (medians, every run, the CPU count and the load average before and after)
go to stdout and ``benchmarks/results/bench_methods.json``. Timings on a shared machine are noisy:
compare medians, and read the load average beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import aar.w2s.methods.common as common
import aar.w2s.methods.recipe as recipe
import aar.w2s.methods.self_train as self_train
import aar.w2s.models.base as models_base
import aar.w2s.models.judge as judge
import aar.w2s.train as train
from aar.w2s.experiment import accuracy_on, ceiling_probs, run_method, teacher_outputs
from aar.w2s.methods.registry import builtin_methods
from aar.w2s.models.judge import TinyJudge
from aar.w2s.testbeds.registry import load_testbed
from aar.w2s.view import StrongModelLoader, cached_public_view, with_teacher_on_test

PHASES = ("load", "prepare", "train", "predict", "zero_shot", "features")


class PhaseTimer:
    """Wall time per phase, accumulated by wrappers around the core's entry points (see the docstring)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._depth = 0

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` timed into ``phase`` (only the outermost timed call counts, so phases never overlap)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - t0
                self._depth -= 1

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[PhaseTimer]:
        """Patch the entry points for the duration of the block, restore them after."""
        targets: list[tuple[object, str, str]] = [
            (StrongModelLoader, "__call__", "load"),
            (TinyJudge, "prepare", "prepare"),
            (TinyJudge, "zero_shot_logits", "zero_shot"),
            (TinyJudge, "features", "features"),
            (train, "finetune", "train"),
            (common, "finetune", "train"),
            (recipe, "finetune", "train"),
            (models_base, "predict_proba", "predict"),
            (common, "predict_proba", "predict"),
            (recipe, "predict_proba", "predict"),
            (self_train, "predict_proba", "predict"),
        ]
        saved = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]
        try:
            for obj, name, phase in targets:
                setattr(obj, name, self.wrap(phase, getattr(obj, name)))
            yield self
        finally:
            for obj, name, fn in saved:
                setattr(obj, name, fn)


def time_method(
    tb: Any,
    method: Any,
    seeds: list[int],
    predictions: dict[str, dict[str, float]] | None = None,
    warm: bool = False,
) -> dict[str, Any]:
    """Run ``method`` once per seed; medians of the method's time, the whole call and each phase.

    ``predictions``, when given, receives each seed's test predictions (keyed by the seed as text).
    Unless ``warm``, each run starts without the process's memo of prepared centres, as a run in a
    fresh worker process would (a warm worker that served an earlier run on the testbed has it).
    """
    runs = []
    for seed in seeds:
        if not warm:
            judge._CENTERS.clear()
        timer = PhaseTimer()
        with timer.installed():
            t0, c0 = time.perf_counter(), time.process_time()
            r = run_method(tb, method, seed=seed)
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
        if predictions is not None:
            predictions[str(seed)] = r.probs
        phases = dict(timer.seconds)
        phases["other"] = max(0.0, r.seconds - sum(phases.values()))
        runs.append({"seed": seed, "method_s": r.seconds, "call_s": total, "cpu_s": cpu, "phases_s": phases})
    med = statistics.median
    return {
        "median_s": round(med(r["method_s"] for r in runs), 3),
        "median_call_s": round(med(r["call_s"] for r in runs), 3),
        "median_cpu_s": round(med(r["cpu_s"] for r in runs), 3),
        "median_phases_s": {p: round(med(r["phases_s"][p] for r in runs), 3) for p in (*PHASES, "other")},
        "runs": [
            {
                "seed": r["seed"],
                "method_s": round(r["method_s"], 3),
                "call_s": round(r["call_s"], 3),
                "cpu_s": round(r["cpu_s"], 3),
                "phases_s": {k: round(v, 3) for k, v in r["phases_s"].items()},
            }
            for r in runs
        ],
    }


def compare(
    tb: Any, before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Per seed: are the test predictions bit-identical, their max |difference|, and accuracy and PGR
    before and after (PGR against the cached weak teacher and ceiling of that seed)."""
    out = {}
    for seed, new in after.items():
        old = before.get(seed)
        if old is None or set(old) != set(new):
            out[seed] = {"comparable": False}
            continue
        ids = sorted(new)
        a, b = np.array([old[i] for i in ids]), np.array([new[i] for i in ids])
        weak = accuracy_on(tb, teacher_outputs(tb, int(seed)).probs)
        ceiling = accuracy_on(tb, ceiling_probs(tb, int(seed)))
        acc_a, acc_b = accuracy_on(tb, old), accuracy_on(tb, new)
        gap = ceiling - weak
        out[seed] = {
            "identical": bool(np.array_equal(a, b)),
            "max_abs_diff": float(np.max(np.abs(a - b))),
            "hard_label_changes": int(np.sum((a > 0.5) != (b > 0.5))),
            "accuracy": [round(acc_a, 6), round(acc_b, 6)],
            "pgr": [round((acc_a - weak) / gap, 6), round((acc_b - weak) / gap, 6)] if gap > 0 else None,
        }
    return out


def main() -> None:
    """Run the benchmark, print one line per testbed and method, write the JSON results."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--testbeds", default="math,code,chat")
    ap.add_argument("--methods", default="all", help="comma-separated shipped method names, or 'all'")
    ap.add_argument("--repeats", type=int, default=3, help="runs per method (seeds 0..N-1); at least 1")
    ap.add_argument("--home", default=None, help="AAR_HOME holding the testbeds (default: the usual cache)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_methods.json"))
    ap.add_argument("--warm", action="store_true", help="keep in-process memos across runs (a warm worker)")
    ap.add_argument("--predictions", default=None, help="write every run's test predictions here (JSON)")
    ap.add_argument(
        "--compare",
        default=None,
        help="a --predictions file of an earlier code version: report identity, max |diff|, accuracy, PGR",
    )
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    shipped = builtin_methods()
    names = list(shipped) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in names if m not in shipped]
    if unknown:
        ap.error(f"unknown methods {unknown}; shipped: {', '.join(shipped)}")
    home = Path(args.home) if args.home else None
    seeds = list(range(args.repeats))
    torch.set_num_threads(1)  # what run_method sets too: one thread per experiment process
    before = json.loads(Path(args.compare).read_text()) if args.compare else None
    preds: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    out: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seeds": seeds,
        "warm": args.warm,
        "testbeds": {},
    }
    for name in args.testbeds.split(","):
        tb = load_testbed(name, home)
        on_test = with_teacher_on_test(tb)
        for seed in seeds:  # cached before timing: teacher outputs and the public views
            teacher_outputs(tb, seed)
            cached_public_view(tb, [seed])
            if "weak" in names:
                cached_public_view(on_test, [seed])
        results = {}
        for m in names:
            preds.setdefault(name, {})[m] = {}
            target = on_test if m == "weak" else tb
            results[m] = time_method(target, shipped[m], seeds, preds[name][m], args.warm)
            if before is not None and m in before.get(name, {}):
                results[m]["equivalence"] = compare(tb, before[name][m], preds[name][m])
            print(
                f"{name:5} {m:10} median {results[m]['median_s']:7.2f} s  "
                f"(call {results[m]['median_call_s']:.2f} s, CPU {results[m]['median_cpu_s']:.2f} s; "
                f"load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
        out["testbeds"][name] = results
    if args.predictions:
        Path(args.predictions).write_text(json.dumps(preds))
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    dest = Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
