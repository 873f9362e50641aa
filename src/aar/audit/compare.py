"""Does the research beat its controls? The headline of a campaign against the headlines of control
campaigns (``aar campaign --researcher random|tuned``) with the same budget, on the final split.

Each campaign's headline is chosen on public figures and audited at the same hidden seeds
(:class:`aar.audit.config.AuditConfig`), so both sides were re-run from their stored code with the same
teachers on the same final examples, which nobody scored during any campaign. The comparison is a
paired test (:func:`aar.w2s.metrics.paired_comparison`: paired over examples, and over seeds when both
were audited at the same ones). This runs on the operator's side with the labelled testbed: the final
labels and the weak and ceiling references come from the testbed's own cache, as for the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aar.fileio import write_json_atomic
from aar.w2s.metrics import paired_comparison, pgr_estimate

CONTROLS_FILE = "controls.json"


class CompareError(ValueError):
    """A campaign has no audited headline with saved runs, or the campaigns are not comparable."""


def _headline(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report.json's headline, its saved audited runs) of a campaign directory."""
    from aar.campaign.report_data import ReportError, read_report

    if not (directory / "report.json").exists():
        raise CompareError(f"{directory} has no report.json: run `aar audit {directory}` first")
    try:
        report = read_report(directory)
    except ReportError as e:
        raise CompareError(str(e)) from None
    h = report.headline
    if not h:
        raise CompareError(f"{directory}: no audited headline entry (see its report's Audit section)")
    runs = directory / "audit" / "runs" / f"{h['submission_id']}.json"
    if not runs.exists():
        raise CompareError(f"{directory}: the headline's audited runs are missing; rerun `aar audit --force`")
    return {**h, "testbed": report.testbed}, json.loads(runs.read_text())


def _correct(runs: list[dict[str, float]], ids: list[str], labels: np.ndarray) -> np.ndarray:
    rows = [[(float(r[i]) > 0.5) == y for i, y in zip(ids, labels, strict=True)] for r in runs]
    return np.array(rows, dtype=float)


def compare_campaigns(main: str | Path, controls: Sequence[str | Path]) -> dict[str, Any]:
    """Paired comparisons, on the final split, of ``main``'s headline with each control's headline."""
    from aar.campaign.state import CampaignState
    from aar.w2s.public import build_vault_bundle
    from aar.w2s.testbeds.registry import load_testbed

    main = Path(main)
    state = CampaignState.load(main)
    head, head_runs = _headline(main)
    tb = load_testbed(state.options.get("testbed") or state.testbed)
    final = tb.dataset.splits.get("final") or []
    if not final:
        raise CompareError(f"testbed {tb.name} has no final split: nothing nobody tuned on to compare on")
    ids = [e.id for e in final]
    labels = np.array([int(e.label) for e in final if e.label is not None])
    if len(labels) != len(final):
        raise CompareError(f"testbed {tb.name}: some final examples have no label")
    seeds = list(range(int(state.options.get("teacher_seeds") or 5)))
    bundle = build_vault_bundle(tb, seeds, list(state.options.get("baselines") or []))
    weak = _correct(bundle.references["weak"], ids, labels)
    ceiling = _correct(bundle.references["ceiling"], ids, labels)
    a = _correct(head_runs["probs"], ids, labels)
    controls_out: list[dict[str, Any]] = []
    out = {
        "testbed": tb.name,
        "split": "final",
        "n_examples": len(ids),
        "main": {"dir": str(main), **_side(head, head_runs, a, weak, ceiling)},
        "controls": controls_out,
        "method": "paired over final examples (and hidden seeds where both sides share them); "
        "t over seeds + example bootstrap",
    }
    for c in controls:
        c = Path(c)
        ch, c_runs = _headline(c)
        if ch.get("testbed") not in (None, head.get("testbed")):
            raise CompareError(f"{c} is on testbed {ch.get('testbed')}, not {head.get('testbed')}")
        b = _correct(c_runs["probs"], ids, labels)
        paired = c_runs["seeds"] == head_runs["seeds"]
        cmp_ = paired_comparison(a, b, weak, ceiling, paired_seeds=paired)
        researcher = CampaignState.load(c).options.get("researcher_kind", "offline")
        side = _side(ch, c_runs, b, weak, ceiling)
        controls_out.append(
            {"dir": str(c), "researcher": researcher, **side, "main_minus_control": cmp_.to_dict()}
        )
    path = main / CONTROLS_FILE
    write_json_atomic(path, out, indent=1)
    return out


def _side(
    head: dict[str, Any], runs: dict[str, Any], correct: np.ndarray, weak: np.ndarray, ceiling: np.ndarray
) -> dict[str, Any]:
    return {
        "agent": head.get("agent"),
        "method": head.get("method"),
        "submission_id": head.get("submission_id"),
        "seeds": runs["seeds"],
        "final_pgr": pgr_estimate(correct, weak, ceiling).to_dict(),
    }


def controls_lines(data: dict[str, Any] | None) -> list[str]:
    """The report's "Controls" section (empty without a comparison)."""
    if not data:
        return []
    m = data["main"]
    lines = [
        "## Controls",
        "",
        f"Headlines (each chosen on public figures, audited at hidden seeds {m['seeds']}) compared on the "
        f"final split ({data['n_examples']} examples nobody scored during any campaign); {data['method']}.",
        "",
        "| campaign | headline | final PGR [95% CI] | this campaign minus it [95% CI] | one-sided p |",
        "|---|---|---|---|---|",
        f"| this ({m['dir']}) | {m['agent']} `{m['method']}` | {_ci(m['final_pgr'])} | | |",
    ]
    for c in data["controls"]:
        d = c["main_minus_control"]
        lines.append(
            f"| {c['researcher']} control ({c['dir']}) | {c['agent']} `{c['method']}` "
            f"| {_ci(c['final_pgr'])} | {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
            f"| {d['p_greater']:.3g} |"
        )
    lines += ["", "A p-value above 0.05 means this campaign's headline does not beat that control.", ""]
    return lines


def _ci(e: dict[str, Any]) -> str:
    return f"{e['mean']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
