"""Overhead of the sandbox: start time and experiment slowdown, as ratios against no sandbox.

Usage (as root, bubblewrap installed):
    python benchmarks/bench_sandbox.py [--starts 21] [--runs 5] [--steps 300]

* start time: wall time of ``python -S -c pass`` launched plainly (``subprocess.run``) vs through
  :func:`aar.sandbox.run_sandboxed` (probe cached, as in a campaign), medians over ``--starts``
  interleaved launches;
* experiment slowdown: a small torch workload (MLP training on CPU, same interpreter, same thread
  count) run plainly vs sandboxed, ``--runs`` interleaved pairs; the workload reports its own
  compute time, so import time and compute time are compared separately. Ratios are medians of
  per-pair ratios;
* supervisor cost: CPU time the supervising process spends per second of sandboxed wall time
  (watchdog sampling the tree every ``poll_seconds`` plus output readers).

Results go to stdout and ``benchmarks/results/bench_sandbox.json``. Shared machines are noisy:
compare medians, and rerun the baseline in the same invocation (this script always does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aar.sandbox import Limits, SandboxSpec, check_bubblewrap, prepare_workspace, run_sandboxed

WORKLOAD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.manual_seed(0)
steps = int(sys.argv[1])
x = torch.randn(2048, 64); y = (x[:, :8].sum(1) > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(steps):
    opt.zero_grad(); loss = torch.nn.functional.cross_entropy(model(x), y); loss.backward(); opt.step()
t2 = time.perf_counter()
with open("ckpt.pt", "wb") as f:
    torch.save(model.state_dict(), f)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "train_s": t2 - t1, "save_s": t3 - t2, "loss": float(loss)}))
"""


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=21)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_sandbox.json"))
    args = parser.parse_args()

    support = check_bubblewrap(61999)
    if not support.available:
        sys.exit(support.banner())
    tmp = Path(tempfile.mkdtemp(prefix="aar-bench-sandbox-"))
    ws = prepare_workspace(tmp / "ws", 61999)
    plain_dir = tmp / "plain"
    plain_dir.mkdir()
    threads = str(os.cpu_count() or 1)
    env = {"OMP_NUM_THREADS": threads}
    spec = SandboxSpec(workspace=ws, uid=61999, gid=61999, env=env,
                       limits=Limits(memory_mb=4096, cpu_seconds=3600, wall_seconds=3600, max_processes=256,
                                     disk_mb=1024))
    py = sys.executable

    plain_start, box_start = [], []
    for _ in range(args.starts):
        t = time.perf_counter()
        subprocess.run([py, "-S", "-c", "pass"], check=True, env=env, cwd=plain_dir)
        plain_start.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = run_sandboxed([py, "-S", "-c", "pass"], spec)
        box_start.append(time.perf_counter() - t)
        assert res.ok, res.stderr

    pairs = []
    for _ in range(args.runs):
        t = time.perf_counter()
        out = subprocess.run([py, "-c", WORKLOAD, str(args.steps)], check=True, env=env, cwd=plain_dir,
                             capture_output=True, text=True).stdout
        plain = {"wall_s": time.perf_counter() - t, **json.loads(out)}
        c0, t = cpu_self(), time.perf_counter()
        res = run_sandboxed([py, "-c", WORKLOAD, str(args.steps)], spec)
        wall = time.perf_counter() - t
        assert res.ok, res.stderr
        boxed = {"wall_s": wall, "supervisor_cpu_per_s": (cpu_self() - c0) / wall, **json.loads(res.stdout)}
        pairs.append((plain, boxed))

    def med(values) -> float:
        return statistics.median(values)

    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "bwrap": support.version},
        "start": {
            "plain_ms": med(plain_start) * 1e3, "sandboxed_ms": med(box_start) * 1e3,
            "overhead_ms": (med(box_start) - med(plain_start)) * 1e3,
            "ratio": med(b / p for p, b in zip(plain_start, box_start, strict=True)), "n": args.starts,
        },
        "experiment": {
            "steps": args.steps, "runs": args.runs,
            "plain_wall_s": med(p["wall_s"] for p, _ in pairs),
            "sandboxed_wall_s": med(b["wall_s"] for _, b in pairs),
            "wall_ratio": med(b["wall_s"] / p["wall_s"] for p, b in pairs),
            "import_ratio": med(b["import_s"] / p["import_s"] for p, b in pairs),
            "train_ratio": med(b["train_s"] / p["train_s"] for p, b in pairs),
            "save_ratio": med(b["save_s"] / p["save_s"] for p, b in pairs),
            "supervisor_cpu_s_per_wall_s": med(b["supervisor_cpu_per_s"] for _, b in pairs),
        },
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
