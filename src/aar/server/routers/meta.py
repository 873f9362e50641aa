"""Who am I, health, and the OpenAPI document (all authenticated)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.responses import Response

from aar.server.auth import AnyUser
from aar.server.config import Settings
from aar.server.deps import ctx, json_response
from aar.server.models import Agent
from aar.server.schemas import Me
from aar.server.scoring import Limits, budget_status

router = APIRouter(tags=["meta"])


def limits_of(settings: Settings, agent: Agent) -> Limits:
    """Effective budget of an agent: its own limits, else the server's defaults."""
    return Limits(
        settings.budget_per_hour if agent.budget_per_hour is None else agent.budget_per_hour,
        settings.budget_total if agent.budget_total is None else agent.budget_total,
    )


@router.get("/v1/me", response_model=Me)
def me(request: Request, who: AnyUser) -> Response:
    """The caller's identity and, for agents, the submission budget."""
    if who.is_admin:
        return json_response(Me(name="admin", role="admin"))
    c = ctx(request)
    with c.db.read() as s:
        agent = s.scalar(select(Agent).where(Agent.id == who.agent_id))
        status = budget_status(s.connection(), agent.id, agent.n_submissions, limits_of(c.settings, agent))
    return json_response(Me(name=who.name, role="agent", budget=status))


@router.get("/v1/health")
def health(request: Request, who: AnyUser) -> dict[str, Any]:
    """Liveness plus a database round trip."""
    with ctx(request).db.read() as s:
        s.execute(select(1))
    return {"status": "ok"}


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: AnyUser) -> JSONResponse:
    """The OpenAPI document of this server."""
    return JSONResponse(request.app.openapi())
