"""The dashboard's database reads: one function per page, each a few aggregate or paginated SQL
queries, so that pages stay fast at tens of thousands of submissions.

Every function takes ``admin``: without it no private or public-half figure, scoring flag, audit
verdict or other agent's budget is read at all (the same split as the API's public and admin views).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, String, cast, func, select
from sqlalchemy.orm import Session, aliased

from aar.server.boards import public_rows
from aar.server.forum_filters import top_level_post_filters
from aar.server.models import Agent, Artifact, Audit, Ladder, Post, PostTag, Submission, Testbed
from aar.server.vault import VaultCache
from aar.web.board import admin_leaderboard, estimate

PAGE = 50
FORUM_PAGE = 20
METRICS = {
    "released": "released public PGR (Ladder)",
    "public": "public-half PGR",
    "private": "private-half PGR",
}
_METRIC_COLS = {
    "released": Submission.released_pgr,
    "public": Submission.public_pgr,
    "private": Submission.private_pgr,
}


def testbed_ids(s: Session) -> list[str]:
    """Registered testbeds, sorted."""
    return list(s.scalars(select(Testbed.id).order_by(Testbed.id)))


def pick_testbed(s: Session, requested: str | None, preferred: str | None = None) -> str | None:
    """The testbed a page shows: the requested one if it exists, else the campaign's, else the first."""
    ids = testbed_ids(s)
    for choice in (requested, preferred):
        if choice in ids:
            return choice
    return ids[0] if ids else None


# -- leaderboard -----------------------------------------------------------------------------------
def leaderboard(s: Session, vault: VaultCache, testbed: str, admin: bool, db_key: str = "") -> dict[str, Any]:
    """Public rows for everyone; for the admin the private board (:mod:`aar.web.board`: intervals,
    flags, audit verdicts and reasons, shipped baselines, whether the best entry beats the best
    baseline)."""
    if not admin:
        return {"rows": [r.model_dump() for r in public_rows(s, testbed)]}
    board = admin_leaderboard(s, vault, testbed, db_key)
    return {"board": board, "shipped": board["shipped"], "beats_baseline": board["beats_baseline"]}


def latest_audits(s: Session, submission_ids: list[int]) -> dict[int, Audit]:
    """The latest audit of each of these submissions."""
    if not submission_ids:
        return {}
    rows = s.scalars(select(Audit).where(Audit.submission_id.in_(submission_ids)).order_by(Audit.id))
    return {a.submission_id: a for a in rows}


# -- chart -----------------------------------------------------------------------------------------
def chart_rows(
    s: Session, testbed: str, metric: str, after: int = 0
) -> Sequence[Row[int, float, str, str, float]]:
    """``(id, created_at, agent, method, pgr)`` of every submission after id ``after``, oldest first."""
    col = _METRIC_COLS[metric]
    return s.execute(
        select(Submission.id, Submission.created_at, Agent.name, Submission.method, col)
        .join(Agent, Agent.id == Submission.agent_id)
        .where(Submission.testbed_id == testbed, Submission.id > after)
        .order_by(Submission.id)
    ).all()


def first_submission_time(s: Session, testbed: str) -> float | None:
    """When the testbed's first submission was scored."""
    return s.scalar(select(func.min(Submission.created_at)).where(Submission.testbed_id == testbed))


