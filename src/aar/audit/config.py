"""Audit settings: how many hidden seeds, which thresholds, and the version that names them.

Every threshold is here, with the reason it has its value (also in the README's "Audit" section).
A stored audit whose ``config_version`` equals :meth:`AuditConfig.version` is not redone on resume;
changing any threshold or the number of seeds changes the version, so everything is audited again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

AUDIT_VERSION = 2  # bump when the checks or the verdict rules change

HIDDEN_SEED_BASE = 1000  # audit seeds 1000, 1001, ...: never exported to agents (their views hold 0..k)


@dataclass
class AuditConfig:
    """What an audit runs and how it judges.

    seeds: hidden seeds each audited method is re-run at (audited PGR = mean over them, with the
        server's interval: t over seeds + example bootstrap).
    top: besides each agent's entry and every flagged submission, the top K by private PGR.
    reproduction_threshold: share of thresholded test labels the re-run at the submitted seed must
        share with the submitted predictions. The shipped methods re-run on CPU with a fixed seed
        and one torch thread agree on 100% of labels (measured, benchmarks/results/bench_audit.json);
        a different seed agrees on far fewer (0.8-0.95 on math-tiny), and hand-edited or substituted
        predictions on a few per cent and more. 0.97 tolerates the rare flip of a probability at
        0.5 across machines or library versions while catching any edit of more than 3% of labels.
    survive_ratio, survive_ci_low: an ablation "survives" when its mean private PGR is at least
        ``survive_ratio`` x the audited private PGR AND its CI's low end is above ``survive_ci_low``.
        A randomly initialised strong model knows nothing about the world, so an honest method on
        it can at best imitate the teacher (PGR near 0); recovering half the gap with an interval
        clear of 0.1 means the answers come from somewhere other than the model.
    teacher_gain_p: a surviving teacher ablation flags "teacher-independent" only when the method is not
        significantly better than it (one-sided paired p >= this): the teacher then adds nothing we
        can detect, whereas a significant supervision gain shows the method does use it.
    near_constant: share of the most common predicted label from which predictions count as
        near-constant (flag, as at scoring time).
    above_ceiling_p: one-sided p-value under which audited accuracy counts as above the ceiling.
    timeout_s, memory_mb: per run (a sandboxed worker process).
    jobs: runs in parallel (each in its own sandbox, own uid, own workspace).
    """

    seeds: int = 3
    ablation_seeds: int = 1
    top: int = 5
    reproduction_threshold: float = 0.97
    survive_ratio: float = 0.5
    survive_ci_low: float = 0.1
    teacher_gain_p: float = 0.05
    near_constant: float = 0.95
    above_ceiling_p: float = 0.01
    timeout_s: float = 600.0
    memory_mb: int = 4096
    jobs: int = 0  # 0: one per CPU core
    allow_unsafe: bool = False  # run without bubblewrap (only with the campaign's explicit unsafe flag)

    def hidden_seeds(self) -> list[int]:
        """The audit's seeds, never exported to agents."""
        return [HIDDEN_SEED_BASE + k for k in range(self.seeds)]

    def n_jobs(self) -> int:
        """Parallel sandboxed runs."""
        return self.jobs if self.jobs > 0 else max(1, os.cpu_count() or 1)

    def version(self) -> str:
        """A short id of the checks and every setting that changes a verdict or a figure."""
        key = {k: v for k, v in asdict(self).items() if k not in ("top", "timeout_s", "memory_mb", "jobs")}
        key["audit_version"] = AUDIT_VERSION
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
        return f"v{AUDIT_VERSION}-{digest}"
