"""The FastAPI application: ``create_app(settings)`` wires routers, errors, audit and the vault."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aar import __version__
from aar.server.artifacts import clean_uploads
from aar.server.audit import AuditMiddleware
from aar.server.config import Settings, settings_from_env
from aar.server.db import Database, migrate
from aar.server.errors import COMMON_ERRORS, ERROR_DESCRIPTIONS, ApiError, ErrorEnvelope
from aar.server.group_commit import GroupWriter
from aar.server.hotpath import ScoringApp, endpoint_app, error_json, error_response
from aar.server.vault import VaultCache, clean_registrations, vault_dir

log = logging.getLogger("aar.server")
# Set by `aar serve` before it forks uvicorn workers: the pid each worker must die with.
PARENT_PID_ENV = "AAR_SERVE_PARENT_PID"
SECURITY_SCHEME = "HTTPBearer"
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Always `Bearer`.", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


@dataclass
class AppContext:
    """What every request handler can reach."""

    settings: Settings
    db: Database
    vault: VaultCache
    writer: GroupWriter = field(init=False)  # group commit of submissions (one writer thread per process)

    def __post_init__(self) -> None:
        """The process's group-commit writer over the context's database."""
        self.writer = GroupWriter(self.db)


def _install_error_handlers(app: FastAPI) -> None:
    async def _answer(request: Request, exc: Exception) -> JSONResponse:
        answer = error_response(request, exc)
        if answer is None:  # registered only for the classes error_response answers
            raise exc
        return answer

    for cls in (ApiError, IntegrityError, OperationalError):
        app.add_exception_handler(cls, _answer)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()[:10]
        ]
        request.state.outcome = "invalid_request"
        return error_json(422, "invalid_request", "the request does not fit the API", {"errors": details})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        request.state.outcome = code
        return error_json(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, complete about what the server enforces (cached on the app).

    FastAPI knows neither the bearer auth (resolved by dependencies that read the header) nor the
    answers produced outside a route (401 and 503 from dependencies, 400 and 413 from the middleware),
    and documents 422 with its own schema. So every operation gets the HTTPBearer requirement and the
    answers any route can give (:data:`~aar.server.errors.COMMON_ERRORS`), and every error response
    (also those a route declares with :func:`~aar.server.errors.error_responses`) the error envelope.
    """
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(envelope.pop("$defs", {}))
    schemas["ErrorEnvelope"] = envelope
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An agent token (`aar_...`) or the admin token.",
        }
    }
    doc["security"] = [{SECURITY_SCHEME: []}]
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    for item in doc.get("paths", {}).values():
        for op in item.values():
            op["security"] = [{SECURITY_SCHEME: []}]
            responses = op.setdefault("responses", {})
            statuses = {int(k) for k in responses if k.isdigit() and int(k) >= 400} | set(COMMON_ERRORS)
            for status in sorted(statuses):
                entry: dict[str, Any] = {
                    "description": ERROR_DESCRIPTIONS.get(status, "Error."),
                    "content": error_content,
                }
                if status in _HEADERS:
                    entry["headers"] = _HEADERS[status]
                responses[str(status)] = entry
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings`` (migrating the database first when ``auto_migrate``)."""
    from aar.server.routers import admin, artifacts, audits, forum, leaderboard, meta, submissions, testbeds

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    vault_dir(settings.data_dir)
    removed = clean_uploads(settings.data_dir)
    if removed:
        log.warning("removed %d unfinished artifact uploads", removed)
    removed = clean_registrations(settings.data_dir)
    if removed:
        log.warning("removed %d unfinished testbed registrations from the vault", removed)
    if settings.auto_migrate:
        migrate(settings.database_url())
    db = Database(settings.database_url())
    app = ScoringApp(
        title="aar scoring server",
        version=__version__,
        description="Scores weak-to-strong predictions against held-out labels; forum, code store, "
        "leaderboard. Every request needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = AppContext(settings, db, VaultCache(db, settings.data_dir))
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    # submissions first: the hot path's route is matched before the others' (their paths never overlap)
    for module in (submissions, meta, admin, audits, testbeds, leaderboard, forum, artifacts):
        app.include_router(module.router)
    from aar.web.routes import mount as mount_dashboard

    mount_dashboard(app)  # the read-only web dashboard under /dashboard (same tokens, same rules)
    max_json, max_artifact = settings.max_json_bytes, settings.max_artifact_bytes
    app.add_middleware(AuditMiddleware, db=db, max_json=max_json, max_artifact=max_artifact)
    # the scoring route's requests skip FastAPI's layers: same endpoint, same audit middleware
    app.hot = AuditMiddleware(endpoint_app(submissions.submit), db, max_json, max_artifact)
    return app


def die_with_parent(parent_pid: int) -> None:
    """End this process (SIGTERM) when ``parent_pid``, the process that started it, dies.

    uvicorn's workers outlive a supervisor killed with SIGKILL: they keep the listening socket, so a
    restart fails with "Address already in use" while orphans keep answering. On Linux the kernel
    sends the signal (PR_SET_PDEATHSIG); elsewhere a daemon thread watches the parent pid. A parent
    that died before this call is noticed at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    else:  # pragma: no cover - non-Linux fallback

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: settings come from ``AAR_SERVER_*`` variables.

    Under ``aar serve --workers N`` each worker also arms :func:`die_with_parent`.
    """
    parent = os.environ.get(PARENT_PID_ENV, "")
    if parent.isdigit():
        die_with_parent(int(parent))
    return create_app(settings_from_env())
