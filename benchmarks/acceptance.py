"""Acceptance campaigns: researchers (plus planted hacks) and control researchers with the same budget,
each audited; then the headline of the researchers' campaign against the controls' headlines.

    python benchmarks/acceptance.py --testbed math --minutes 10 \
        --planted computed,constant,edited,regenerated --controls random,tuned \
        --out benchmarks/results/acceptance_math.json

Campaigns run one after another (each on the whole machine, so every campaign gets the same compute),
each in its own directory under ``--root``. The planted agents (tests/audit/planted_agent.py) run among
the researchers as extra agents, in the same sandboxes, with the same tools and budget; each behaves as
named (computed labels, constant answers, edited predictions, regenerated world). The summary JSON
records, per campaign: the audit's verdict and reasons for every audited entry, the headline (chosen on
public figures, reported on the final split, paired test against the best shipped baseline), wall time,
submissions and agent-hours; and the paired comparisons with the controls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLANTED = HERE.parent / "tests" / "audit" / "planted_agent.py"


def run_one(
    testbed: str, directory: Path, minutes: float, agents: int, researcher: str, planted: list[str]
) -> dict:
    """One audited campaign; returns its summary."""
    from aar.campaign.orchestrator import CampaignOptions, run_campaign

    commands = {
        str(agents + k): [sys.executable, "-c", PLANTED.read_text(), kind] for k, kind in enumerate(planted)
    }
    opts = CampaignOptions(
        testbed=testbed,
        agents=agents + len(planted),
        minutes=minutes,
        dir=str(directory),
        researcher_kind=researcher,
        agent_commands=commands,
    )
    t0 = time.time()
    run_campaign(opts, say=lambda m: print(f"[{researcher}] {m}", flush=True))
    return {**summarise(directory), "wall_seconds": round(time.time() - t0, 1)}


def summarise(directory: Path) -> dict:
    """The summary of an audited campaign directory (planted agents named by their behaviour)."""
    from aar.campaign.state import CampaignState

    state = CampaignState.load(directory)
    report = json.loads((directory / "report.json").read_text())
    commands = state.options.get("agent_commands") or {}
    planted_names = {a.name: commands[str(a.index)][-1] for a in state.agents if str(a.index) in commands}
    entries = [
        {
            "agent": e["agent"],
            "planted": planted_names.get(e["agent"]),
            "method": e["method"],
            "verdict": e["verdict"],
            "reasons": e["reasons"],
            "reproduction_agreement": e["reproduction_agreement"],
            "audited_private_pgr": e["audited_private_pgr"],
            "audited_final_pgr": e["audited_final_pgr"],
            "teacher_ablation_pgr": e["teacher_ablation_pgr"],
            "supervision_gain": e["supervision_gain"],
        }
        for e in report.get("entries") or []
    ]
    return {
        "dir": str(directory),
        "researcher": state.options.get("researcher_kind", "offline"),
        "agents": len(state.agents) - len(planted_names),
        "planted": sorted(planted_names.values()),
        "minutes": state.options.get("minutes"),
        "submissions": report.get("submissions"),
        "agent_hours": report.get("agent_hours"),
        "headline": report.get("headline"),
        "best_private_pgr_diagnostic": report.get("best_private_pgr"),
        "audit": report.get("audit"),
        "entries": entries,
    }


def main() -> int:
    """Run the campaigns and write the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--testbed", default="math")
    ap.add_argument("--agents", type=int, default=9)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--planted", default="computed,constant,edited,regenerated")
    ap.add_argument("--controls", default="random,tuned")
    ap.add_argument("--root", default="campaigns/acceptance")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--summarise",
        nargs="+",
        metavar="DIR",
        help="only summarise these audited campaign directories (the first is the researchers', the rest "
        "its controls; compared when controls.json is missing)",
    )
    args = ap.parse_args()
    from aar.audit.compare import compare_campaigns

    if args.summarise:
        dirs = [Path(d) for d in args.summarise]
        out = {"testbed": args.testbed, "campaigns": [summarise(d) for d in dirs]}
        controls = dirs[0] / "controls.json"
        if len(dirs) > 1:
            if controls.exists():
                out["controls"] = json.loads(controls.read_text())
            else:
                out["controls"] = compare_campaigns(dirs[0], dirs[1:])
        Path(args.out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.out}")
        return 0

    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(args.root)
    planted = [p for p in args.planted.split(",") if p]
    out: dict = {"testbed": args.testbed, "campaigns": []}
    main_dir = root / f"{args.testbed}-{stamp}-offline"
    out["campaigns"].append(run_one(args.testbed, main_dir, args.minutes, args.agents, "offline", planted))
    control_dirs = []
    for kind in [c for c in args.controls.split(",") if c]:
        d = root / f"{args.testbed}-{stamp}-{kind}"
        out["campaigns"].append(run_one(args.testbed, d, args.minutes, args.agents, kind, []))
        control_dirs.append(d)
    if control_dirs:
        try:
            out["controls"] = compare_campaigns(main_dir, control_dirs)
            from aar.campaign.report import report_dir

            report_dir(main_dir)
        except ValueError as e:
            out["controls"] = {"error": str(e)}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
