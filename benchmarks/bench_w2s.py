"""Benchmark the W2S core: testbed build time and one full method run per domain.

Usage:
    python benchmarks/bench_w2s.py [--testbeds math,code,chat] [--repeats 3] [--home DIR]

Build time is measured once per testbed into a fresh cache (``--home``, default a temp dir; pass
``--reuse`` to time only what is not cached). Method runs are measured with the weak teacher
already cached, ``--repeats`` times per method, and reported as medians. Results go to stdout and
``benchmarks/results/bench_w2s.json``. Timings on a shared machine are noisy: compare medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from aar.w2s.experiment import run_method, teacher_outputs
from aar.w2s.methods.registry import get_method
from aar.w2s.testbeds.registry import load_testbed


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbeds", default="math,code,chat")
    ap.add_argument("--methods", default="vanilla,aux_conf,zero_shot")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--home", default=None, help="AAR_HOME to build into (default: a fresh temp dir)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="aar-bench-"))
    out: dict = {"home": str(home), "testbeds": {}}
    for name in args.testbeds.split(","):
        t0 = time.time()
        tb = load_testbed(name, home)
        build_s = time.time() - t0
        teacher_outputs(tb, 0)
        runs = {}
        for m in args.methods.split(","):
            secs = [run_method(tb, get_method(m), seed=0).seconds for _ in range(args.repeats)]
            runs[m] = {"median_s": round(statistics.median(secs), 2), "runs_s": [round(s, 2) for s in secs]}
        out["testbeds"][name] = {"build_s": round(build_s, 1), "method_runs": runs}
        print(
            f"{name}: build {build_s:.1f} s; " + ", ".join(f"{m} {r['median_s']} s" for m, r in runs.items())
        )
    dest = Path(__file__).parent / "results" / "bench_w2s.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
