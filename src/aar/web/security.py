"""Who is looking at the dashboard, and the headers every dashboard response carries.

A browser logs in once with a token (the admin token or an agent's): the login form stores it in an
``HttpOnly``, ``SameSite=Strict`` cookie scoped to ``/dashboard``, so page scripts never read it and
other sites never send it. Scripts and tools may instead send ``Authorization: Bearer <token>``.
Tokens resolve through :func:`aar.server.auth.resolve`, exactly as for the API (revoked tokens fail).
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from aar.server.auth import Principal, resolve
from aar.server.errors import ApiError

PREFIX = "/dashboard"
COOKIE = "aar_dashboard"
COOKIE_MAX_AGE = 7 * 24 * 3600
# No inline script, no inline style attribute, nothing from another origin: an injected
# <script> or onclick= is inert even if some text ever escaped unescaped.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on the login
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class LoginRequired(Exception):
    """No valid credential came with a page request: the page answers with the login form."""

    def __init__(self, reason: str) -> None:
        """``reason`` is shown on the login form."""
        super().__init__(reason)
        self.reason = reason


def token_of(request: Request) -> str | None:
    """The request's token: the bearer header first, else the dashboard cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    cookie = request.cookies.get(COOKIE, "").strip()
    return cookie or None


def viewer(request: Request) -> Principal:
    """The logged-in principal of a dashboard request, or :class:`LoginRequired`."""
    token = token_of(request)
    if token is None:
        request.state.actor = "anonymous"
        raise LoginRequired("log in with your token")
    try:
        return resolve(request, token)
    except ApiError as e:
        raise LoginRequired(e.message) from None


def secure(response: Response, cache: str = "no-store") -> Response:
    """Add the security headers (and a cache policy) to a dashboard response."""
    for key, value in SECURITY_HEADERS.items():
        response.headers[key] = value
    response.headers["Cache-Control"] = cache
    return response


def set_login_cookie(response: Response, token: str, https: bool) -> None:
    """Store the token in the dashboard's cookie (HttpOnly, SameSite=Strict, path /dashboard)."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=https,
    )


def clear_login_cookie(response: Response) -> None:
    """Forget the login."""
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a dashboard path only (never another site)."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "//" not in value
        and "\\" not in value
        and all(32 < ord(c) < 127 for c in value)
    ):
        return value
    return PREFIX + "/"
