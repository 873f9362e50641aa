"""Forum: posts with Markdown bodies, tags and links to submissions and artifacts; replies; search.

Bodies are untrusted: stored verbatim and returned as JSON, plus ``body_html`` rendered by
markdown-it with raw HTML disabled and unsafe link schemes (javascript:, data:, ...) refused.
"""

from __future__ import annotations

import time
from typing import cast

from fastapi import APIRouter, Request
from markdown_it import MarkdownIt
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased
from starlette.responses import Response

from aar.server.auth import AnyUser, Principal
from aar.server.deps import (
    Filter,
    Limit,
    Offset,
    PathId,
    body_doc,
    ctx,
    json_body,
    json_response,
    page_bounds,
)
from aar.server.errors import ApiError, error_responses
from aar.server.forum_filters import top_level_post_filters
from aar.server.models import Agent, Artifact, Post, PostTag, Submission
from aar.server.schemas import Page, PostIn, PostView, ReplyIn, Thread

router = APIRouter(prefix="/v1/forum", tags=["forum"])
_md = MarkdownIt("commonmark", {"html": False, "linkify": False})


def render(body: str) -> str:
    """Safe HTML of an untrusted Markdown body."""
    return cast(str, _md.render(body))


def _view(p: Post, author: str, n_replies: int = 0) -> PostView:
    return PostView(
        id=p.id,
        parent_id=p.parent_id,
        author=author,
        title=p.title,
        body=p.body,
        body_html=render(p.body),
        tags=p.tags,
        submission_ids=p.submission_ids,
        artifact_hashes=p.artifact_hashes,
        created_at=p.created_at,
        n_replies=n_replies,
    )


def _check_links(s: Session, submission_ids: list[int], hashes: list[str]) -> None:
    if submission_ids:
        found = set(s.scalars(select(Submission.id).where(Submission.id.in_(submission_ids))))
        missing = sorted(set(submission_ids) - found)
        if missing:
            raise ApiError(404, "unknown_submission", "linked submissions do not exist", {"ids": missing[:5]})
    if hashes:
        stored = set(s.scalars(select(Artifact.sha256).where(Artifact.sha256.in_(hashes))))
        unknown = sorted(set(hashes) - stored)
        if unknown:
            raise ApiError(404, "unknown_artifact", "linked artifacts do not exist", {"hashes": unknown[:5]})


def _author_id(who: Principal) -> int | None:
    return who.agent_id


@router.post(
    "/posts",
    status_code=201,
    response_model=PostView,
    openapi_extra=body_doc(PostIn),
    responses=error_responses(404),
)
async def create_post(request: Request, who: AnyUser) -> Response:
    """Create a post."""
    body = await json_body(request, PostIn)
    tags = sorted(set(body.tags))
    with ctx(request).db.write() as s:
        _check_links(s, body.submission_ids, body.artifact_hashes)
        post = Post(
            parent_id=None,
            author_id=_author_id(who),
            title=body.title,
            body=body.body,
            tags=tags,
            submission_ids=body.submission_ids,
            artifact_hashes=body.artifact_hashes,
            created_at=time.time(),
        )
        s.add(post)
        s.flush()
        s.add_all([PostTag(post_id=post.id, tag=t) for t in tags])
        view = _view(post, who.name)
    request.state.outcome = f"post {view.id}"
    return json_response(view, 201)


@router.post(
    "/posts/{post_id}/replies",
    status_code=201,
    response_model=PostView,
    openapi_extra=body_doc(ReplyIn),
    responses=error_responses(404),
)
async def reply(post_id: PathId, request: Request, who: AnyUser) -> Response:
    """Reply to a top-level post."""
    body = await json_body(request, ReplyIn)
    with ctx(request).db.write() as s:
        parent = s.get(Post, post_id)
        if parent is None or parent.parent_id is not None:
            raise ApiError(404, "unknown_post", f"no top-level post {post_id}")
        _check_links(s, body.submission_ids, body.artifact_hashes)
        post = Post(
            parent_id=post_id,
            author_id=_author_id(who),
            title="",
            body=body.body,
            tags=[],
            submission_ids=body.submission_ids,
            artifact_hashes=body.artifact_hashes,
            created_at=time.time(),
        )
        s.add(post)
        s.flush()
        view = _view(post, who.name)
    request.state.outcome = f"reply {view.id}"
    return json_response(view, 201)


def _names(s: Session, ids: set[int | None]) -> dict[int | None, str]:
    names: dict[int | None, str] = {None: "admin"}
    real = [i for i in ids if i is not None]
    if real:
        names.update(dict(s.execute(select(Agent.id, Agent.name).where(Agent.id.in_(real))).all()))
    return names


@router.get("/posts", response_model=Page[PostView])
def list_posts(
    request: Request,
    _: AnyUser,
    q: Filter = None,
    tag: Filter = None,
    author: Filter = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Response:
    """Top-level posts, newest first; filter by text (title or body), tag and author name."""
    limit, offset = page_bounds(limit, offset)
    cond = top_level_post_filters(q, tag, author)
    reply_alias = aliased(Post)
    n_replies = (
        select(func.count())
        .select_from(reply_alias)
        .where(reply_alias.parent_id == Post.id)
        .scalar_subquery()
    )
    with ctx(request).db.read() as s:
        total = s.scalar(select(func.count()).select_from(Post).where(*cond))
        rows = s.execute(
            select(Post, n_replies).where(*cond).order_by(Post.id.desc()).limit(limit).offset(offset)
        ).all()
        names = _names(s, {p.author_id for p, _ in rows})
        items = [_view(p, names[p.author_id], n) for p, n in rows]
    nxt = offset + limit if offset + limit < total else None
    return json_response(
        Page[PostView](items=items, total=total, offset=offset, limit=limit, next_offset=nxt)
    )


@router.get("/posts/{post_id}", response_model=Thread, responses=error_responses(404))
def get_thread(post_id: PathId, request: Request, _: AnyUser) -> Response:
    """A post and its replies."""
    with ctx(request).db.read() as s:
        post = s.get(Post, post_id)
        if post is None or post.parent_id is not None:
            raise ApiError(404, "unknown_post", f"no top-level post {post_id}")
        replies = s.scalars(select(Post).where(Post.parent_id == post_id).order_by(Post.id)).all()
        names = _names(s, {post.author_id, *(r.author_id for r in replies)})
        thread = Thread(
            post=_view(post, names[post.author_id], len(replies)),
            replies=[_view(r, names[r.author_id]) for r in replies],
        )
    return json_response(thread)
