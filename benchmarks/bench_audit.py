"""Time an audit's runs: 5 entries x (reproduction + 3 hidden seeds + strong and teacher ablations).

    python benchmarks/bench_audit.py --testbed math            # the target: under 5 minutes on 2 cores
    python benchmarks/bench_audit.py --testbed math-tiny --out benchmarks/results/bench_audit_tiny.json

Every run is a fresh bubblewrap sandbox through the audit's runner (the server's evaluation calls,
which take milliseconds, are left out). Also measures what the reproduction threshold rests on: the
agreement of thresholded labels between two re-runs of the same method at the same seed, and between
two seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

METHODS = ["vanilla", "soft", "confident", "aux_conf", "self_train"]


def main() -> None:
    """Run the benchmark and write its JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbed", default="math")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--work", default="/tmp/aar-bench-audit")
    ap.add_argument("--out", default="benchmarks/results/bench_audit.json")
    args = ap.parse_args()

    from aar.audit.config import AuditConfig
    from aar.audit.jobs import Plan as _Plan
    from aar.audit.jobs import run_all as _run_all
    from aar.audit.runner import Experiment
    from aar.audit.selection import Target
    from aar.audit.verdicts import agreement
    from aar.audit.views import build_views
    from aar.w2s.testbeds.registry import load_testbed

    cfg = AuditConfig(seeds=args.seeds, jobs=args.jobs)
    work = Path(args.work)
    t0 = time.monotonic()
    tb = load_testbed(args.testbed)
    t_load = time.monotonic() - t0
    t0 = time.monotonic()
    views = build_views(tb, work / "views", cfg.hidden_seeds(), None, [0, 1], print)
    t_views = time.monotonic() - t0
    both = views.test_ids + views.final_ids
    plans = []
    for i, m in enumerate(METHODS):
        target = Target(i + 1, f"bench{i}", m, "", 0, None, None, None)
        p = _Plan(target, Experiment(m, {}, 0), None, [], work)
        p.runs["reproduction"] = (views.agent, 0, views.test_ids)
        for s in cfg.hidden_seeds():
            p.runs[f"seed{s}"] = (views.audit, s, both)
        s = cfg.hidden_seeds()[0]
        if views.strong_ablation is not None:
            p.runs[f"strong{s}"] = (views.strong_ablation, s, both)
        p.runs[f"teacher{s}"] = (views.teacher_ablation, s, both)
        plans.append(p)
    jobs = [(p, k) for p in plans for k in p.runs]
    t0 = time.monotonic()
    _run_all(jobs, work / "runs", cfg, True, None)
    t_runs = time.monotonic() - t0
    failed = [f"{p.target.method}/{k}: {r.error}" for p in plans for k, r in p.results.items() if not r.ok]
    # reproduction nondeterminism: vanilla again at seed 0, and at seed 1, on the agents' view
    again = _Plan(Target(99, "bench", "vanilla", "", 0, None, None, None), Experiment("vanilla", {}, 0), None,
                  [], work)
    again.runs["same"] = (views.agent, 0, views.test_ids)
    again.runs["other"] = (views.agent, 1, views.test_ids)
    _run_all([(again, "same"), (again, "other")], work / "runs", cfg, False, None)
    first = plans[0].results["reproduction"].probs or {}
    same = again.results["same"].probs or {}
    other = again.results["other"].probs or {}
    result = {
        "testbed": args.testbed,
        "entries": len(METHODS),
        "runs": len(jobs),
        "hidden_seeds": cfg.hidden_seeds(),
        "jobs": cfg.n_jobs(),
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "seconds": {"load_testbed": round(t_load, 1), "views": round(t_views, 1), "runs": round(t_runs, 1),
                    "total": round(t_load + t_views + t_runs, 1)},
        "run_seconds": {f"{p.target.method}/{k}": r.seconds for p in plans for k, r in p.results.items()},
        "failed": failed,
        "reproduction_agreement_same_seed": agreement(first, same, views.test_ids) if same else None,
        "agreement_other_seed": agreement(first, other, views.test_ids) if other else None,
        "under_5_minutes": t_load + t_views + t_runs < 300 if not failed else False,
        "code_version": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                       text=True).stdout.strip(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "run_seconds"}, indent=1))


if __name__ == "__main__":
    main()
