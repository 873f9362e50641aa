"""The campaign report: ``DIR/report.md``, ``DIR/report.json`` and ``DIR/pgr_vs_agent_hours.png``.

Everything comes from the server's admin views (private PGR with CIs, shipped baselines scored on
the same private half, every submission) and the campaign state (agent-hours, cost). The ranking is
by *private* PGR: each agent's entry is the submission behind its Ladder best, chosen on the public
half only, then scored on the private half.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from aar.campaign.budgets import USAGE_MAX_BYTES, usage
from aar.campaign.connection import CampaignServer
from aar.campaign.report_data import REPORT_VERSION, AgentRow, ReportData
from aar.campaign.state import AgentState, CampaignState
from aar.campaign.timeline import all_submissions, build_timeline, write_timeline
from aar.client import ApiError, Client
from aar.fileio import write_text_atomic
from aar.sandbox.safe_read import read_json_safely, read_text_safely


def _ci(e: dict[str, Any]) -> str:
    return f"{e['mean']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def collect(state: CampaignState, admin: Client) -> dict[str, Any]:
    """The report's data (also written as ``report.json``)."""
    names = {a.name for a in state.agents}
    board = admin.admin_leaderboard(state.testbed)[0].model_dump()
    subs = all_submissions(admin, state.testbed, names)
    timeline = build_timeline(state, subs)
    write_timeline(state, timeline)
    entries = [e for e in board["agents"] if e["agent"] in names]
    refs = {r["name"]: r for r in board["references"]}
    shipped = {k: v for k, v in refs.items() if k not in ("weak", "ceiling")}
    best_ref = max(shipped.values(), key=lambda r: r["private_pgr"]["mean"], default=None)
    used = {a.name: usage(a.workspace) for a in state.agents}
    best = entries[0] if entries else None
    by_public = max(entries, key=lambda e: (e["released_pgr"], e["public_pgr"]["mean"]), default=None)
    agents = []
    for a in state.agents:
        e = next((x for x in entries if x["agent"] == a.name), None)
        mine = [t for t in timeline if t["agent"] == a.name]
        agents.append(
            AgentRow(
                name=a.name,
                direction=a.direction["name"],
                agent_hours=round(a.seconds() / 3600, 4),
                submissions=len(mine),
                status=a.status,
                stop_reason=a.stop_reason,
                released_pgr=e["released_pgr"] if e else None,
                entry_submission_id=e["submission_id"] if e else None,
                method=e["method"] if e else None,
                artifact_sha256=e["artifact_sha256"] if e else None,
                public_pgr=e["public_pgr"] if e else None,
                private_pgr=e["private_pgr"] if e else None,
                tokens=used[a.name]["tokens"],
                cost_usd=used[a.name]["dollars"],
                **_llm_cost(a, used[a.name]["dollars"]),
                **_placements(a),
            )
        )
    report = ReportData(
        dir=state.dir,
        testbed=state.testbed,
        options=_public_options(state.options),
        same_direction=state.options.get("same_direction"),
        n_agents=len(state.agents),
        weak_private_acc=board["testbed"]["weak_private"],
        ceiling_private_acc=board["testbed"]["ceiling_private"],
        n_private=board["testbed"]["n_private"],
        best_private_pgr=best["private_pgr"]["mean"] if best else None,
        best_private_pgr_ci=best["private_pgr"] if best else None,
        best_agent=best["agent"] if best else None,
        best_method=best["method"] if best else None,
        best_public_selected_private_pgr=by_public["private_pgr"]["mean"] if by_public else None,
        best_baseline=best_ref["name"] if best_ref else None,
        best_baseline_private_pgr=best_ref["private_pgr"]["mean"] if best_ref else None,
        best_baseline_private_pgr_ci=best_ref["private_pgr"] if best_ref else None,
        beats_best_baseline=bool(
            best and best_ref and best["private_pgr"]["mean"] > best_ref["private_pgr"]["mean"]
        ),
        baselines={
            k: {"public_pgr": v["public_pgr"], "private_pgr": v["private_pgr"]} for k, v in shipped.items()
        },
        agent_hours=round(state.agent_seconds() / 3600, 4),
        submissions=len(timeline),
        cost_usd=round(sum(u["dollars"] for u in used.values()), 4),
        tokens=sum(u["tokens"] for u in used.values()),
        usd_per_agent_hour=_per_hour(sum(u["dollars"] for u in used.values()), state.agent_seconds()),
        prices=_prices(state),
        agents=agents,
        ranking="private PGR of the submission behind each agent's Ladder best (chosen on public)",
        ci="95% bootstrap over private-half examples (agents) or over seeds (baselines)",
        version=REPORT_VERSION,
    )
    data = report.to_json()
    from aar.audit.report import augment

    return augment(data, Path(state.dir), admin)  # audited ranking and headline (aar.audit.report)


