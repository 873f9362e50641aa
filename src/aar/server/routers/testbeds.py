"""Testbeds as agents see them: id, description, number of test examples. No labels, no halves."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from sqlalchemy import select
from starlette.responses import Response

from aar.server.auth import AnyUser
from aar.server.deps import ctx, json_response
from aar.server.errors import ApiError, error_responses
from aar.server.models import Testbed
from aar.server.schemas import TestbedInfo

router = APIRouter(prefix="/v1/testbeds", tags=["testbeds"])


def testbed_info(t: Testbed) -> TestbedInfo:
    """Public wire form of a testbed."""
    return TestbedInfo(id=t.id, description=t.description, n_test=t.n_test, created_at=t.created_at)


@router.get("", response_model=list[TestbedInfo])
def list_testbeds(request: Request, _: AnyUser) -> Response:
    """All registered testbeds."""
    with ctx(request).db.read() as s:
        return json_response([testbed_info(t) for t in s.scalars(select(Testbed).order_by(Testbed.id))])


@router.get("/{testbed_id}", response_model=TestbedInfo, responses=error_responses(404))
def get_testbed(request: Request, _: AnyUser, testbed_id: str = Path(max_length=64)) -> Response:
    """One testbed."""
    with ctx(request).db.read() as s:
        t = s.get(Testbed, testbed_id)
    if t is None:
        raise ApiError(404, "unknown_testbed", f"no testbed with id {testbed_id!r}")
    return json_response(testbed_info(t))
