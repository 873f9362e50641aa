"""Rendering helpers: the Jinja2 environment (autoescaped), page responses, the login redirect,
the error page and the static files shipped in the package."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aar.server.auth import Principal
from aar.server.errors import ApiError
from aar.web.security import PREFIX, LoginRequired, secure, viewer

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".txt": "text/plain"}
NAV = [
    ("leaderboard", "Leaderboard"),
    ("chart", "PGR vs agent-hours"),
    ("submissions", "Submissions"),
    ("forum", "Forum"),
    ("agents", "Agents"),
]


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) + " UTC"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _ci(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    return f"{e['mean']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def _ci_block(e: dict[str, Any] | None) -> Markup:
    """An estimate as two lines: the mean, then its interval in small type (numbers only)."""
    if not e:
        return Markup("-")
    return Markup(f"{e['mean']:.3f}<br><small>[{e['ci_low']:.3f}, {e['ci_high']:.3f}]</small>")


def _query(base: dict[str, Any], **changes: object) -> str:
    merged = {k: v for k, v in {**base, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


ENV = Environment(
    loader=PackageLoader("aar.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(ts=_ts, num=_num, ci=_ci, ci_block=_ci_block, short=lambda s: (s or "")[:12])
ENV.globals.update(P=PREFIX, NAV=NAV, query=_query)


def html(
    request: Request, template: str, who: Principal | None, status: int = 200, **data: object
) -> Response:
    """A rendered page with the dashboard's security headers."""
    body = ENV.get_template(template).render(who=who, now=time.time(), path=request.url.path, **data)
    return secure(HTMLResponse(body, status_code=status))


def login_redirect(request: Request, reason: str) -> Response:
    """Send the browser to the login form, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"{PREFIX}/login?next={quote(target, safe='')}&reason={quote(reason, safe='')}"
    return secure(RedirectResponse(url, status_code=303))


def error_page(request: Request, who: Principal | None, status: int, message: str) -> Response:
    """An HTML error page (404 for unknown objects, 503 for a missing vault, ...)."""
    return html(request, "error.html", who, status=status, title=f"Error {status}", message=message)


def page(request: Request, template: str, build: Callable[[Principal], dict[str, Any]]) -> Response:
    """The common page flow: log-in check, data (``build(who)``), render; errors as HTML pages."""
    try:
        who = viewer(request)
    except LoginRequired as e:
        return login_redirect(request, e.reason)
    try:
        data = build(who)
    except ApiError as e:
        return error_page(request, who, e.status, e.message)
    return html(request, template, who, **data)


def static_file(name: str) -> Response:
    """A file shipped in ``aar/web/static`` (only plain names of known types; cached for an hour)."""
    path = STATIC_DIR / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return secure(Response(path.read_bytes(), media_type=kind), cache="public, max-age=3600")