def _public_options(options: dict[str, Any]) -> dict[str, Any]:
    """The campaign options fit for the report: no admin token, no database password."""
    out = {k: v for k, v in options.items() if k != "admin_token"}
    if out.get("db_url"):
        from sqlalchemy.engine import make_url

        out["db_url"] = make_url(out["db_url"]).render_as_string(hide_password=True)
    return out


def _placements(a: AgentState) -> dict[str, Any]:
    """Where each run of agent ``a`` took place (Ray campaigns: node address and id per run)."""
    if not any(a.nodes):
        return {}
    runs = []
    for i, (start, end) in enumerate(a.intervals):
        node = a.nodes[i] if i < len(a.nodes) else None
        runs.append({"start": start, "end": end, "ip": node["ip"] if node else None,
                     "node_id": node["node_id"] if node else None})
    return {"placements": runs, "node_losses": a.node_losses}


def _per_hour(dollars: float, seconds: float) -> float | None:
    return round(dollars / (seconds / 3600), 4) if seconds > 0 else None


def _llm_cost(a: AgentState, dollars: float) -> dict[str, Any]:
    """LLM backends: token detail (input, output, cache reads/writes), calls, model, USD per agent-hour."""
    try:
        raw = read_json_safely("usage.json", USAGE_MAX_BYTES, root=Path(a.log).parent)
    except (OSError, ValueError):
        raw = None
    if not isinstance(raw, dict):
        return {"usd_per_agent_hour": _per_hour(dollars, a.seconds())}
    return {"usd_per_agent_hour": _per_hour(dollars, a.seconds()), "token_detail": raw.get("detail"),
            "model_calls": raw.get("calls"), "model": raw.get("model")}


def _prices(state: CampaignState) -> dict[str, Any] | None:
    """The price table version an LLM campaign used (``prices.json`` in the campaign directory)."""
    try:
        raw = json.loads((Path(state.dir) / "prices.json").read_text())
        return {"version": raw.get("version"), "file": "prices.json"}
    except (OSError, ValueError):
        return None


