"""Wire models of the scoring server API, shared by the app and :mod:`aar.client`.

Only pydantic is imported here, so the client stays light. Times are UTC epoch seconds.
"""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from aar.textcheck import Line, Lines, Text

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
