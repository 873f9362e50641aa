"""Overhead of running a campaign's agents on a Ray cluster against running them on this machine.

The same small campaign (math-tiny, offline researchers, each stopping after its submission budget)
runs with the local sandbox launcher and with the Ray launcher on a local cluster of two nodes (Ray's
cluster utilities), both scored by a server on the machine's PostgreSQL, alternating local and Ray
runs. Per agent it measures, from the agents' own timing spans (:func:`aar.agents.timing.summarize`):

* start-up seconds: from the start of the campaign's session (agents launched) to the agent's first
  timed action (its first experiment, server call or notes write; the ``agent_start`` span, which
  begins when the agent's process does, is part of the start-up);
* the share of the agent's wall time (as the campaign counts it) not spent inside experiments.

Medians over agents and runs, and the Ray/local ratios. For the scale-out plan it also measures, on
the Ray runs' PostgreSQL database, rows and bytes per scored submission (table sizes after the
campaign minus after its set-up), and the scoring-server calls per agent-hour.

    python benchmarks/bench_ray.py [--reps 2] [--agents 4]

Results: ``benchmarks/results/bench_ray.json``. Needs Ray (``pip install 'aar[ray]'``), bubblewrap
and PostgreSQL on 127.0.0.1:5432 (trust auth).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SUBMISSIONS = 3  # per agent: each agent ends after its third scored submission
OUT = Path(__file__).parent / "results" / "bench_ray.json"


def _pg_db() -> tuple[str, str]:
    import psycopg

    name = f"aar_bench_ray_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(name: str) -> dict[str, dict[str, int]]:
    """Rows and bytes (with indexes and TOAST) of every table of database ``name``."""
    import psycopg

    out = {}
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}", autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for t in tables:
            rows = conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s)", (f'public."{t}"',)).fetchone()
            out[t] = {"rows": int(rows[0]) if rows else 0, "bytes": int(size[0]) if size else 0}
    return out


def run_once(mode: str, work: Path, agents: int, address: str | None) -> dict[str, Any]:
    """One campaign (``mode`` local or ray); per-agent figures and, for Ray, database sizes."""
    from aar.agents.timing import read_spans, summarize
    from aar.campaign.orchestrator import Campaign, CampaignOptions, create

    name, url = _pg_db()
    d = work / f"{mode}-{uuid.uuid4().hex[:6]}"
    opts = CampaignOptions(
        testbed="math-tiny", agents=agents, minutes=6.0, dir=str(d), baselines=["vanilla"], teacher_seeds=2,
        submissions=SUBMISSIONS, experiment_timeout_s=300.0, grace_seconds=5.0,
        researcher={"min_step_seconds": 8.0},
        db_url=url, ray=address if mode == "ray" else None, agent_cpus=1.0,
    )
    load = os.getloadavg()[0]
    t0 = time.time()
    try:
        state, server = create(opts, say=lambda _m: None)
        tables_before = _tables(name)
        camp = Campaign(state, server=server, say=lambda _m: None)
        try:
            camp.run()
        finally:
            camp.close()
        tables_after = _tables(name)
    finally:
        _drop(name)
    session = state.sessions[0][0]
    rows = []
    for a in state.agents:
        ws = Path(a.workspace)
        spans = read_spans(ws)
        kinds = summarize(ws)
        wall = a.seconds()
        rows.append({
            "agent": a.name,
            "wall_s": round(wall, 2),
            "startup_s": round(min(starts) - session, 2) if (starts := [
                float(s["start"]) for s in spans if s["kind"] != "agent_start"]) else None,
            "experiment_s": kinds["experiment"],
            "non_experiment_share": round(1 - kinds["experiment"] / wall, 4) if wall else None,
            "server_calls": sum(s["kind"] == "server" for s in spans),
            "node": (a.nodes[-1] or {}).get("ip") if a.nodes else None,
            "exit_code": a.exit_code,
        })
    n_subs = len(json.loads((d / "timeline.json").read_text()))
    return {
        "mode": mode, "setup_s": round(session - t0, 2), "load_1min_before": round(load, 2),
        "submissions": n_subs, "agents": rows,
        "tables_after_setup": tables_before, "tables_after": tables_after,
    }


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.median(vals), 4) if vals else None


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per mode over agents and runs, Ray/local ratios, and per-submission database figures."""
    out: dict[str, Any] = {}
    for mode in ("local", "ray"):
        rows = [r for run in runs if run["mode"] == mode for r in run["agents"]]
        out[mode] = {
            "startup_s": _median([r["startup_s"] for r in rows]),
            "non_experiment_share": _median([r["non_experiment_share"] for r in rows]),
            "setup_s": _median([run["setup_s"] for run in runs if run["mode"] == mode]),
            "agents": len(rows),
        }
    loc, ray = out["local"], out["ray"]
    out["ratio_ray_over_local"] = {
        k: round(ray[k] / loc[k], 3) if loc[k] and ray[k] is not None else None
        for k in ("startup_s", "non_experiment_share")
    }
    per_sub: dict[str, dict[str, float]] = {}
    total_subs = sum(run["submissions"] for run in runs if run["mode"] == "ray")
    for run in (r for r in runs if r["mode"] == "ray"):
        for t, after in run["tables_after"].items():
            before = run["tables_after_setup"].get(t, {"rows": 0, "bytes": 0})
            acc = per_sub.setdefault(t, {"rows": 0.0, "bytes": 0.0})
            acc["rows"] += after["rows"] - before["rows"]
            acc["bytes"] += after["bytes"] - before["bytes"]
    out["per_submission_postgresql"] = {
        t: {k: round(v / total_subs, 2) for k, v in acc.items()}
        for t, acc in sorted(per_sub.items()) if acc["rows"] or acc["bytes"]
    } if total_subs else {}
    out["per_submission_postgresql_total_bytes"] = (
        round(sum(v["bytes"] for v in out["per_submission_postgresql"].values()), 1) if total_subs else None
    )
    all_rows = [r for run in runs for r in run["agents"]]
    hours = sum(r["wall_s"] for r in all_rows) / 3600
    out["server_calls_per_agent_hour"] = round(sum(r["server_calls"] for r in all_rows) / hours, 1)
    out["submissions_per_agent_hour"] = round(sum(run["submissions"] for run in runs) / hours, 1)
    return out


