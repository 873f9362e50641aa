"""Code store endpoints: upload a blob (raw body), read its metadata, download it by hash."""

from __future__ import annotations

import re
import time
from typing import Any, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.responses import Response

from aar.server.artifacts import blob_path, store_stream
from aar.server.auth import AnyUser, Principal
from aar.server.deps import Filter, Limit, Offset, ctx, json_response, page_bounds
from aar.server.errors import ApiError, error_responses
from aar.server.models import Agent, Artifact
from aar.server.schemas import ArtifactInfo, Page

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])
SHA_PATTERN = r"^[0-9a-f]{64}$"
SHA = re.compile(SHA_PATTERN)
NAME = r"^[A-Za-z0-9_.+-]{1,200}$"
KIND = r"^[a-z0-9_-]{1,32}$"


def _info(a: Artifact, owner: str, created: bool = False) -> ArtifactInfo:
    return ArtifactInfo(
        sha256=a.sha256,
        size=a.size,
        name=a.name,
        kind=a.kind,
        owner=owner,
        created_at=a.created_at,
        created=created,
    )


def _sha(sha256: str) -> str:
    if not SHA.match(sha256):
        raise ApiError(422, "invalid_hash", "an artifact hash is 64 lowercase hex digits")
    return sha256


@router.post(
    "",
    status_code=201,
    response_model=ArtifactInfo,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={200: {"model": ArtifactInfo, "description": "Already stored (first owner kept)."}},
)
async def upload(
    request: Request,
    who: AnyUser,
    name: str = Query("artifact.bin", pattern=NAME),
    kind: str = Query("code", pattern=KIND),
    sha256: str | None = Query(None, pattern=SHA_PATTERN, description="Expected sha256 of the body."),
) -> Response:
    """Store the raw request body; idempotent (an existing blob keeps its first owner). 201 or 200."""
    c = ctx(request)
    expected = _sha(sha256) if sha256 is not None else None
    limit = c.settings.max_artifact_bytes
    digest, size = await store_stream(c.settings.data_dir, request.stream(), limit)
    if expected is not None and expected != digest:
        raise ApiError(
            422,
            "hash_mismatch",
            "the body does not hash to the given sha256",
            {"expected": expected, "actual": digest},
        )
    try:
        info, created = _record(c, who, digest, size, name, kind)
    except IntegrityError:  # the same blob was recorded concurrently (PostgreSQL): it exists now
        info, created = _record(c, who, digest, size, name, kind)
    request.state.outcome = f"artifact {digest[:12]}" + ("" if created else " (exists)")
    return json_response(info, 201 if created else 200)


def _record(
    c: Any, who: Principal, digest: str, size: int, name: str, kind: str
) -> tuple[ArtifactInfo, bool]:
    """The blob's row, inserted unless it exists (the first owner is kept); and whether it was new."""
    with c.db.write() as s:
        row = s.get(Artifact, digest)
        created = row is None
        if row is None:
            row = Artifact(
                sha256=digest, owner_id=who.agent_id, size=size, name=name, kind=kind, created_at=time.time()
            )
            s.add(row)
            s.flush()
            owner = who.name
        else:
            owner = _owner(s, row.owner_id)
        return _info(row, owner, created), created


def _owner(s: Session, owner_id: int | None) -> str:
    if owner_id is None:
        return "admin"
    return cast(str, s.scalar(select(Agent.name).where(Agent.id == owner_id)))


@router.get("", response_model=Page[ArtifactInfo])
def list_artifacts(
    request: Request,
    _: AnyUser,
    owner: Filter = None,
    kind: Filter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    """Stored artifacts, newest first; filter by owner name and kind."""
    limit, offset = page_bounds(limit, offset)
    cond: list[ColumnElement[bool]] = []
    if owner is not None:
        cond.append(
            Artifact.owner_id.is_(None)
            if owner == "admin"
            else Artifact.owner_id.in_(select(Agent.id).where(Agent.name == owner))
        )
    if kind is not None:
        cond.append(Artifact.kind == kind)
    with ctx(request).db.read() as s:
        total = s.scalar(select(func.count()).select_from(Artifact).where(*cond))
        rows = s.scalars(
            select(Artifact).where(*cond).order_by(Artifact.created_at.desc()).limit(limit).offset(offset)
        ).all()
        items = [_info(a, _owner(s, a.owner_id)) for a in rows]
    nxt = offset + limit if offset + limit < total else None
    return json_response(
        Page[ArtifactInfo](items=items, total=total, offset=offset, limit=limit, next_offset=nxt)
    )


@router.get("/{sha256}", response_model=ArtifactInfo, responses=error_responses(404))
def metadata(request: Request, _: AnyUser, sha256: str = Path(pattern=SHA_PATTERN)) -> Response:
    """Metadata of one artifact."""
    with ctx(request).db.read() as s:
        row = s.get(Artifact, _sha(sha256))
        if row is None:
            raise ApiError(404, "unknown_artifact", f"no artifact {sha256}")
        return json_response(_info(row, _owner(s, row.owner_id)))


@router.get(
    "/{sha256}/content",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(404)},
)
def download(request: Request, _: AnyUser, sha256: str = Path(pattern=SHA_PATTERN)) -> Response:
    """The artifact's bytes (always as an attachment, never rendered)."""
    c = ctx(request)
    with c.db.read() as s:
        row = s.get(Artifact, _sha(sha256))
    if row is None:
        raise ApiError(404, "unknown_artifact", f"no artifact {sha256}")
    return FileResponse(
        blob_path(c.settings.data_dir, sha256),
        media_type="application/octet-stream",
        filename=row.name,
        headers={"X-Content-Type-Options": "nosniff"},
    )
