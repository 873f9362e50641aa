"""The audit in the campaign report: audited ranking, the headline without peeking, the Audit section.

* Ranking: only audited, non-disqualified entries are ranked, by audited private PGR (mean over the
  hidden seeds); the others are listed unranked with their verdict.
* Headline: the best entry is *chosen on public figures* (audited public PGR, then the released
  figure) among non-disqualified audited entries and *reported on the final split* (never scored
  during the campaign, nobody tuned on it): audited final PGR with its CI and a paired test against
  the best shipped baseline (chosen by the server on the public half). ``best_private_pgr`` stays in
  ``report.json`` as a labelled diagnostic only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aar.audit.store import read_local, stored_audits
from aar.client import Client

DISQUALIFIED = "disqualified"


def ci_text(e: dict[str, Any] | None) -> str:
    """``mean [low, high]`` of an estimate dict, marked when above the ceiling (PGR > 1)."""
    if not e or e.get("mean") is None:
        return "-"
    mark = " (above ceiling)" if e["mean"] > 1 else ""
    return f"{e['mean']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]{mark}"


def _mean(e: dict[str, Any] | None) -> float | None:
    return None if not e else e.get("mean")


def load(directory: Path, admin: Client | None, testbed_id: str) -> dict[int, dict[str, Any]]:
    """Audits of a campaign: the server's records (truth) merged with the local per-audit files."""
    local = read_local(Path(directory) / "audit" / "audits")
    server = stored_audits(admin, testbed_id) if admin is not None else {}
    out = {}
    for sid in set(local) | set(server):
        out[sid] = {**local.get(sid, {}), **server.get(sid, {})}
        if sid in local:
            out[sid]["audit_json"] = f"audit/audits/{sid}.json"
            if local[sid].get("code_dir"):
                out[sid]["code_dir"] = local[sid]["code_dir"]
    return out


NO_HEADLINE = ("near-constant", "above the ceiling")  # reasons that keep a flagged entry out of the headline


def entry_of(audit: dict[str, Any]) -> dict[str, Any]:
    """The report's view of one audit."""
    f = audit.get("figures") or {}
    checks = audit.get("checks") or {}
    return {
        "submission_id": audit.get("submission_id"),
        "agent": audit.get("agent"),
        "method": audit.get("method"),
        "why": checks.get("why"),
        "verdict": audit.get("verdict"),
        "reasons": audit.get("reasons") or [],
        "reproduction_agreement": f.get("reproduction_agreement"),
        "audited_public_pgr": f.get("audited_public_pgr"),
        "audited_private_pgr": f.get("audited_private_pgr"),
        "audited_final_pgr": f.get("audited_final_pgr"),
        "final_vs_best_baseline": f.get("final_vs_best_baseline"),
        "strong_ablation_pgr": f.get("strong_ablation_pgr"),
        "teacher_ablation_pgr": f.get("teacher_ablation_pgr"),
        "supervision_gain": f.get("supervision_gain"),
        "scoring_private_pgr": f.get("scoring_private_pgr"),
        "released_pgr": f.get("released_pgr"),
        "scan": checks.get("scan") or [],
        "config_version": checks.get("config_version"),
        "audit_json": audit.get("audit_json"),
        "code_dir": audit.get("code_dir"),
    }


def augment(data: dict[str, Any], directory: Path, admin: Client | None) -> dict[str, Any]:
    """Add the audit to the report's data: ``entries`` (every audited submission), each agent's
    ``audit``, the audited ranking and the headline. Without audits the data is left as it was."""
    audits = load(directory, admin, data["testbed"])
    gen = Path(directory) / "audit" / "generalisation.json"
    data["generalisation"] = json.loads(gen.read_text()) if gen.exists() else None
    controls = Path(directory) / "controls.json"  # written by `aar compare` (aar.audit.compare)
    data["controls"] = json.loads(controls.read_text()) if controls.exists() else None
    if not audits:
        data["audit"] = None
        return data
    entries = sorted((entry_of(a) for a in audits.values()), key=lambda e: e["submission_id"] or 0)
    by_id = {e["submission_id"]: e for e in entries}
    for a in data["agents"]:
        a["audit"] = by_id.get(a.get("entry_submission_id"))
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["verdict"]] = counts.get(e["verdict"], 0) + 1
    data["entries"] = entries
    data["audit"] = {
        "n_audited": len(entries),
        "verdicts": counts,
        "config_versions": sorted({str(e["config_version"]) for e in entries}),
    }
    agent_entries = [a["audit"] for a in data["agents"] if a.get("audit")]
    eligible = [e for e in agent_entries if e["verdict"] != DISQUALIFIED and e["audited_private_pgr"]]
    data["ranking"] = (
        "audited private PGR (mean over hidden seeds) of each agent's audited, "
        "non-disqualified entry (the submission behind its Ladder best)"
    )
    data["best_private_pgr_note"] = (
        "diagnostic only: the highest scoring-time private PGR, selected on "
        "the private half and not audited; the headline is 'headline'"
    )
    # the headline: trustworthy entries only (a near-constant answer or an accuracy above the ceiling is
    # never a headline, even when not disqualified), chosen on public figures alone
    headline_ok = [e for e in eligible if not any(r.startswith(NO_HEADLINE) for r in e["reasons"])]
    best = max(
        headline_ok,
        key=lambda e: (_mean(e["audited_public_pgr"]) or -9, e["released_pgr"] or -9),
        default=None,
    )
    if best is None:
        data["headline"] = None
        return data
    data["headline"] = {
        "agent": best["agent"],
        "method": best["method"],
        "submission_id": best["submission_id"],
        "selected_on": "audited public PGR among audited entries neither disqualified nor flagged as "
        "near-constant or above the ceiling",
        "verdict": best["verdict"],
        "audited_public_pgr": best["audited_public_pgr"],
        "audited_private_pgr": best["audited_private_pgr"],
        "final_pgr": best["audited_final_pgr"],
        "final_vs_best_baseline": best["final_vs_best_baseline"],
    }
    return data


