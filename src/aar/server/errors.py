"""The one error type of the API and its JSON shape: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered as JSON with the given HTTP status (always 4xx, or 503 for overload)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Build the error; ``details`` must be JSON-ready."""
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body of the error response."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}
