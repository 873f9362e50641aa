"""The one error type of the API and its JSON shape: ``{"error": {"code", "message", "details"}}``.

Also the documentation of those errors in the OpenAPI document: :func:`error_responses` builds the
``responses`` entries of a route, all with the :class:`ErrorEnvelope` schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field


class ApiError(Exception):
    """An error answered as JSON with the given HTTP status (always 4xx, or 503 for overload).

    The one error type on both sides: the server raises it, and the client (:mod:`aar.client`)
    raises it (or a subclass) from the envelope of an error answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Build the error; ``details`` must be JSON-ready."""
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ErrorBody(BaseModel):
    """What went wrong: a stable machine-readable ``code``, a message for people, and details."""

    code: str = Field(description="Stable identifier, e.g. invalid_body, budget_exhausted.")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorEnvelope(BaseModel):
    """The body of every error response of the API."""

    error: ErrorBody


# What each status means in this API, for the OpenAPI document.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: the body is not JSON, or the URL holds a NUL.",
    401: "Missing, unknown or revoked bearer token.",
    403: "The token's role may not call this endpoint (admin-only or agent-only).",
    404: "The named object does not exist (ids outside 1..2^31-1 name nothing).",
    409: "The request conflicts with stored data (e.g. a name or testbed id in use with other data).",
    413: "The body is over the server's size limit.",
    422: "The request does not fit the API: invalid body, query or path parameter.",
    429: "The submission budget is used up; details say which limit and when it resets.",
    503: "The database is busy or unavailable; retry after the Retry-After seconds.",
}
# Answers every route can give: no/bad token, invalid parameters, NUL in the URL, too large a body
# (checked before routing), and a busy database.
COMMON_ERRORS = (400, 401, 413, 422, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting the given error statuses with the error envelope."""
    return {
        status: {"model": ErrorEnvelope, "description": ERROR_DESCRIPTIONS[status]} for status in statuses
    }