def rank(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents ranked by audited private PGR when audited and not disqualified; the rest after, by the
    scoring-time private PGR (unaudited) or last (disqualified)."""

    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        au = a.get("audit")
        audited = _mean(au["audited_private_pgr"]) if au else None
        if au and au["verdict"] != DISQUALIFIED and audited is not None:
            return (0, -audited)
        if au and au["verdict"] == DISQUALIFIED:
            return (2, 0.0)
        return (1, -(a["private_pgr"]["mean"] if a.get("private_pgr") else -9))

    return sorted(agents, key=key)


def headline_lines(data: dict[str, Any]) -> list[str]:
    """The headline paragraph (empty without audits)."""
    h = data.get("headline")
    if data.get("audit") is None:
        return [
            "**Not audited**: the figures below are scoring-time figures of code nobody re-ran "
            "(`aar audit DIR`).",
            "",
        ]
    if not h:
        return [
            "**No audited entry qualifies for the headline** (each is disqualified, near-constant or "
            "above the ceiling): no headline figure.",
            "",
        ]
    cmp_ = h.get("final_vs_best_baseline") or {}
    vs = ""
    if cmp_:
        ref = cmp_.get("reference", "best_baseline")
        vs = (
            f"; against the best shipped baseline ({ref}, chosen on the public half) the difference is "
            f"{cmp_['diff']:+.3f} [{cmp_['ci_low']:.3f}, {cmp_['ci_high']:.3f}], "
            f"one-sided p = {cmp_['p_greater']:.3g}"
        )
    final = ci_text(h.get("final_pgr")) if h.get("final_pgr") else "- (the testbed has no final split)"
    return [
        f"**Headline (audited, chosen on public figures, reported on the final split): "
        f"{h['agent']} `{h['method']}`, final PGR {final}**{vs}. Audited private PGR "
        f"{ci_text(h.get('audited_private_pgr'))}; verdict {h['verdict']}.",
        "",
    ]


def section(data: dict[str, Any]) -> list[str]:
    """The Audit section of ``report.md``."""
    if data.get("audit") is None:
        return ["## Audit", "", "No audit yet: run `aar audit DIR`.", ""]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(data["audit"]["verdicts"].items()))
    lines = [
        "## Audit",
        "",
        f"{data['audit']['n_audited']} submissions audited ({counts}); config "
        f"{', '.join(data['audit']['config_versions'])}. Each was re-run from its stored code in a fresh "
        "sandbox: at its own seed (reproduction: share of test labels agreeing with the submitted ones), "
        "at hidden seeds (audited PGR, mean and 95% CI: t over seeds + example bootstrap), with a "
        "randomly initialised strong model and with shuffled teacher labels (ablations, private PGR); "
        "supervision gain = audited PGR - teacher-ablation PGR.",
        "",
        "| submission | agent | method | picked as | verdict | reproduction | audited private PGR "
        "| audited final PGR | random strong model | shuffled teacher | supervision gain | files |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in data["entries"]:
        rep = "-" if e["reproduction_agreement"] is None else f"{e['reproduction_agreement']:.3f}"
        gain = "-" if e["supervision_gain"] is None else f"{e['supervision_gain']:+.3f}"
        links = []
        if e.get("audit_json"):
            links.append(f"[audit]({e['audit_json']})")
        if e.get("code_dir"):
            links.append(f"[code]({_rel(e['code_dir'], data.get('dir'))})")
        lines.append(
            f"| {e['submission_id']} | {e['agent']} | {e['method']} | {', '.join(e['why'] or [])} | "
            f"**{e['verdict']}** | {rep} | {ci_text(e['audited_private_pgr'])} | "
            f"{ci_text(e['audited_final_pgr'])} | "
            f"{ci_text(e['strong_ablation_pgr'])} | {ci_text(e['teacher_ablation_pgr'])} | {gain} | "
            f"{' '.join(links)} |"
        )
    lines.append("")
    for e in data["entries"]:
        if not e["reasons"] and not e["scan"]:
            continue
        lines += [f"**#{e['submission_id']} ({e['agent']}, {e['method']}): {e['verdict']}**", ""]
        lines += [f"- {r}" for r in e["reasons"]]
        lines += [
            f"- scan: `{f['file']}:{f['line']}` {f['rule']} `{f['what']}` ({f['why']})"
            for f in e["scan"][:20]
        ]
        lines.append("")
    return lines + generalisation_lines(data.get("generalisation"))


def generalisation_lines(table: dict[str, Any] | None) -> list[str]:
    """The method x testbed table of PGR with CIs (``aar audit DIR --generalise ...``)."""
    if not table:
        return []
    names = table["testbeds"]
    lines = [
        "## Generalisation (audited methods on other testbeds)",
        "",
        f"Same code and knobs, re-run in sandboxes at hidden seeds {table['seeds']}; {table['method']}.",
        "",
        "| method | agent | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for r in table["rows"]:
        cells = []
        for n in names:
            x = r["results"].get(n) or {}
            cells.append(ci_text(x) if "mean" in x else f"error: {str(x.get('error'))[:60]}")
        sid = f" (#{r['submission_id']})" if r.get("submission_id") else ""
        lines.append(f"| {r['method']}{sid} | {r['agent']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _rel(path: str, base: str | None) -> str:
    try:
        return str(Path(path).relative_to(base)) if base else path
    except ValueError:
        return path
