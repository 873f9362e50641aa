"""Wire models of the scoring server API, shared by the app and :mod:`aar.client`.

Only pydantic is imported here, so the client stays light. Times are UTC epoch seconds.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aar.textcheck import Line, Lines, Text, check_text

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Tag = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
# Row ids are 32-bit on PostgreSQL; ids outside this range name nothing (422 in bodies, 404 in paths).
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
T = TypeVar("T")


class In(BaseModel):
    """Base of request bodies: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="ignore")


class Page(Out, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class AgentCreate(In):
    """Create an agent credential (admin). Budgets default to the server's."""

    name: Name
    budget_per_hour: int | None = Field(default=None, ge=0, le=2**31 - 1)
    budget_total: int | None = Field(default=None, ge=0, le=2**31 - 1)


class AgentInfo(Out):
    """An agent as the admin sees it."""

    id: int
    name: str
    created_at: float
    revoked: bool
    budget_per_hour: int | None
    budget_total: int | None
    n_submissions: int


class AgentCreated(AgentInfo):
    """A new agent with its token (shown once, stored only as a hash)."""

    token: str


class BudgetStatus(Out):
    """An agent's submission budget; ``None`` limits are unlimited."""

    per_hour: int | None
    total: int | None
    used_last_hour: int
    used_total: int
    hour_resets_at: float | None


class Me(Out):
    """Who the token belongs to."""

    name: str
    role: Literal["admin", "agent"]
    budget: BudgetStatus | None = None


class TestbedInfo(Out):
    """What agents may know about a testbed."""

    id: str
    description: str
    n_test: int
    created_at: float


class TestbedAdminInfo(TestbedInfo):
    """A testbed with its split sizes and fixed baselines (admin only)."""

    n_public: int
    n_private: int
    bundle_sha256: str
    weak_public: float
    weak_private: float
    ceiling_public: float
    ceiling_private: float
    n_final: int = 0  # the final split: scored only by the admin evaluate endpoint
    weak_final: float | None = None
    ceiling_final: float | None = None
    teacher_on_test: bool = False  # protocol: methods saw the weak teacher's outputs on test inputs
    created: bool = False


class SubmissionIn(In):
    """Probabilities P(label=1) for every test example id of a testbed, and the code behind them."""

    testbed_id: Name
    example_ids: Lines  # checked against the testbed's ids, never stored
    probabilities: list[float]
    artifact_sha256: Sha256
    description: Text = Field(default="", max_length=2000)
    method: Name = "default"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)


class PublicScore(Out):
    """The Ladder-released public figure: the agent's shown best on this testbed."""

    accuracy: float
    pgr: float
    improved: bool
    margin: float


class SubmissionReceipt(Out):
    """The answer to a submission: its id, the released public figure and the remaining budget."""

    id: int
    testbed_id: str
    method: str
    created_at: float
    public: PublicScore
    budget: BudgetStatus


class SubmissionView(Out):
    """A submission as agents see it (the released figure only)."""

    id: int
    agent: str
    testbed_id: str
    method: str
    description: str
    seed: int | None
    artifact_sha256: str
    created_at: float
    released_accuracy: float
    released_pgr: float
    improved: bool


class SubmissionAdminView(SubmissionView):
    """A submission with its exact public and private figures (admin only)."""

    public_accuracy: float
    private_accuracy: float
    public_pgr: float
    private_pgr: float
    flags: list[str] = Field(default_factory=list)  # scoring-time: "above_ceiling", "near_constant"


class LeaderboardRow(Out):
    """An agent's Ladder figure on a testbed and the submission (method, code) behind it."""

    agent: str
    testbed_id: str
    accuracy: float
    pgr: float
    method: str
    artifact_sha256: str
    submission_id: int
    n_submissions: int


class Leaderboard(Out):
    """The public leaderboard (server-side Ladder figures only)."""

    rows: list[LeaderboardRow]


class EstimateOut(Out):
    """Mean with a 95% bootstrap CI over ``n`` values (seeds, submissions or examples: ``over``)."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    over: str


class ReferenceEntry(Out):
    """A shipped baseline's PGR on each half, over its seeds."""

    name: str
    public_pgr: EstimateOut
    private_pgr: EstimateOut


class AgentEntry(Out):
    """An agent's final entry: the submission behind its Ladder best, scored on the private half."""

    agent: str
    submission_id: int
    method: str
    artifact_sha256: str
    released_pgr: float
    public_pgr: EstimateOut
    private_pgr: EstimateOut
    n_submissions: int
    # the submission's scoring-time flags, plus "pgr_above_1" whenever the private PGR exceeds 1
    flags: list[str] = Field(default_factory=list)
    audit_verdict: Literal["ok", "flagged", "disqualified"] | None = None  # the latest audit's


class MethodEntry(Out):
    """All submissions of one agent's method, aggregated."""

    agent: str
    method: str
    n_submissions: int
    public_pgr: EstimateOut
    private_pgr: EstimateOut
    best_private_submission_id: int
    artifact_sha256s: list[str]


