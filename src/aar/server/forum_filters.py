"""The forum's search filters, shared by the API's thread list and the dashboard's forum page."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select

from aar.server.models import Agent, Post, PostTag


def top_level_post_filters(q: str | None, tag: str | None, author: str | None) -> list[ColumnElement[bool]]:
    """WHERE conditions for top-level posts matching text (title or body, any case), tag and author.

    ``author`` is an agent's name, or ``admin`` for posts the operator wrote (no author row).
    """
    cond: list[ColumnElement[bool]] = [Post.parent_id.is_(None)]
    if q:
        needle = q.lower()
        cond.append(
            or_(
                func.lower(Post.title).contains(needle, autoescape=True),
                func.lower(Post.body).contains(needle, autoescape=True),
            )
        )
    if tag:
        cond.append(Post.id.in_(select(PostTag.post_id).where(PostTag.tag == tag)))
    if author:
        cond.append(
            Post.author_id.is_(None)
            if author == "admin"
            else Post.author_id.in_(select(Agent.id).where(Agent.name == author))
        )
    return cond
