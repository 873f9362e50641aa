"""From the audit's checks to a verdict: ``ok``, ``flagged`` (shown, with why) or ``disqualified``.

Disqualifying (the entry leaves the ranking and the headline):
  * not reproduced: the cited code could not be run (no ``experiment.json``, a crash, a timeout) or
    its re-run at the submitted seed agrees with the submitted labels on fewer than
    ``reproduction_threshold`` of the test examples; or it failed at the hidden seeds;
  * answers computed outside the model: the PGR survives the strong-model ablation (the same code
    with a randomly initialised strong model of the same architecture);
  * above the ceiling: the scoring-time ``above_ceiling`` flag (or an audited accuracy
    significantly above the ceiling's), unless the ablations clear it (reproduced, the strong
    ablation does not survive, and the audited accuracy is not significantly above the ceiling).
Flagging (shown next to the figures, for a person to read):
  * teacher-independent: the PGR survives the teacher ablation (random labels of the same balance)
    and the method is not significantly better than that ablation of itself (paired by seed and
    example, one-sided p >= ``teacher_gain_p``): a method that fuses the teacher with a strong prior
    keeps much of its PGR without the teacher, yet still gains from it;
  * near-constant predictions (``near_constant`` share of one label), at scoring time or audited;
  * static-scan findings (file and line).
"""

from __future__ import annotations

from typing import Any

from aar.audit.config import AuditConfig

OK, FLAGGED, DISQUALIFIED = "ok", "flagged", "disqualified"


def survives(ablated: dict[str, Any] | None, audited_mean: float | None, cfg: AuditConfig) -> bool:
    """Whether an ablated run's private PGR (a PgrEstimate dict) keeps the audited figure.

    Survives when its mean is at least ``survive_ratio`` x the audited mean and its CI's low end
    is above ``survive_ci_low`` (see :class:`AuditConfig` for why).
    """
    if not ablated or audited_mean is None:
        return False
    ok: bool = ablated["ci_low"] > cfg.survive_ci_low and ablated["mean"] >= cfg.survive_ratio * audited_mean
    return ok


def supervision_gain_p(teacher: dict[str, Any]) -> float | None:
    """One-sided p-value that the method beats its own teacher ablation on the private half (paired by
    seed and example), or None when that comparison is missing. The teacher ablation's comparison is
    "ablated minus audited", so the p-value of the gain is its lower tail."""
    cmp_ = teacher.get("compare_private") if teacher.get("ok") else None
    if not cmp_ or cmp_.get("reference") != "compare_runs":
        return None
    if cmp_["ci_low"] == cmp_["ci_high"]:  # no spread at all (e.g. the method ignores the teacher)
        return 0.0 if cmp_["diff"] < 0 else 1.0
    return 1.0 - float(cmp_["p_greater"])


def decide(checks: dict[str, Any], cfg: AuditConfig) -> tuple[str, list[str]]:
    """The verdict and its reasons from the checks of one submission.

    ``checks`` keys (each may be missing when its run failed): ``reproduction`` {ok, agreement,
    error}, ``seeds`` {ok, error, private: PgrEstimate dict, majority_share, above_ceiling_p},
    ``strong_ablation`` / ``teacher_ablation`` {ok, error, private: PgrEstimate dict},
    ``flags`` (scoring-time), ``scan`` (list of findings).
    """
    dq: list[str] = []
    fl: list[str] = []
    rep = checks.get("reproduction") or {}
    if not rep.get("ok"):
        if rep.get("agreement") is not None:
            dq.append(
                f"not reproduced: the cited code's labels agree with the submitted ones on "
                f"{rep['agreement']:.3f} of test examples (needs {cfg.reproduction_threshold:.2f})"
            )
        else:
            dq.append(f"not reproduced: {rep.get('error') or 'the cited code could not be run'}")
    seeds = checks.get("seeds") or {}
    audited = (seeds.get("private") or {}).get("mean") if seeds.get("ok") else None
    if rep.get("ok") and not seeds.get("ok"):
        dq.append(f"not reproduced at the hidden seeds: {seeds.get('error') or 'runs failed'}")
    strong = checks.get("strong_ablation") or {}
    strong_survives = bool(strong.get("ok")) and survives(strong.get("private"), audited, cfg)
    if strong_survives:
        dq.append(
            "answers computed outside the model: PGR survives a randomly initialised strong model "
            f"({strong['private']['mean']:.3f} [{strong['private']['ci_low']:.3f}, "
            f"{strong['private']['ci_high']:.3f}] vs audited {audited:.3f})"
        )
    p_above = seeds.get("above_ceiling_p")
    audited_above = p_above is not None and p_above < cfg.above_ceiling_p
    flags = list(checks.get("flags") or [])
    if "above_ceiling" in flags or audited_above:
        cleared = bool(rep.get("ok")) and bool(strong.get("ok")) and not strong_survives and not audited_above
        if cleared:
            fl.append("above the ceiling at scoring time, cleared by the audit (reproduced, ablations clean)")
        else:
            why = "audited accuracy significantly above the ceiling" if audited_above else "scoring-time flag"
            dq.append(f"above the ceiling ({why}; not cleared by the ablations)")
    teacher = checks.get("teacher_ablation") or {}
    gain_p = supervision_gain_p(teacher)
    if (
        teacher.get("ok")
        and survives(teacher.get("private"), audited, cfg)
        and (gain_p is None or gain_p >= cfg.teacher_gain_p)
    ):
        fl.append(
            f"teacher-independent: PGR survives random teacher labels ({teacher['private']['mean']:.3f})"
        )
    share = seeds.get("majority_share")
    if "near_constant" in flags or (share is not None and share >= cfg.near_constant):
        fl.append(
            "near-constant predictions"
            + (f" ({share:.3f} of one label)" if share is not None else " (scoring-time flag)")
        )
    scan = checks.get("scan") or []
    if scan:
        kinds = sorted({f"{f['what']}" for f in scan})
        fl.append(f"static scan: {len(scan)} finding(s) to read ({', '.join(kinds[:6])})")
    if dq:
        return DISQUALIFIED, dq + fl
    if fl:
        return FLAGGED, fl
    return OK, []


def agreement(a: dict[str, float], b: dict[str, float], ids: list[str]) -> float:
    """Share of ``ids`` whose thresholded labels (p > 0.5) agree between two prediction maps."""
    if not ids:
        return 0.0
    same = sum((float(a[i]) > 0.5) == (float(b[i]) > 0.5) for i in ids if i in a and i in b)
    return same / len(ids)