class AdminTestbedBoard(Out):
    """The admin leaderboard of one testbed, ranked by private PGR."""

    testbed: TestbedAdminInfo
    references: list[ReferenceEntry]
    agents: list[AgentEntry]
    methods: list[MethodEntry]
    best_agent: str | None
    best_agent_private_pgr: float | None
    best_baseline: str | None
    best_baseline_private_pgr: float | None


class PostIn(In):
    """A new forum post. The Markdown body is untrusted and rendered with raw HTML disabled."""

    title: Line = Field(min_length=1, max_length=200)
    body: Text = Field(max_length=100_000)
    tags: list[Tag] = Field(default_factory=list, max_length=10)
    submission_ids: list[Id] = Field(default_factory=list, max_length=20)
    artifact_hashes: list[Sha256] = Field(default_factory=list, max_length=20)


class ReplyIn(In):
    """A reply to a post."""

    body: Text = Field(min_length=1, max_length=100_000)
    submission_ids: list[Id] = Field(default_factory=list, max_length=20)
    artifact_hashes: list[Sha256] = Field(default_factory=list, max_length=20)


class PostView(Out):
    """A post or reply; ``body_html`` is the safe rendering of ``body``."""

    id: int
    parent_id: int | None
    author: str
    title: str
    body: str
    body_html: str
    tags: list[str]
    submission_ids: list[int]
    artifact_hashes: list[str]
    created_at: float
    n_replies: int = 0


class Thread(Out):
    """A post with its replies, oldest first."""

    post: PostView
    replies: list[PostView]


class ArtifactInfo(Out):
    """Metadata of a stored artifact."""

    sha256: str
    size: int
    name: str
    kind: str
    owner: str
    created_at: float
    created: bool = False


class AuditView(Out):
    """One audit-log entry."""

    id: int
    at: float
    actor: str
    method: str
    path: str
    status: int
    outcome: str
    client: str


class EvaluateIn(In):
    """Runs of one method (e.g. one per seed) to score on every split (admin). Each run covers every
    test id, plus every final id when the testbed has a final split."""

    testbed_id: Name
    runs: list[dict[Line, float]] = Field(min_length=1, max_length=20)
    # a reference name of the bundle, "best_baseline" (the shipped reference with the best public
    # PGR), or None for no comparison
    compare_to: Name | None = None
    # or: other runs to compare with (e.g. an ablation of the same method), paired by seed when both
    # lists have the same length (run i and compare run i share a seed); excludes compare_to
    compare_runs: list[dict[Line, float]] | None = Field(default=None, min_length=1, max_length=20)


class PgrEstimateOut(Out):
    """:class:`aar.w2s.metrics.PgrEstimate` on the wire."""

    mean: float
    ci_low: float
    ci_high: float
    values: list[float]
    se: float
    n_seeds: int
    n_examples: int
    method: str


class ComparisonOut(Out):
    """:class:`aar.w2s.metrics.Comparison` on the wire, with the reference compared against."""

    reference: str
    diff: float
    ci_low: float
    ci_high: float
    p_greater: float
    p_two_sided: float
    paired_seeds: bool
    n_examples: int
    method: str


class SplitEval(Out):
    """The runs' figures on one split."""

    n: int
    accuracy: list[float]  # per run
    pgr: PgrEstimateOut
    majority_share: float  # mean over runs of the share of the most common predicted label
    above_ceiling_p: float  # one-sided p-value that the runs' accuracy exceeds the ceiling's
    compare: ComparisonOut | None = None


class EvaluateOut(Out):
    """Figures of evaluated runs on the public and private halves and on the final split (if any)."""

    testbed_id: str
    splits: dict[str, SplitEval | None]


AUDIT_JSON_MAX = 256 * 1024
AUDIT_JSON_DEPTH = 32


def _check_json(value: object, depth: int = 0) -> None:
    if depth > AUDIT_JSON_DEPTH:
        raise ValueError(f"nested deeper than {AUDIT_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (no NaN or infinity)")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k)
            _check_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth + 1)


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > AUDIT_JSON_MAX:
        raise ValueError(f"{size} bytes as JSON; at most {AUDIT_JSON_MAX}")
    return value


AuditJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]


class AuditIn(In):
    """An audit verdict on a submission, with the audited figures and per-check results (admin)."""

    submission_id: Id
    verdict: Literal["ok", "flagged", "disqualified"]
    reasons: list[Annotated[Text, Field(max_length=500)]] = Field(default_factory=list, max_length=20)
    figures: AuditJson = Field(default_factory=dict)  # at most 256 KB as JSON, finite numbers
    checks: AuditJson = Field(default_factory=dict)


class AuditRecord(Out):
    """A stored audit verdict. Audits are append-only; the latest per submission is the one in force."""

    id: int
    submission_id: int
    agent: str
    testbed_id: str
    verdict: str
    reasons: list[str]
    figures: dict[str, Any]
    checks: dict[str, Any]
    created_at: float
