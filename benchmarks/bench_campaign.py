"""Where a campaign agent's wall time goes: experiments and model calls against orchestration.

Standard measurement (as root, bubblewrap installed; what ``python benchmarks/bench_campaign.py`` with
no arguments does): a real offline campaign on ``math`` (built in ``AAR_HOME`` or built first), 3
agents x 3 minutes, sandboxed, no report and no audit at the end. Then, per agent:

* wall seconds: the campaign's record of the agent's run intervals (``campaign.json``);
* seconds per kind: the spans the agent recorded in its workspace (``timing.jsonl``, see
  :mod:`aar.agents.timing`): ``experiment`` (inside the method run, as the experiment worker measured
  it), ``experiment_overhead`` (the rest of each experiment: worker start or hand-over, imports,
  waiting, reading results), ``server``, ``diagnostics``, ``notes``, ``model`` (LLM backends),
  ``agent_start`` (agent process start to its first span); plus ``sandbox_start`` (the campaign's
  launch of the agent to its process start) and ``unaccounted`` (the rest: the researcher's own
  decisions, the process's exit);
* ``share_outside`` = 1 - (experiment + model) / wall: the share of the agent's time spent outside
  experiments and model calls (target: at most 5%); ``share_outside_method_run`` counts as experiment
  only the methods' own ``run`` (``seconds`` in each ``s<seed>.json``), not the building of their
  context (teacher outputs, held-out slice) and the check of their predictions.

Reported: the median and the max of ``share_outside`` over the agents (of every run, with ``--runs``),
the median seconds per kind, and the start-up seconds (the call that starts the campaign to the first
agent's first experiment; also from the first agent's launch). ``--cold`` runs the experiments with a
worker process per run (the behaviour before the warm worker) for a before/after comparison. Results go
to stdout and ``benchmarks/results/bench_campaign.json`` (``--out``), with the options, the CPU count and
each run's load averages.

Usage:
    python benchmarks/bench_campaign.py [--testbed math] [--agents 3] [--minutes 3] [--runs 1] [--dir DIR]
                                        [--cold] [--out FILE]

The machine's load changes the figures (above all the fixed start of each agent: its experiment
worker's imports, which the first experiment waits for): say under what load a figure was measured,
and compare runs made under the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aar.agents.timing import KINDS, read_spans, summarize
from aar.campaign.orchestrator import CampaignOptions, run_campaign
from aar.campaign.state import CampaignState

RESULT = Path(__file__).parent / "results" / "bench_campaign.json"


def agent_figures(workspace: Path, intervals: list[list[float | None]]) -> dict[str, Any]:
    """Wall seconds, seconds per kind and the share outside experiments and model calls of one agent."""
    spans = read_spans(workspace)
    per_kind = summarize(workspace)
    done = [(float(s), float(e)) for s, e in (iv[:2] for iv in intervals) if e is not None]
    wall = sum(e - s for s, e in done)
    # the launch (sandbox set-up) of each run: its interval start to the process's first recorded instant
    starts = sorted(float(s["start"]) for s in spans if s["kind"] == "agent_start")
    sandbox = sum(max(0.0, min((t for t in starts if t >= s), default=s) - s) for s, _ in done)
    accounted = sum(per_kind.values()) + sandbox
    experiments = [s for s in spans if s["kind"] == "experiment"]
    inside = per_kind["experiment"] + per_kind["model"]
    # stricter: only the methods' own run() (s<seed>.json "seconds"), without building their context
    method_run = 0.0
    for f in (workspace / "runs").glob("r*/s*.json"):
        try:
            method_run += float(json.loads(f.read_text()).get("seconds") or 0.0)
        except (OSError, ValueError):
            continue
    return {
        "wall_seconds": round(wall, 2),
        "seconds": {
            **per_kind,
            "sandbox_start": round(sandbox, 3),
            "unaccounted": round(wall - accounted, 3),
        },
        "experiments": len(experiments),
        "overhead_per_experiment": round(per_kind["experiment_overhead"] / max(1, len(experiments)), 3),
        "share_outside": round(1 - inside / wall, 4) if wall > 0 else None,
        "method_run_seconds": round(method_run, 3),
        "share_outside_method_run": round(1 - (method_run + per_kind["model"]) / wall, 4)
        if wall > 0
        else None,
        "first_experiment_at": min((float(s["start"]) for s in experiments), default=None),
        "launched_at": done[0][0] if done else None,
    }


def one_run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """One campaign in ``directory``; its agents' figures and its start-up seconds."""
    opts = CampaignOptions(
        testbed=args.testbed,
        agents=args.agents,
        minutes=args.minutes,
        dir=str(directory),
        researcher={"warm_experiments": not args.cold},
    )
    load_before = os.getloadavg()
    t0 = time.time()

    def say(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    run_campaign(opts, report=False, audit=False, say=say)
    t_end = time.time()
    state = CampaignState.load(directory)
    agents = {a.name: agent_figures(Path(a.workspace), a.intervals) for a in state.agents}
    firsts = [a["first_experiment_at"] for a in agents.values() if a["first_experiment_at"] is not None]
    launches = [a["launched_at"] for a in agents.values() if a["launched_at"] is not None]
    return {
        "dir": str(directory),
        "sandbox": state.isolation,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "startup_seconds": round(min(firsts) - t0, 2) if firsts else None,
        "launch_to_first_experiment_seconds": round(min(firsts) - min(launches), 2) if firsts else None,
        "campaign_seconds": round(t_end - t0, 1),
        "agents": agents,
    }


def _stats(xs: list[float]) -> dict[str, float | None]:
    return {
        "median": round(statistics.median(xs), 4) if xs else None,
        "max": round(max(xs), 4) if xs else None,
    }


def main() -> int:
    """Run the campaign(s), compute the figures, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testbed", default="math")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=1, help="campaigns, one after the other (figures over all)")
    ap.add_argument("--dir", default=None, help="campaign directory (default: a fresh temporary one)")
    ap.add_argument("--cold", action="store_true", help="a worker process per experiment (no warm worker)")
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    if args.agents < 1 or args.minutes <= 0 or args.runs < 1:
        ap.error("--agents and --runs must be >= 1 and --minutes > 0")
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-campaign-"))
    dirs = [base / ("campaign" if args.runs == 1 else f"campaign{i + 1}") for i in range(args.runs)]
    if any(d.exists() for d in dirs):
        ap.error(f"{base} already holds a campaign: give a fresh --dir")
    runs = [one_run(args, d) for d in dirs]
    agents = [a for r in runs for a in r["agents"].values()]
    kinds = [*KINDS, "sandbox_start", "unaccounted"]
    result = {
        "benchmark": "campaign overhead: share of agent wall time outside experiments and model calls",
        "options": {
            "testbed": args.testbed,
            "agents": args.agents,
            "minutes": args.minutes,
            "runs": args.runs,
            "warm_experiments": not args.cold,
            "sandbox": runs[0]["sandbox"],
        },
        "machine": {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]},
        # over every agent of every run
        "share_outside": _stats([a["share_outside"] for a in agents if a["share_outside"] is not None]),
        "share_outside_method_run": _stats(
            [a["share_outside_method_run"] for a in agents if a["share_outside_method_run"] is not None]
        ),
        "median_seconds": {k: round(statistics.median(a["seconds"][k] for a in agents), 3) for k in kinds},
        "median_wall_seconds": round(statistics.median(a["wall_seconds"] for a in agents), 2),
        "median_experiments": statistics.median(a["experiments"] for a in agents),
        "median_overhead_per_experiment": round(
            statistics.median(a["overhead_per_experiment"] for a in agents), 3
        ),
        "startup_seconds": _stats([r["startup_seconds"] for r in runs if r["startup_seconds"] is not None]),
        "launch_to_first_experiment_seconds": _stats(
            [
                r["launch_to_first_experiment_seconds"]
                for r in runs
                if r["launch_to_first_experiment_seconds"] is not None
            ]
        ),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps({k: result[k] for k in ("share_outside", "median_seconds", "startup_seconds")}, indent=1)
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