def plot(data: dict[str, Any], timeline: list[dict[str, Any]], path: Path) -> Path:
    """PGR (private) against cumulative agent-hours: one line per agent (best so far) plus the campaign's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for a in data["agents"]:
        rows = [t for t in timeline if t["agent"] == a["name"]]
        if not rows:
            continue
        xs: list[float] = []
        ys: list[float] = []
        best = None
        for t in rows:
            best = t["private_pgr"] if best is None else max(best, t["private_pgr"])
            xs.append(t["agent_hours"])
            ys.append(best)
        ax.step(xs, ys, where="post", lw=1.2, alpha=0.8, label=f"{a['direction']}")
        ax.scatter([t["agent_hours"] for t in rows], [t["private_pgr"] for t in rows], s=8, alpha=0.35)
    if timeline:
        xs, ys, best = [], [], None
        for t in timeline:  # the campaign's best so far
            best = t["private_pgr"] if best is None else max(best, t["private_pgr"])
            xs.append(t["agent_hours"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", lw=2.2, label="campaign best")
    if data["best_baseline_private_pgr"] is not None:
        ax.axhline(
            data["best_baseline_private_pgr"],
            color="grey",
            ls="--",
            label=f"best baseline ({data['best_baseline']})",
        )
    ax.set_xlabel("cumulative agent-hours (all agents)")
    ax.set_ylabel("PGR on the private half (best so far)")
    ax.set_title(f"{data['testbed']}: {data['n_agents']} agents, {data['submissions']} submissions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _code_of(admin: Client, sha: str, dest: Path) -> str:
    """The stored code of a submission: its ``experiment.json`` (or file list) as Markdown."""
    from aar.agents.artifacts import safe_unpack

    try:
        data = admin.download(sha)
    except (ApiError, OSError) as e:
        return f"(code {sha} unavailable: {e})"
    (dest / f"{sha[:16]}.bin").write_bytes(data)
    try:
        out = dest / sha[:16]
        files = safe_unpack(data, out)
    except Exception:  # UnsafeArchive, OSError
        return f"code `{sha}` ({len(data)} bytes, stored as {dest.name}/{sha[:16]}.bin)"
    text = f"code `{sha}`: files {', '.join(sorted(files))} (unpacked in `{out.relative_to(dest.parent)}`)"
    with contextlib.suppress(OSError):
        text += f"\n\n```json\n{read_text_safely('experiment.json', 2**20, root=out).strip()}\n```"
    return text


def render(data: dict[str, Any], admin: Client, state: CampaignState, top: int = 3) -> str:
    """``report.md``."""
    from aar.audit import report as audit_report
    d = Path(state.dir)
    code_dir = d / "report_code"
    code_dir.mkdir(exist_ok=True)
    same = data["same_direction"]
    lines = [
        f"# Campaign report: {data['testbed']}",
        "",
        f"{data['n_agents']} agents ({'all on direction ' + same if same else 'diverse directions'}), "
        f"{data['agent_hours']:.3f} agent-hours, {data['submissions']} scored submissions, "
        f"cost ${data['cost_usd']:.2f} ({data['tokens']} tokens; the offline researcher uses none).",
        "",
        f"Agent isolation: {state.isolation or 'not recorded'} (audit trail: `sandbox_events.jsonl`).",
        "",
        *audit_report.headline_lines(data),
        f"Diagnostic (scoring-time, selected on private): best private PGR {_fmt(data['best_private_pgr'])} "
        f"({data['best_agent']}, {data['best_method']}) "
        f"vs the best shipped baseline **{data['best_baseline']} {_fmt(data['best_baseline_private_pgr'])}** "
        f"on the same private half ({data['n_private']} examples; weak acc {data['weak_private_acc']:.3f}, "
        f"ceiling acc {data['ceiling_private_acc']:.3f}). The entry best on the *public* figure scores "
        f"{_fmt(data['best_public_selected_private_pgr'])} on the private half, unaudited.",
        "",
        "## Leaderboard (ranked by private PGR)",
        "",
        "Each agent's entry is the submission behind its Ladder best (chosen on the public half). "
        "Audited entries rank by their audited private PGR (hidden seeds), ahead of unaudited ones "
        "(scoring-time private PGR); disqualified entries are listed last, unranked. "
        f"Scoring-time intervals: {data['ci']}.",
        "",
        "| rank | agent | direction | method | released public PGR | private PGR [95% CI] | submissions "
        "| agent-hours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ranked = audit_report.rank(data["agents"])
    for i, a in enumerate(ranked, 1):
        priv = _ci(a["private_pgr"]) if a["private_pgr"] else "-"
        au = a.get("audit")
        if au:  # audited: the verdict, and the audited figure (hidden seeds) next to the scoring-time one
            priv += f"; audit: **{au['verdict']}**, audited {audit_report.ci_text(au['audited_private_pgr'])}"
        lines.append(
            f"| {i if not au or au['verdict'] != 'disqualified' else '-'} | {a['name']} | {a['direction']} | "
            f"{a['method'] or '-'} | {_fmt(a['released_pgr'])} | "
            f"{priv} | {a['submissions']} | {a['agent_hours']:.3f} |"
        )
    lines += ["", *audit_report.section(data)]
    from aar.audit.compare import controls_lines

    lines += controls_lines(data.get("controls"))
    lines += [
        "",
        "## Shipped baselines (same private half, over seeds)",
        "",
        "| baseline | public PGR | private PGR |",
        "|---|---|---|",
    ]
    for name, b in sorted(data["baselines"].items(), key=lambda kv: -kv[1]["private_pgr"]["mean"]):
        lines.append(f"| {name} | {_ci(b['public_pgr'])} | {_ci(b['private_pgr'])} |")
    lines += [
        "",
        "## PGR against cumulative agent-hours",
        "",
        "![PGR vs agent-hours](pgr_vs_agent_hours.png)",
        "",
    ]
    lines += ["## Cost", "", "| agent | agent-hours | tokens | USD | USD per agent-hour | stopped |",
              "|---|---|---|---|---|---|"]
    for a in data["agents"]:
        lines.append(
            f"| {a['name']} | {a['agent_hours']:.3f} | {a['tokens']} | {a['cost_usd']:.4f} "
            f"| {_fmt(a.get('usd_per_agent_hour'))} | {a['stop_reason'] or a['status']} |"
        )
    lines += ["", f"Campaign: ${data['cost_usd']:.4f} for {data['agent_hours']:.3f} agent-hours, "
              f"{_fmt(data.get('usd_per_agent_hour'))} USD per agent-hour"
              + (f" (price table {data['prices']['version']})." if data.get("prices") else ".")]
    lines += _placement_lines(data)
    lines += ["", "## Best methods: code and forum posts", ""]
    for a in ranked[:top]:
        if not a["artifact_sha256"]:
            continue
        lines += [f"### {a['name']}: {a['method']} (private PGR {_fmt(a['private_pgr']['mean'])})", ""]
        lines += [_code_of(admin, a["artifact_sha256"], code_dir), ""]
        try:
            posts = admin.posts(author=a["name"], limit=5).items
        except ApiError:
            posts = []
        for p in posts:
            body = "\n".join("> " + ln for ln in p.body.splitlines())
            lines += [f"**Forum post {p.id}: {p.title}**", "", body, ""]
    return "\n".join(lines) + "\n"


def _placement_lines(data: dict[str, Any]) -> list[str]:
    """The "Where agents ran" section (Ray campaigns): one row per run of each agent."""
    rows = [(a["name"], a.get("node_losses") or 0, p)
            for a in data["agents"] for p in a.get("placements") or []]
    if not rows:
        return []
    lines = ["", "## Where agents ran", "",
             "Each run of each agent: the Ray node it ran on; a run ends when the agent exits, is stopped, "
             "or its node is lost (it then restarts from its notes on another node).", "",
             "| agent | run | node address | node id | minutes | node losses |", "|---|---|---|---|---|---|"]
    seen: dict[str, int] = {}
    for name, losses, p in rows:
        seen[name] = seen.get(name, 0) + 1
        minutes = ((p["end"] or p["start"]) - p["start"]) / 60
        lines.append(f"| {name} | {seen[name]} | {p['ip'] or 'this machine'} | {(p['node_id'] or '-')[:12]} "
                     f"| {minutes:.1f} | {losses} |")
    return lines


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def write_report(state: CampaignState, admin: Client) -> Path:
    """Write ``report.json``, ``pgr_vs_agent_hours.png`` and ``report.md`` into the campaign directory."""
    d = Path(state.dir)
    data = collect(state, admin)
    timeline = json.loads((d / "timeline.json").read_text())
    plot(data, timeline, d / "pgr_vs_agent_hours.png")
    write_text_atomic(d / "report.json", json.dumps(data, indent=1))
    write_text_atomic(d / "report.md", render(data, admin, state))
    return d / "report.md"


def report_dir(directory: str | Path) -> Path:
    """``aar report DIR``: (re)write the report of a campaign, starting its local server if needed."""
    state = CampaignState.load(directory)
    conn = CampaignServer(state)
    try:
        with conn.connect() as admin:
            return write_report(state, admin)
    finally:
        conn.close()
