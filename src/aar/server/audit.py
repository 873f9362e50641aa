"""Append-only audit log of every request, written by an ASGI middleware.

The entry is committed before the response starts, so an acknowledged request is always audited.
Submissions write their entry in the same transaction as the submission itself (and mark the
request as audited). The middleware also enforces the body-size limit before anything is parsed.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aar.server.db import Database

log = logging.getLogger("aar.server")


def audit_values(scope: Scope, status: int, outcome: str) -> dict[str, Any]:
    """Column values of an audit entry for a request scope."""
    state = scope.get("state", {})
    client = scope.get("client") or ("unix", 0)
    return {
        "at": time.time(),
        "actor": str(state.get("actor", "anonymous"))[:80],
        "method": scope.get("method", "")[:10],
        "path": scope.get("path", "")[:300],
        "status": status,
        "outcome": str(state.get("outcome", outcome))[:300],
        "client": f"{client[0]}"[:80],
    }


SQL_AUDIT = (
    "INSERT INTO audit_log (at, actor, method, path, status, outcome, client) "
    "VALUES (:at, :actor, :method, :path, :status, :outcome, :client)"
)


def write_audit(db: Database, values: dict[str, Any]) -> None:
    """Insert one audit entry in its own transaction."""
    with db.write_conn() as conn:
        conn.exec_driver_sql(db.sql(SQL_AUDIT), values)


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class AuditMiddleware:
    """Audits every HTTP request and refuses bodies over the size limit with 413."""

    def __init__(self, app: ASGIApp, db: Database, max_json: int, max_artifact: int) -> None:
        """Wrap ``app``; ``max_artifact`` applies to artifact uploads, ``max_json`` to the rest."""
        self.app, self.db = app, db
        self.max_json, self.max_artifact = max_json, max_artifact

    def _limit(self, scope: Scope) -> int:
        path = scope.get("path", "")
        return self.max_artifact if path.rstrip("/").endswith("/artifacts") else self.max_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, committing its audit entry before the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        limit = self._limit(scope)
        state["body_limit"] = limit
        if b"%00" in scope.get("query_string", b"") or "\x00" in scope.get("path", ""):
            await _reply(
                send, 400, {"error": {"code": "bad_request", "message": "NUL in URL", "details": {}}}
            )
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            state["outcome"] = "body_too_large"
            await run_in_threadpool(write_audit, self.db, audit_values(scope, 413, "body_too_large"))
            await _reply(
                send,
                413,
                {
                    "error": {
                        "code": "body_too_large",
                        "message": f"body over {limit} bytes",
                        "details": {"limit": limit},
                    }
                },
            )
            return

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["response_started"] = True
            if message["type"] == "http.response.start" and not state.get("audited"):
                status = message["status"]
                state["audited"] = True
                await run_in_threadpool(write_audit, self.db, audit_values(scope, status, _outcome(status)))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if state.get("response_started"):
                raise
            state["outcome"] = "internal_error"
            await _reply(
                audited_send,
                500,
                {"error": {"code": "internal_error", "message": "internal error", "details": {}}},
            )


def _outcome(status: int) -> str:
    return "ok" if status < 400 else f"error {status}"
