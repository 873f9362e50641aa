"""The scoring hot path: ``POST /v1/submissions`` served ahead of the framework's routing.

Every agent's every submission goes through one route. FastAPI's own layers (its error, telemetry and
body-limit middleware, the exception middleware, the router's matching, the dependency solver and
the endpoint wrapper) cost about a tenth of the server's CPU per score on that route while adding
nothing it uses: the route has no dependencies and parses its body itself. :class:`ScoringApp`
therefore answers exactly ``POST /v1/submissions`` with the same endpoint function
(:func:`aar.server.routers.submissions.submit`) behind the same :class:`~aar.server.audit.AuditMiddleware`
(413 before parsing, NUL refusal, an audit entry for every answer, 500 on an unexpected error), and
turns the errors the app's exception handlers turn into answers into the same answers
(:func:`error_response`). Every other request, and the route's documentation, go through FastAPI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from aar.server.errors import ApiError

log = logging.getLogger("aar.server")
HOT_METHOD, HOT_PATH = "POST", "/v1/submissions"


def error_json(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The API's error envelope (:meth:`ApiError.body`) as a response."""
    err = ApiError(status, code, message, details, headers)
    return JSONResponse(err.body(), status_code=status, headers=err.headers or None)


def error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """The answer the app gives to ``exc`` raised by a route (ApiError, a conflicting write, a busy
    database), with the request's audit outcome set; None for an error the app does not answer."""
    if isinstance(exc, ApiError):
        request.state.outcome = exc.code
        return error_json(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, IntegrityError):
        request.state.outcome = "conflict"
        return error_json(409, "conflict", "the request conflicts with stored data")
    if isinstance(exc, OperationalError):
        log.warning("database unavailable: %s", exc)
        request.state.outcome = "database_unavailable"
        return error_json(
            503, "database_unavailable", "the database is busy; retry", headers={"Retry-After": "1"}
        )
    return None


def endpoint_app(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    """A bare ASGI app running ``endpoint`` and answering its errors like the app's handlers do."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response: Response = await endpoint(request)
        except Exception as exc:
            answer = error_response(request, exc)
            if answer is None:
                raise  # the audit middleware answers 500 and logs it
            response = answer
        await response(scope, receive, send)

    return app


class ScoringApp(FastAPI):
    """The FastAPI app, with ``POST /v1/submissions`` dispatched straight to :attr:`hot` once set."""

    hot: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the hot path directly, everything else through FastAPI."""
        hot = self.hot
        if (
            hot is not None
            and scope["type"] == "http"
            and scope["path"] == HOT_PATH
            and scope["method"] == HOT_METHOD
        ):
            scope["app"] = self  # what Starlette sets: request.app reaches the context
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
