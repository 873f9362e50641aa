"""Leaderboards: the public view (Ladder figures) and the admin view (private figures, CIs, code)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import Response

from aar.server.auth import AdminUser, AnyUser
from aar.server.boards import admin_board, public_rows
from aar.server.deps import Filter, ctx, json_response
from aar.server.errors import ApiError, error_responses
from aar.server.models import Testbed
from aar.server.routers.admin import testbed_admin_info
from aar.server.schemas import AdminTestbedBoard, Leaderboard

router = APIRouter(tags=["leaderboard"])


@router.get("/v1/leaderboard", response_model=Leaderboard)
def leaderboard(request: Request, _: AnyUser, testbed_id: Filter = None) -> Response:
    """Per agent and testbed: the Ladder-released figure and the method and code behind it."""
    with ctx(request).db.read() as s:
        return json_response(Leaderboard(rows=public_rows(s, testbed_id)))


@router.get(
    "/v1/admin/leaderboard", response_model=list[AdminTestbedBoard], responses=error_responses(403, 404)
)
def admin_leaderboard(request: Request, _: AdminUser, testbed_id: Filter = None) -> Response:
    """Per testbed: agents ranked by private PGR, methods, and shipped baselines, with CIs."""
    c = ctx(request)
    with c.db.read() as s:
        q = select(Testbed).order_by(Testbed.id)
        if testbed_id is not None:
            q = q.where(Testbed.id == testbed_id)
        testbeds = s.scalars(q).all()
        if testbed_id is not None and not testbeds:
            raise ApiError(404, "unknown_testbed", f"no testbed with id {testbed_id!r}")
        boards = [admin_board(s, c.vault, t, testbed_admin_info(t)) for t in testbeds]
    return json_response(boards)
