"""Generalisation table: the top audited methods (same code, same knobs) on other built-in testbeds.

Each method is re-run, in fresh sandboxes, at the audit's hidden seeds on a view of the other testbed
(exported operator-side with those seeds' teacher outputs), and scored *harness-side* against that
testbed's test labels with :func:`aar.w2s.metrics.pgr_estimate` (weak teacher and ceiling of the
same hidden seeds as references). The shipped ``vanilla`` method is run alongside as the reference
row. The table goes to ``<audit dir>/generalisation.json`` and into the report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aar.audit.config import AuditConfig
from aar.audit.jobs import Plan, run_all
from aar.audit.runner import ArtifactError, Experiment
from aar.audit.selection import Target
from aar.fileio import write_json_atomic

DISQUALIFIED = "disqualified"


def _experiment_from_dir(code_dir: Path, seed: int) -> Experiment:
    """The experiment of an artifact unpacked by the audit (its files, its experiment.json)."""
    from aar.sandbox.safe_read import read_bytes_safely, read_json_safely

    meta = read_json_safely("experiment.json", 2**20, root=code_dir)
    files = {}
    for p in sorted(code_dir.rglob("*")):
        if p.is_file() and not p.is_symlink():
            rel = str(p.relative_to(code_dir))
            files[rel] = read_bytes_safely(rel, 8 * 2**20, root=code_dir)
    method = meta["method"]
    if method.endswith(".py") and method not in files:
        raise ArtifactError(f"{method} is missing from {code_dir}")
    return Experiment(method, meta.get("params") or {}, seed, files, meta)


def _pick(audits: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    ok = [a for a in audits if a.get("verdict") != DISQUALIFIED
          and ((a.get("figures") or {}).get("audited_private_pgr") or {}).get("mean") is not None]
    ok.sort(key=lambda a: -a["figures"]["audited_private_pgr"]["mean"])
    return ok[:top]


def generalise(
    audits: list[dict[str, Any]],
    testbeds: list[str],
    out_dir: Path,
    cfg: AuditConfig,
    top: int = 3,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Re-run the ``top`` audited, non-disqualified methods on ``testbeds``; write and return the table."""
    from aar.w2s.cache import make_readable
    from aar.w2s.experiment import ceiling_probs, teacher_outputs
    from aar.w2s.metrics import GapError, pgr_estimate
    from aar.w2s.public import export_public_view
    from aar.w2s.testbeds.registry import load_testbed

    seeds = cfg.hidden_seeds()
    plans: list[Plan] = []
    for a in _pick(audits, top):
        code_dir = Path(a.get("code_dir") or out_dir / "code" / str(a["submission_id"]))
        try:
            exp = _experiment_from_dir(code_dir, seeds[0])
        except (OSError, ValueError, KeyError, ArtifactError) as e:
            say(f"  #{a['submission_id']}: cannot re-run ({e})")
            continue
        t = Target(a["submission_id"], a.get("agent", ""), a.get("method", ""), "", None, None, None, None)
        plans.append(Plan(t, exp, None, [], code_dir))
    plans.append(Plan(Target(0, "shipped", "vanilla", "", None, None, None, None),
                       Experiment("vanilla", {}, seeds[0]), None, [], out_dir))
    labels: dict[str, dict[str, Any]] = {}
    for name in testbeds:
        tb = load_testbed(name)
        say(f"generalisation: {name} view (hidden seeds {seeds})")
        view = export_public_view(tb, out_dir / "views" / f"gen-{name}", seeds)
        make_readable(view)
        test = tb.dataset.splits["test"]
        ids = [e.id for e in test]
        y = np.array([int(e.label) for e in test if e.label is not None])
        if len(y) != len(test):
            raise ValueError(f"testbed {name}: some test examples have no label")
        weak = [np.array([teacher_outputs(tb, s).probs[i] for i in ids]) for s in seeds]
        ceil = [np.array([ceiling_probs(tb, s)[i] for i in ids]) for s in seeds]
        labels[name] = {"ids": ids, "y": y, "weak": [(w > 0.5) == y for w in weak],
                        "ceiling": [(c > 0.5) == y for c in ceil]}
        for p in plans:
            for s in seeds:
                p.runs[f"{name}:{s}"] = (view, s, ids)
    jobs = [(p, kind) for p in plans for kind in p.runs]
    run_all(jobs, out_dir / "work", cfg, progress, None)
    rows = []
    for p in plans:
        results: dict[str, dict[str, Any]] = {}
        row = {"submission_id": p.target.submission_id or None, "agent": p.target.agent,
               "method": p.target.method, "results": results}
        for name in testbeds:
            lab = labels[name]
            res = [p.results[f"{name}:{s}"] for s in seeds]
            bad = [r.error for r in res if not r.ok]
            if bad:
                results[name] = {"error": "; ".join(str(b) for b in bad)[:500]}
                continue
            correct = [(np.array([(r.probs or {})[i] for i in lab["ids"]]) > 0.5) == lab["y"] for r in res]
            try:
                est = pgr_estimate(np.array(correct, float), np.array(lab["weak"], float),
                                   np.array(lab["ceiling"], float))
                results[name] = {"mean": est.mean, "ci_low": est.ci_low, "ci_high": est.ci_high,
                                        "values": list(est.values)}
            except GapError as e:
                results[name] = {"error": str(e)}
        rows.append(row)
    table = {"testbeds": list(testbeds), "seeds": seeds, "rows": rows,
             "method": "harness-side pgr_estimate over hidden seeds (t over seeds + example bootstrap)"}
    path = out_dir / "generalisation.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, table, indent=1)
    return table
