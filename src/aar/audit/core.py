"""The audit of a server's testbed (or a campaign's): select, re-run, evaluate, judge, store.

For each selected submission (see :mod:`aar.audit.selection`) the artifact is downloaded from the
code store and scanned, then these runs go to fresh sandboxes, in parallel (``cfg.jobs``):

    reproduction      agents' view, the submitted seed      -> agreement with the submitted labels
    seed<k>           audit view, each hidden seed          -> audited public/private/final PGR
    strong<k>         random strong model, hidden seed(s)   -> strong-model ablation PGR
    teacher<k>        shuffled teacher, hidden seed(s)      -> teacher ablation PGR, supervision gain

Figures come from the server's ``admin_evaluate`` (it alone holds the labels; nothing is recorded
as a submission), with the best shipped baseline (chosen on the public half) as the comparison.
The verdict (:mod:`aar.audit.verdicts`) and everything behind it go to the server with
``record_audit`` and to ``<out>/audits/<submission id>.json``. Resumable: a submission whose stored
audit has this configuration's version is not audited again (``force`` redoes it).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from aar.audit import scan as scanner
from aar.audit.config import AuditConfig
from aar.audit.jobs import Plan, run_all
from aar.audit.runner import ArtifactError, RunResult, load_experiment
from aar.audit.selection import Target, select
from aar.audit.store import as_dict, read_local, record, stored_audits, write_local
from aar.audit.verdicts import agreement, decide
from aar.audit.views import AuditViews, build_views
from aar.client import ApiError, Client
from aar.fileio import write_json_atomic


def _plan(admin: Client, t: Target, views: AuditViews, cfg: AuditConfig, code_root: Path) -> Plan:
    code_dir = code_root / str(t.submission_id)
    exp, error = None, None
    try:
        data = admin.download(t.artifact_sha256)
        exp = load_experiment(data, code_dir, t.seed)
    except (ApiError, OSError) as e:
        error = f"the artifact could not be downloaded: {e}"
    except ArtifactError as e:
        error = str(e)
    if exp is not None:
        findings = [f.to_dict() for f in scanner.scan_files(exp.files)]
    else:
        findings = [f.to_dict() for f in scanner.scan_dir(code_dir)] if code_dir.exists() else []
    p = Plan(t, exp, error, findings, code_dir)
    if exp is None:
        return p
    both = views.test_ids + views.final_ids
    p.runs["reproduction"] = (views.agent, exp.seed, views.test_ids)
    hidden = cfg.hidden_seeds()
    for s in hidden:
        p.runs[f"seed{s}"] = (views.audit, s, both)
    for s in hidden[: max(1, cfg.ablation_seeds)]:
        if views.strong_ablation is not None:
            p.runs[f"strong{s}"] = (views.strong_ablation, s, both)
        p.runs[f"teacher{s}"] = (views.teacher_ablation, s, both)
    return p


def _evaluate(
    admin: Client,
    testbed_id: str,
    runs: list[dict[str, float]],
    compare: str | None = None,
    others: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    out = as_dict(admin.admin_evaluate(testbed_id, runs, compare_to=compare, compare_runs=others))
    return {k: (as_dict(v) if v is not None else None) for k, v in out["splits"].items()}


def _probs(r: RunResult) -> dict[str, float]:
    """The predictions of a successful run (an ok run always has them)."""
    return r.probs if r.probs is not None else {}


def _split_fig(splits: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not splits or not splits.get(name):
        return None
    return cast(dict[str, Any], splits[name])


def _variant(
    admin: Client, testbed_id: str, p: Plan, prefix: str, compare: str | None = None, paired: bool = False
) -> dict[str, Any]:
    """Figures of the runs whose kind starts with ``prefix``; with ``paired``, compared with the audited
    runs at the same hidden seeds (an ablation against the method itself, paired by seed)."""
    kinds = [k for k in p.runs if k.startswith(prefix)]
    if not kinds:
        return {"ok": False, "error": "not run (unavailable for this view)"}
    failed = [f"{k}: {p.results[k].error}" for k in kinds if not p.results[k].ok]
    if failed:
        return {"ok": False, "error": "; ".join(failed)[:1500], "runs": len(kinds)}
    try:
        others = None
        if paired:
            same = [f"seed{p.runs[k][1]}" for k in kinds]
            if all(k in p.results and p.results[k].ok for k in same):
                others = [_probs(p.results[k]) for k in same]
        splits = _evaluate(admin, testbed_id, [_probs(p.results[k]) for k in kinds], compare, others)
    except ApiError as e:
        return {"ok": False, "error": f"evaluation failed: {e}", "runs": len(kinds)}
    priv = _split_fig(splits, "private") or {}
    return {
        "ok": True,
        "runs": len(kinds),
        "seeds": [p.runs[k][1] for k in kinds],
        "public": (_split_fig(splits, "public") or {}).get("pgr"),
        "private": priv.get("pgr"),
        "final": (_split_fig(splits, "final") or {}).get("pgr"),
        "accuracy_private": priv.get("accuracy"),
        "majority_share": priv.get("majority_share"),
        "above_ceiling_p": priv.get("above_ceiling_p"),
        "compare_final": (_split_fig(splits, "final") or {}).get("compare"),
        "compare_private": priv.get("compare"),
        "seconds": [p.results[k].seconds for k in kinds],
    }


def _judge(admin: Client, testbed_id: str, p: Plan, cfg: AuditConfig, notes: list[str]) -> dict[str, Any]:
    t = p.target
    checks: dict[str, Any] = {
        "config_version": cfg.version(),
        "why": t.why,
        "flags": t.flags,
        "scan": p.findings,
        "notes": notes,
        "experiment": None if p.exp is None else {"method": p.exp.method, "params": p.exp.params,
                                                  "seed": p.exp.seed},
    }
    if p.exp is None:
        checks["reproduction"] = {"ok": False, "agreement": None, "error": p.error}
    else:
        r = p.results["reproduction"]
        if not r.ok:
            checks["reproduction"] = {"ok": False, "agreement": None, "error": r.error, "seed": p.exp.seed}
        else:
            try:
                submitted = admin.admin_predictions(t.submission_id)
                ids = sorted(submitted)
                agree = agreement(_probs(r), submitted, ids)
                checks["reproduction"] = {"ok": agree >= cfg.reproduction_threshold, "agreement": agree,
                                          "seed": p.exp.seed, "n": len(ids), "error": None}
            except ApiError as e:
                checks["reproduction"] = {"ok": False, "agreement": None, "error": f"no predictions: {e}"}
        checks["seeds"] = _variant(admin, testbed_id, p, "seed", compare="best_baseline")
        checks["strong_ablation"] = _variant(admin, testbed_id, p, "strong")
        checks["teacher_ablation"] = _variant(admin, testbed_id, p, "teacher", paired=True)
    verdict, reasons = decide(checks, cfg)
    seeds = checks.get("seeds") or {}
    mean: Callable[[dict[str, Any] | None], Any] = lambda d: None if not d else d.get("mean")  # noqa: E731
    audited = mean(seeds.get("private"))
    teacher = mean((checks.get("teacher_ablation") or {}).get("private"))
    figures = {
        "reproduction_agreement": (checks.get("reproduction") or {}).get("agreement"),
        "audited_public_pgr": seeds.get("public"),
        "audited_private_pgr": seeds.get("private"),
        "audited_final_pgr": seeds.get("final"),
        "final_vs_best_baseline": seeds.get("compare_final"),
        "private_vs_best_baseline": seeds.get("compare_private"),
        "strong_ablation_pgr": (checks.get("strong_ablation") or {}).get("private"),
        "teacher_ablation_pgr": (checks.get("teacher_ablation") or {}).get("private"),
        "supervision_gain": None if audited is None or teacher is None else audited - teacher,
        "majority_share": seeds.get("majority_share"),
        "scoring_public_pgr": t.public_pgr,
        "scoring_private_pgr": t.private_pgr,
        "released_pgr": t.released_pgr,
    }
    return {"verdict": verdict, "reasons": reasons, "figures": figures, "checks": checks}


def audit_testbed(
    admin: Client,
    testbed_id: str,
    out_dir: Path,
    cfg: AuditConfig | None = None,
    *,
    testbed_name: str | None = None,
    agent_view: Path | None = None,
    agents: set[str] | None = None,
    force: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = print,
    audit_log: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Audit the selected submissions of ``testbed_id``; returns every audit (new and resumed)."""
    from aar.w2s.testbeds.registry import load_testbed

    cfg = cfg or AuditConfig()
    out_dir = Path(out_dir)
    version = cfg.version()
    targets = select(admin, testbed_id, agents, cfg.top)
    stored = stored_audits(admin, testbed_id)
    local = read_local(out_dir / "audits")
    done, todo = [], []
    for t in targets:
        prev = stored.get(t.submission_id)
        if not force and prev and (prev.get("checks") or {}).get("config_version") == version:
            merged = {**local.get(t.submission_id, {}), **prev, "agent": t.agent, "method": t.method}
            done.append(merged)
        else:
            todo.append(t)
    say(f"audit of {testbed_id}: {len(targets)} submissions selected, {len(done)} already audited "
        f"(config {version}), {len(todo)} to audit")
    if not todo:
        return done
    tb = load_testbed(testbed_name or testbed_id)
    seeds_wanted = sorted({t.seed for t in todo if t.seed is not None} | {0})
    if agent_view is not None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            have = set(json.loads((Path(agent_view) / "view.json").read_text())["seeds"])
            if not set(seeds_wanted) <= have:
                agent_view = None  # a submission cites a seed the agents' view lacks: export them all
    views = build_views(tb, out_dir / "views", cfg.hidden_seeds(), agent_view, seeds_wanted, say)
    plans = [_plan(admin, t, views, cfg, out_dir / "code") for t in todo]
    jobs = [(p, kind) for p in plans for kind in p.runs]
    t0 = time.monotonic()
    run_all(jobs, out_dir / "work", cfg, progress, audit_log)
    say(f"audit runs: {len(jobs)} in {time.monotonic() - t0:.0f}s ({cfg.n_jobs()} in parallel)")
    for p in plans:
        t = p.target
        audit = _judge(admin, testbed_id, p, cfg, views.notes)
        try:
            rec = record(admin, t.submission_id, audit["verdict"], audit["reasons"], audit["figures"],
                         audit["checks"])
        except (ApiError, AttributeError) as e:
            rec = {"error": f"not stored on the server: {e}"}
        audit.update({
            "submission_id": t.submission_id, "agent": t.agent, "method": t.method,
            "artifact_sha256": t.artifact_sha256, "testbed_id": testbed_id,
            "code_dir": str(p.code_dir), "record": rec, "created_at": time.time(),
        })
        write_local(out_dir / "audits", audit)
        _save_runs(out_dir / "runs", p)
        say(f"  #{t.submission_id} {t.agent} {t.method}: {audit['verdict']}"
            + (f" ({'; '.join(audit['reasons'])[:200]})" if audit["reasons"] else ""))
        done.append(audit)
    return done


