"""Credentials: one admin token (from settings) and per-agent tokens stored only as sha256 hashes.

Every request carries ``Authorization: Bearer <token>``. The resolved principal is put in the
request state so that the audit log can name it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request

from aar.server.errors import ApiError

SQL_TOKEN = "SELECT id, name, revoked_at FROM agents WHERE token_sha256 = :digest"


class TokenCache:
    """Valid agent tokens seen in the last ``ttl`` seconds (by hash), so reads skip a query.

    Revocation clears the entry in the revoking process at once; other worker processes stop
    accepting the token for reads within ``ttl``, and submissions re-check it in their transaction.
    """

    def __init__(self, ttl: float = 2.0) -> None:
        """An empty cache."""
        self.ttl = ttl
        self._rows: dict[str, tuple[float, object]] = {}

    def get(self, digest: str) -> Any:
        """The cached row for a token hash, or None."""
        hit = self._rows.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, digest: str, row: object) -> None:
        """Remember a valid token's row."""
        if len(self._rows) > 10_000:
            self._rows.clear()
        self._rows[digest] = (time.monotonic() + self.ttl, row)

    def clear(self) -> None:
        """Forget everything (after a revocation)."""
        self._rows.clear()


_CACHE = TokenCache()


def forget_tokens() -> None:
    """Drop cached tokens (called when a token is revoked)."""
    _CACHE.clear()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the admin, or an agent (with its database id)."""

    role: Literal["admin", "agent"]
    name: str
    agent_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """True for the admin token."""
        return self.role == "admin"


def new_token() -> str:
    """A fresh random agent token."""
    return "aar_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(request: Request) -> str:
    """The bearer token of a request, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        request.state.actor = "anonymous"
        raise ApiError(401, "unauthenticated", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def resolve(request: Request, token: str) -> Principal:
    """Resolve a token to a principal (401 when unknown or revoked) and record it on the request."""
    ctx = request.app.state.ctx
    if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), ctx.settings.admin_token.encode()):
        principal = Principal("admin", "admin")
    else:
        digest = token_hash(token)
        row = _CACHE.get(digest)
        if row is None:
            with ctx.db.engine.connect() as conn:
                row = conn.exec_driver_sql(ctx.db.sql(SQL_TOKEN), {"digest": digest}).first()
                conn.rollback()
            if row is not None and row.revoked_at is None:
                _CACHE.put(digest, row)
        if row is None or row.revoked_at is not None:
            request.state.actor = f"invalid:{digest[:12]}"
            raise ApiError(
                401,
                "bad_token" if row is None else "revoked_token",
                "unknown token" if row is None else "this token has been revoked",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = Principal("agent", row.name, row.id)
    request.state.actor = principal.name if principal.is_admin else f"agent:{principal.name}"
    request.state.principal = principal
    return principal


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller."""
    return resolve(request, bearer_token(request))


def require_admin(request: Request) -> Principal:
    """FastAPI dependency: the caller, who must hold the admin token (403 otherwise)."""
    principal = current_principal(request)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this endpoint needs the admin token")
    return principal


def require_agent(request: Request) -> Principal:
    """FastAPI dependency: the caller, who must be an agent (403 for the admin)."""
    principal = current_principal(request)
    if principal.is_admin:
        raise ApiError(403, "forbidden", "this endpoint is for agent tokens")
    return principal


AnyUser = Annotated[Principal, Depends(current_principal)]
AdminUser = Annotated[Principal, Depends(require_admin)]
AgentUser = Annotated[Principal, Depends(require_agent)]
