"""Admin endpoints: agent credentials, testbed registration, full submission records, audit log."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from sqlalchemy import String, cast, func, select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from aar.server import ops
from aar.server.auth import AdminUser
from aar.server.deps import (
    Filter,
    Limit,
    Offset,
    body_doc,
    ctx,
    json_body,
    json_response,
    page_bounds,
    parse_model,
    read_body,
)
from aar.server.errors import error_responses
from aar.server.models import Agent, AuditEntry, Submission, Testbed
from aar.server.schemas import (
    AgentCreate,
    AgentCreated,
    AgentInfo,
    AuditView,
    Page,
    SubmissionAdminView,
    TestbedAdminInfo,
)
from aar.server.vault import register
from aar.w2s.vault import VaultBundle

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def agent_info(a: Agent) -> AgentInfo:
    """Wire form of an agent row."""
    return AgentInfo(
        id=a.id,
        name=a.name,
        created_at=a.created_at,
        revoked=a.revoked_at is not None,
        budget_per_hour=a.budget_per_hour,
        budget_total=a.budget_total,
        n_submissions=a.n_submissions,
    )


def testbed_admin_info(t: Testbed, created: bool = False) -> TestbedAdminInfo:
    """Wire form of a testbed row, with baselines."""
    return TestbedAdminInfo(
        id=t.id,
        description=t.description,
        n_test=t.n_test,
        created_at=t.created_at,
        n_public=t.n_public,
        n_private=t.n_private,
        bundle_sha256=t.bundle_sha256,
        weak_public=t.weak_public,
        weak_private=t.weak_private,
        ceiling_public=t.ceiling_public,
        ceiling_private=t.ceiling_private,
        n_final=t.n_final,
        weak_final=t.weak_final,
        ceiling_final=t.ceiling_final,
        teacher_on_test=t.teacher_on_test,
        created=created,
    )


def submission_admin_view(sub: Submission, agent: str) -> SubmissionAdminView:
    """Wire form of a submission with its private figures."""
    return SubmissionAdminView(
        id=sub.id,
        agent=agent,
        testbed_id=sub.testbed_id,
        method=sub.method,
        description=sub.description,
        seed=sub.seed,
        artifact_sha256=sub.artifact_sha256,
        created_at=sub.created_at,
        released_accuracy=sub.released_acc,
        released_pgr=sub.released_pgr,
        improved=sub.improved,
        public_accuracy=sub.public_acc,
        private_accuracy=sub.private_acc,
        public_pgr=sub.public_pgr,
        private_pgr=sub.private_pgr,
        flags=list(sub.flags or []),
    )


@router.post(
    "/agents",
    status_code=201,
    response_model=AgentCreated,
    openapi_extra=body_doc(AgentCreate),
    responses=error_responses(403, 409),
)
async def create_agent(request: Request, _: AdminUser) -> Response:
    """Create an agent and return its token (shown only here)."""
    body = await json_body(request, AgentCreate)
    agent, token = await run_in_threadpool(
        ops.create_agent, ctx(request).db, body.name, body.budget_per_hour, body.budget_total
    )
    request.state.outcome = f"created agent {body.name}"
    return json_response(AgentCreated(**agent_info(agent).model_dump(), token=token), 201)


@router.get("/agents", response_model=list[AgentInfo], responses=error_responses(403))
def list_agents(request: Request, _: AdminUser) -> Response:
    """All agents."""
    with ctx(request).db.read() as s:
        return json_response([agent_info(a) for a in s.scalars(select(Agent).order_by(Agent.id))])


@router.post("/agents/{name}/revoke", response_model=AgentInfo, responses=error_responses(403, 404))
def revoke_agent(request: Request, _: AdminUser, name: str = Path(max_length=64)) -> Response:
    """Revoke an agent's token (idempotent); its data stays."""
    agent = ops.revoke_agent(ctx(request).db, name)
    request.state.outcome = f"revoked agent {name}"
    return json_response(agent_info(agent))


@router.post(
    "/testbeds",
    status_code=201,
    response_model=TestbedAdminInfo,
    openapi_extra=body_doc(VaultBundle),
    responses={
        **error_responses(403, 409),
        200: {"model": TestbedAdminInfo, "description": "The identical bundle was already registered."},
    },
)
async def register_testbed(request: Request, _: AdminUser) -> Response:
    """Register a testbed's ground-truth bundle (idempotent for identical bundles; 200 then)."""
    bundle = parse_model(VaultBundle, await read_body(request))
    c = ctx(request)
    row, created = await run_in_threadpool(register, c.db, c.settings.data_dir, bundle)
    request.state.outcome = f"registered testbed {bundle.testbed_id}" if created else "already registered"
    return json_response(testbed_admin_info(row, created), 201 if created else 200)


@router.get("/submissions", response_model=Page[SubmissionAdminView], responses=error_responses(403))
def admin_submissions(
    request: Request,
    _: AdminUser,
    agent: Filter = None,
    testbed_id: Filter = None,
    flagged: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    """Every submission with its public and private figures and scoring-time flags, newest first;
    ``flagged=true`` lists only flagged ones (``false``: only unflagged)."""
    limit, offset = page_bounds(limit, offset)
    q = select(Submission, Agent.name).join(Agent, Agent.id == Submission.agent_id)
    if agent is not None:
        q = q.where(Agent.name == agent)
    if testbed_id is not None:
        q = q.where(Submission.testbed_id == testbed_id)
    if flagged is not None:
        no_flags = cast(Submission.flags, String) == "[]"
        q = q.where(~no_flags if flagged else no_flags)
    with ctx(request).db.read() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.execute(q.order_by(Submission.id.desc()).limit(limit).offset(offset)).all()
        items = [submission_admin_view(sub, name) for sub, name in rows]
    nxt = offset + limit if offset + limit < total else None
    return json_response(
        Page[SubmissionAdminView](items=items, total=total, offset=offset, limit=limit, next_offset=nxt)
    )


@router.get("/audit", response_model=Page[AuditView], responses=error_responses(403))
def audit_log(
    request: Request, _: AdminUser, actor: Filter = None, limit: Limit = 100, offset: Offset = 0
) -> Response:
    """The audit log, newest first."""
    limit, offset = page_bounds(limit, offset)
    q = select(AuditEntry)
    if actor is not None:
        q = q.where(AuditEntry.actor == actor)
    with ctx(request).db.read() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
        items = [AuditView.model_validate(r, from_attributes=True) for r in rows]
    nxt = offset + limit if offset + limit < total else None
    return json_response(
        Page[AuditView](items=items, total=total, offset=offset, limit=limit, next_offset=nxt)
    )
