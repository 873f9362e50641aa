"""The baseline table: weak, ceiling, transfer and PGR for shipped methods over seeds.

Weak and ceiling accuracies are fixed per testbed as their means over the seeds (as in the
original study); each method's PGR is computed per seed against those, then summarised with a
95% bootstrap CI over seeds.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aar
from aar.w2s.experiment import accuracy_on, ceiling_probs, run_method, teacher_outputs
from aar.w2s.methods.registry import builtin_methods, get_method
from aar.w2s.metrics import bootstrap_ci, pgr
from aar.w2s.testbeds.registry import Testbed

REFERENCE_ONLY = ("weak",)  # methods that are baselines themselves, not transfer methods


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


def run_baseline(
    testbed: Testbed,
    methods: Sequence[str],
    seeds: Sequence[int],
    on_progress: Callable[[str], None] | None = None,
) -> dict:
    """Run ``methods`` for each seed and return the JSON-ready result (config, timings, methods)."""
    say = on_progress or (lambda _msg: None)
    names = resolve_methods(methods)
    t_start = time.time()
    weak_accs, ceil_accs, timings = [], [], {"teacher_s": [], "ceiling_s": []}
    for seed in seeds:
        say(f"seed {seed}: weak teacher")
        t = time.time()
        teacher = teacher_outputs(testbed, seed)
        timings["teacher_s"].append(round(time.time() - t, 2))
        weak_accs.append(accuracy_on(testbed, teacher.probs))
        say(f"seed {seed}: ceiling")
        t = time.time()
        ceil_accs.append(accuracy_on(testbed, ceiling_probs(testbed, seed)))
        timings["ceiling_s"].append(round(time.time() - t, 2))
    weak = bootstrap_ci(weak_accs)
    ceiling = bootstrap_ci(ceil_accs)
    results = {}
    for name in names:
        method = get_method(name)
        transfer, seconds = [], []
        for seed in seeds:
            say(f"{name}: seed {seed}")
            run = run_method(testbed, method, seed)
            transfer.append(accuracy_on(testbed, run.probs))
            seconds.append(round(run.seconds, 2))
        pgrs = [pgr(a, weak.mean, ceiling.mean) for a in transfer]
        results[name] = {
            "params": method.resolve_params(None),
            "weak_acc": weak.to_dict(),
            "ceiling_acc": ceiling.to_dict(),
            "transfer_acc": bootstrap_ci(transfer).to_dict(),
            "pgr": bootstrap_ci(pgrs).to_dict(),
            "seconds": seconds,
        }
    sizes = testbed.dataset.sizes()
    return {
        "testbed": testbed.name,
        "config": {
            "testbed_spec": testbed.spec.to_dict(),
            "methods": names,
            "seeds": list(seeds),
            "pgr_baselines": "weak and ceiling accuracy averaged over seeds; PGR per seed; 95% bootstrap CI",
        },
        "split_sizes": sizes,
        "code_version": code_version(),
        "python": platform.python_version(),
        "timings": {**timings, "total_s": round(time.time() - t_start, 2)},
        "weak_acc": weak.to_dict(),
        "ceiling_acc": ceiling.to_dict(),
        "methods": results,
    }


def render_table(result: dict) -> str:
    """The result as a fixed-width text table: each cell is a mean with its 95% CI."""
    rows = [("method", "weak acc", "ceiling acc", "transfer acc", "PGR")]
    for name, r in result["methods"].items():
        rows.append(
            (
                name,
                _fmt(r["weak_acc"]),
                _fmt(r["ceiling_acc"]),
                _fmt(r["transfer_acc"]),
                _fmt(r["pgr"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    seeds = result["config"]["seeds"]
    lines.append(
        f"testbed {result['testbed']}, seeds {seeds}, test n={result['split_sizes']['test']}; "
        "mean [95% bootstrap CI over seeds]"
    )
    return "\n".join(lines)


def _fmt(est: dict) -> str:
    return f"{est['mean']:.3f} [{est['ci_low']:.3f}, {est['ci_high']:.3f}]"