# -- submissions -----------------------------------------------------------------------------------
def submissions_page(
    s: Session,
    testbed: str | None,
    admin: bool,
    agent: str | None = None,
    method: str | None = None,
    flagged: bool | None = None,
    page: int = 1,
) -> dict[str, Any]:
    """One page of submissions, newest first, with the filters' choices and the total."""
    cond = []
    if testbed:
        cond.append(Submission.testbed_id == testbed)
    if agent:
        cond.append(Submission.agent_id == select(Agent.id).where(Agent.name == agent).scalar_subquery())
    if method:
        cond.append(Submission.method == method)
    if admin and flagged is not None:
        no_flags = cast(Submission.flags, String) == "[]"
        cond.append(~no_flags if flagged else no_flags)
    total = s.scalar(select(func.count()).select_from(Submission).where(*cond)) or 0
    cols = [
        Submission.id,
        Submission.testbed_id,
        Submission.method,
        Submission.created_at,
        Submission.released_pgr,
        Submission.released_acc,
        Submission.improved,
        Submission.artifact_sha256,
        Agent.name.label("agent"),
    ]
    if admin:
        cols += [Submission.public_pgr, Submission.private_pgr, Submission.flags]
    n_pages = max(1, -(-total // PAGE))
    page = min(max(1, page), n_pages)
    rows = [
        r._asdict()
        for r in s.execute(
            select(*cols)
            .join(Agent, Agent.id == Submission.agent_id)
            .where(*cond)
            .order_by(Submission.id.desc())
            .limit(PAGE)
            .offset((page - 1) * PAGE)
        )
    ]
    if admin:
        audits = latest_audits(s, [r["id"] for r in rows])
        for r in rows:
            au = audits.get(r["id"])
            r["verdict"] = au.verdict if au else None
    base = select(Submission.method).distinct()
    methods = s.scalars(
        (base.where(Submission.testbed_id == testbed) if testbed else base).order_by(Submission.method)
    ).all()
    agents = s.scalars(select(Agent.name).order_by(Agent.name)).all()
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "n_pages": n_pages,
        "methods": methods,
        "agents": agents,
    }


def submission_detail(s: Session, sid: int, admin: bool, viewer_id: int | None) -> dict[str, Any] | None:
    """One submission: what everyone may see, plus (admin) private figures, flags and audits, plus
    (admin or its own agent) the agent's submission budget; forum posts that cite it; its neighbours
    for the code diff."""
    row = s.execute(
        select(Submission, Agent).join(Agent, Agent.id == Submission.agent_id).where(Submission.id == sid)
    ).first()
    if row is None:
        return None
    sub, agent = row
    out = {
        "id": sub.id,
        "agent": agent.name,
        "testbed_id": sub.testbed_id,
        "method": sub.method,
        "description": sub.description,
        "seed": sub.seed,
        "created_at": sub.created_at,
        "artifact_sha256": sub.artifact_sha256,
        "released_pgr": sub.released_pgr,
        "released_acc": sub.released_acc,
        "improved": sub.improved,
    }
    if admin:
        out.update(
            public_pgr=sub.public_pgr,
            private_pgr=sub.private_pgr,
            public_acc=sub.public_acc,
            private_acc=sub.private_acc,
            flags=list(sub.flags or []),
            audits=[
                {
                    "verdict": a.verdict,
                    "reasons": a.reasons,
                    "private": estimate(a, "audited_private_pgr"),
                    "final": estimate(a, "audited_final_pgr"),
                    "created_at": a.created_at,
                }
                for a in s.scalars(select(Audit).where(Audit.submission_id == sid).order_by(Audit.id))
            ],
        )
    if admin or viewer_id == agent.id:
        out["budget"] = {
            "used": agent.n_submissions,
            "total": agent.budget_total,
            "per_hour": agent.budget_per_hour,
        }
    artifact = s.get(Artifact, sub.artifact_sha256)
    out["artifact_name"] = artifact.name if artifact else sub.artifact_sha256[:12]
    prev = s.execute(
        select(Submission.id, Submission.artifact_sha256)
        .where(
            Submission.agent_id == sub.agent_id,
            Submission.testbed_id == sub.testbed_id,
            Submission.id < sid,
            Submission.artifact_sha256 != sub.artifact_sha256,
        )
        .order_by(Submission.id.desc())
        .limit(1)
    ).first()
    out["previous"] = {"id": prev.id, "artifact_sha256": prev.artifact_sha256} if prev else None
    best = s.execute(
        select(Ladder.best_submission_id, Submission.artifact_sha256)
        .join(Submission, Submission.id == Ladder.best_submission_id)
        .where(Ladder.agent_id == sub.agent_id, Ladder.testbed_id == sub.testbed_id)
    ).first()
    out["agent_best"] = {"id": best[0], "artifact_sha256": best[1]} if best and best[0] != sid else None
    out["posts"] = posts_citing(s, sid)
    return out


def posts_citing(s: Session, sid: int, limit: int = 50) -> list[dict[str, Any]]:
    """Forum posts (and replies) that link submission ``sid``."""
    candidates = s.execute(
        select(Post.id, Post.parent_id, Post.title, Post.submission_ids, Post.created_at, Post.author_id)
        .where(cast(Post.submission_ids, String).like(f"%{sid}%"))
        .order_by(Post.id.desc())
        .limit(limit * 4)
    ).all()
    hits = [p for p in candidates if sid in (p.submission_ids or [])][:limit]
    names = author_names(s, {p.author_id for p in hits})
    return [
        {
            "id": p.id,
            "thread": p.parent_id or p.id,
            "title": p.title or "(reply)",
            "author": names[p.author_id],
            "created_at": p.created_at,
        }
        for p in hits
    ]


def author_names(s: Session, ids: set[int | None]) -> dict[int | None, str]:
    """Agent names by id (``None`` is the admin)."""
    names: dict[int | None, str] = {None: "admin"}
    real = [i for i in ids if i is not None]
    if real:
        names.update(dict(s.execute(select(Agent.id, Agent.name).where(Agent.id.in_(real))).all()))
    return names


# -- forum -----------------------------------------------------------------------------------------
def forum_page(
    s: Session, q: str | None, tag: str | None, author: str | None, page: int = 1
) -> dict[str, Any]:
    """Top-level posts, newest first, filtered by text (title or body), tag and author; the top tags."""
    cond = top_level_post_filters(q, tag, author)
    total = s.scalar(select(func.count()).select_from(Post).where(*cond)) or 0
    n_pages = max(1, -(-total // FORUM_PAGE))
    page = min(max(1, page), n_pages)
    reply = aliased(Post)
    n_replies = select(func.count()).select_from(reply).where(reply.parent_id == Post.id).scalar_subquery()
    rows = s.execute(
        select(
            Post.id,
            Post.title,
            Post.tags,
            Post.created_at,
            Post.author_id,
            func.substr(Post.body, 1, 240),
            n_replies,
        )
        .where(*cond)
        .order_by(Post.id.desc())
        .limit(FORUM_PAGE)
        .offset((page - 1) * FORUM_PAGE)
    ).all()
    names = author_names(s, {r.author_id for r in rows})
    posts = [
        {
            "id": r[0],
            "title": r[1],
            "tags": r[2],
            "created_at": r[3],
            "author": names[r[4]],
            "excerpt": r[5],
            "n_replies": r[6],
        }
        for r in rows
    ]
    tags = s.execute(
        select(PostTag.tag, func.count())
        .group_by(PostTag.tag)
        .order_by(func.count().desc(), PostTag.tag)
        .limit(30)
    ).all()
    return {"posts": posts, "total": total, "page": page, "n_pages": n_pages, "tags": tags}


def thread(s: Session, post_id: int) -> dict[str, Any] | None:
    """A top-level post and its replies (raw bodies: the caller renders them safely)."""
    post = s.get(Post, post_id)
    if post is None or post.parent_id is not None:
        return None
    replies = s.scalars(select(Post).where(Post.parent_id == post_id).order_by(Post.id)).all()
    names = author_names(s, {post.author_id, *(r.author_id for r in replies)})

    def view(p: Post) -> dict[str, Any]:
        """A post as the thread page shows it."""
        return {
            "id": p.id,
            "title": p.title,
            "body": p.body,
            "tags": p.tags,
            "author": names[p.author_id],
            "created_at": p.created_at,
            "submission_ids": p.submission_ids,
            "artifact_hashes": p.artifact_hashes,
        }

    return {"post": view(post), "replies": [view(r) for r in replies]}


# -- agents ----------------------------------------------------------------------------------------
def server_agents(s: Session, only_id: int | None = None) -> list[dict[str, Any]]:
    """Agents as the server knows them (submissions, budgets, revoked); ``only_id``: one agent."""
    q = select(Agent).order_by(Agent.id)
    if only_id is not None:
        q = q.where(Agent.id == only_id)
    return [
        {
            "name": a.name,
            "created_at": a.created_at,
            "revoked": a.revoked_at is not None,
            "n_submissions": a.n_submissions,
            "budget_per_hour": a.budget_per_hour,
            "budget_total": a.budget_total,
        }
        for a in s.scalars(q)
    ]


def submission_counts(s: Session, testbed: str | None) -> dict[str, int]:
    """Submissions per agent name (on one testbed, or all)."""
    q = (
        select(Agent.name, func.count())
        .join(Submission, Submission.agent_id == Agent.id)
        .group_by(Agent.name)
    )
    if testbed:
        q = q.where(Submission.testbed_id == testbed)
    return dict(s.execute(q).all())
