"""SQLAlchemy 2 typed models: the server's whole database schema.

Times are UTC epoch seconds (float) so that the same comparisons work on SQLite and PostgreSQL.
Predictions are stored as one float64 blob per submission in the testbed's canonical id order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Agent(Base):
    """A research agent and its (hashed) credential."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_per_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_submissions: Mapped[int] = mapped_column(Integer, default=0)


class Testbed(Base):
    """Public facts and fixed baselines of a registered testbed (labels stay in the vault)."""

    __tablename__ = "testbeds"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    n_test: Mapped[int] = mapped_column(Integer)
    n_public: Mapped[int] = mapped_column(Integer)
    n_private: Mapped[int] = mapped_column(Integer)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    weak_public: Mapped[float] = mapped_column(Float)
    weak_private: Mapped[float] = mapped_column(Float)
    ceiling_public: Mapped[float] = mapped_column(Float)
    ceiling_private: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    # the final split (never scored by submissions; admin evaluate only) and the protocol flag
    n_final: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    weak_final: Mapped[float | None] = mapped_column(Float, nullable=True)
    ceiling_final: Mapped[float | None] = mapped_column(Float, nullable=True)
    teacher_on_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Artifact(Base):
    """Metadata of a content-addressed blob; the bytes live under the data dir."""

    __tablename__ = "artifacts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)


class Submission(Base):
    """One scored prediction set; private figures never leave the admin API."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_agent_time", "agent_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    testbed_id: Mapped[str] = mapped_column(ForeignKey("testbeds.id"), index=True)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    method: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    predictions: Mapped[bytes] = mapped_column(LargeBinary)
    public_acc: Mapped[float] = mapped_column(Float)
    private_acc: Mapped[float] = mapped_column(Float)
    public_pgr: Mapped[float] = mapped_column(Float)
    private_pgr: Mapped[float] = mapped_column(Float)
    released_acc: Mapped[float] = mapped_column(Float)
    released_pgr: Mapped[float] = mapped_column(Float)
    improved: Mapped[bool] = mapped_column(Boolean)
    # scoring-time flags (admin only): "above_ceiling", "near_constant"
    flags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class Audit(Base):
    """An audit verdict on a submission, recorded by the operator's audit. Append-only (triggers)."""

    __tablename__ = "audits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class Ladder(Base):
    """Ladder state of one agent on one testbed: the released best and the submission behind it."""

    __tablename__ = "ladder"
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    testbed_id: Mapped[str] = mapped_column(ForeignKey("testbeds.id"), primary_key=True)
    best_acc: Mapped[float] = mapped_column(Float)
    best_submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    n_updates: Mapped[int] = mapped_column(Integer)


class Post(Base):
    """A forum post (parent_id NULL) or a reply to one."""

    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"), nullable=True, index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True, index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON)
    submission_ids: Mapped[list[int]] = mapped_column(JSON)
    artifact_hashes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)


class PostTag(Base):
    """One tag of a post, for tag search."""

    __tablename__ = "post_tags"
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class AuditEntry(Base):
    """One request: who, what, when, outcome. Append-only (enforced by database triggers)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(300))
    client: Mapped[str] = mapped_column(String(80))