def main() -> None:
    """Run the comparison and write the results JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--agents", type=int, default=4)
    args = ap.parse_args()
    home = Path(tempfile.gettempdir()) / "aar_bench_ray_home"
    os.environ["AAR_HOME"] = str(home)  # before the cluster starts: its workers inherit it
    from ray.cluster_utils import Cluster

    from aar.w2s.testbeds.registry import load_testbed

    load_testbed("math-tiny", home)
    per_node = max(1, (args.agents + 1) // 2)
    store = 200 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": per_node, "object_store_memory": store, "include_dashboard": False})
    cluster.add_node(num_cpus=per_node, object_store_memory=store)
    cluster.wait_for_nodes()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
            for i in range(args.reps):
                for mode in (("local", "ray") if i % 2 == 0 else ("ray", "local")):
                    runs.append(run_once(mode, Path(tmp), args.agents, cluster.address))
                    print(mode, json.dumps({k: v for k, v in runs[-1].items() if not k.startswith("tables")}))
    finally:
        cluster.shutdown()
    result = {
        "benchmark": "bench_ray",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{os.cpu_count()} CPUs; cluster: 2 Ray nodes on this machine, {per_node} CPUs each",
        "campaign": {"testbed": "math-tiny", "agents": args.agents, "submissions_per_agent": SUBMISSIONS,
                     "researcher": "offline", "server_db": "postgresql (both modes)",
                     "sandbox": "bubblewrap (both modes)"},
        "reps": args.reps,
        "summary": summarize_runs(runs),
        "runs": runs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