def _save_runs(folder: Path, p: Plan) -> None:
    """The audited runs' predictions at the hidden seeds (test and final inputs), for paired comparisons
    of headlines across campaigns (:mod:`aar.audit.compare`); operator-side, never shown to agents."""
    kinds = sorted(k for k in p.runs if k.startswith("seed") and p.results.get(k) and p.results[k].ok)
    if not kinds:
        return
    folder.mkdir(parents=True, exist_ok=True)
    blob = {"submission_id": p.target.submission_id, "seeds": [p.runs[k][1] for k in kinds],
            "probs": [p.results[k].probs for k in kinds]}
    path = folder / f"{p.target.submission_id}.json"
    write_json_atomic(path, blob)


def rejudge(
    admin: Client, out_dir: Path, cfg: AuditConfig, say: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Apply the current verdict rules to the stored checks of every audit in ``out_dir`` (no re-runs),
    store the new verdicts and update the per-audit files: for a change of a rule or threshold that
    needs no new run. The audits take this configuration's version."""
    audits = read_local(Path(out_dir) / "audits")
    out = []
    for sid, audit in sorted(audits.items()):
        checks = dict(audit.get("checks") or {})
        verdict, reasons = decide(checks, cfg)
        checks["config_version"] = cfg.version()
        checks["rejudged_from"] = audit.get("verdict")
        audit.update(verdict=verdict, reasons=reasons, checks=checks)
        try:
            audit["record"] = record(admin, sid, verdict, reasons, audit.get("figures") or {}, checks)
        except (ApiError, AttributeError) as e:
            audit["record"] = {"error": f"not stored on the server: {e}"}
        write_local(Path(out_dir) / "audits", audit)
        if checks["rejudged_from"] != verdict:
            was = checks["rejudged_from"]
            say(f"  #{sid} {audit.get('agent')} {audit.get('method')}: {was} -> {verdict}")
        out.append(audit)
    return out


def audit_campaign(
    directory: str | Path,
    cfg: AuditConfig | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    generalise: list[str] | None = None,
    say: Callable[[str], None] = print,
    admin: Client | None = None,
    write_report: bool = True,
    rejudge_only: bool = False,
) -> list[dict[str, Any]]:
    """``aar audit DIR``: audit a campaign's submissions (starting its local server if needed), store
    the audits, optionally re-run the top audited methods on other testbeds, and rewrite the report."""
    from aar.campaign.connection import CampaignServer
    from aar.campaign.report import write_report as write
    from aar.campaign.state import CampaignState

    state = CampaignState.load(directory)
    cfg = cfg or AuditConfig(timeout_s=max(600.0, float(state.options.get("experiment_timeout_s") or 0) * 2))
    cfg.allow_unsafe = cfg.allow_unsafe or bool(state.options.get("unsafe_no_sandbox"))
    conn: CampaignServer | None = None
    try:
        ctx: contextlib.AbstractContextManager[Client]
        if admin is None:
            conn = CampaignServer(state)
            ctx = conn.connect()
        else:
            ctx = contextlib.nullcontext(admin)
        with ctx as client:
            if rejudge_only:
                audits = rejudge(client, Path(state.dir) / "audit", cfg, say)
            else:
                audits = audit_testbed(
                    client, state.testbed, Path(state.dir) / "audit", cfg,
                    testbed_name=state.options.get("testbed"), agent_view=Path(state.options["view"]),
                    agents={a.name for a in state.agents}, force=force, progress=progress, say=say,
                )  # fmt: skip
            if generalise:
                from aar.audit.generalise import generalise as run_generalise

                run_generalise(audits, generalise, Path(state.dir) / "audit", cfg, progress=progress, say=say)
            if write_report:
                write(state, client)
    finally:
        if conn is not None:
            conn.close()
    return audits
