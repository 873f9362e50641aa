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

Reported: the median and the max of ``share_outside`` over the agents, the median seconds per kind,
and the start-up seconds (the call that starts the campaign to the first agent's first experiment;
also from the first agent's launch). ``--cold`` runs the experiments with a worker process per run (the
behaviour before the warm worker) for a before/after comparison. Results go to stdout and
``benchmarks/results/bench_campaign.json`` (``--out``), with the options, CPU count and load averages.

Usage:
    python benchmarks/bench_campaign.py [--testbed math] [--agents 3] [--minutes 3] [--dir DIR] [--cold]

The machine's load changes the figures (experiments slow down, orchestration less so): say under
what load a figure was measured, and compare runs made under the same load.
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


def main() -> int:
    """Run the campaign, compute the figures, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--testbed", default="math")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--dir", default=None, help="campaign directory (default: a fresh temporary one)")
    ap.add_argument("--cold", action="store_true", help="a worker process per experiment (no warm worker)")
    ap.add_argument("--out", default=str(RESULT))
    args = ap.parse_args()
    if args.agents < 1 or args.minutes <= 0:
        ap.error("--agents must be >= 1 and --minutes > 0")
    directory = Path(args.dir or tempfile.mkdtemp(prefix="bench-campaign-")) / "campaign"
    if directory.exists():
        ap.error(f"{directory} exists: give a fresh --dir")
    load_before = os.getloadavg()
    opts = CampaignOptions(
        testbed=args.testbed,
        agents=args.agents,
        minutes=args.minutes,
        dir=str(directory),
        researcher={"warm_experiments": not args.cold},
    )
    t0 = time.time()

    def say(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    run_campaign(opts, report=False, audit=False, say=say)
    t_end = time.time()
    state = CampaignState.load(directory)
    agents = {a.name: agent_figures(Path(a.workspace), a.intervals) for a in state.agents}
    shares = [a["share_outside"] for a in agents.values() if a["share_outside"] is not None]
    strict = [a["share_outside_method_run"] for a in agents.values() if a["share_outside"] is not None]
    firsts = [a["first_experiment_at"] for a in agents.values() if a["first_experiment_at"] is not None]
    launches = [a["launched_at"] for a in agents.values() if a["launched_at"] is not None]
    kinds = [*KINDS, "sandbox_start", "unaccounted"]
    result = {
        "benchmark": "campaign overhead: share of agent wall time outside experiments and model calls",
        "options": {
            "testbed": args.testbed,
            "agents": args.agents,
            "minutes": args.minutes,
            "warm_experiments": not args.cold,
            "sandbox": state.isolation,
            "dir": str(directory),
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
        },
        "share_outside": {
            "median": round(statistics.median(shares), 4) if shares else None,
            "max": round(max(shares), 4) if shares else None,
        },
        "share_outside_method_run": {
            "median": round(statistics.median(strict), 4) if strict else None,
            "max": round(max(strict), 4) if strict else None,
        },
        "median_seconds": {
            k: round(statistics.median(a["seconds"][k] for a in agents.values()), 3) for k in kinds
        },
        "median_wall_seconds": round(statistics.median(a["wall_seconds"] for a in agents.values()), 2),
        "median_overhead_per_experiment": round(
            statistics.median(a["overhead_per_experiment"] for a in agents.values()), 3
        ),
        "startup_seconds": round(min(firsts) - t0, 2) if firsts else None,
        "launch_to_first_experiment_seconds": round(min(firsts) - min(launches), 2) if firsts else None,
        "campaign_seconds": round(t_end - t0, 1),
        "agents": agents,
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
