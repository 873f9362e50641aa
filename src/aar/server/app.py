"""The FastAPI application: ``create_app(settings)`` wires routers, errors, audit and the vault."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aar import __version__
from aar.server.audit import AuditMiddleware
from aar.server.config import Settings, settings_from_env
from aar.server.db import Database, migrate
from aar.server.errors import ApiError
from aar.server.vault import VaultCache, vault_dir

log = logging.getLogger("aar.server")


@dataclass
class AppContext:
    """What every request handler can reach."""

    settings: Settings
    db: Database
    vault: VaultCache


def _error(
    status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        request.state.outcome = exc.code
        return _error(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()[:10]
        ]
        request.state.outcome = "invalid_request"
        return _error(422, "invalid_request", "the request does not fit the API", {"errors": details})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        request.state.outcome = code
        return _error(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        request.state.outcome = "conflict"
        return _error(409, "conflict", "the request conflicts with stored data")

    @app.exception_handler(OperationalError)
    async def _db_busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        request.state.outcome = "database_unavailable"
        return _error(
            503, "database_unavailable", "the database is busy; retry", headers={"Retry-After": "1"}
        )


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings`` (migrating the database first when ``auto_migrate``)."""
    from aar.server.routers import admin, artifacts, forum, leaderboard, meta, submissions, testbeds

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    vault_dir(settings.data_dir)
    if settings.auto_migrate:
        migrate(settings.database_url())
    db = Database(settings.database_url())
    app = FastAPI(
        title="aar scoring server",
        version=__version__,
        description="Scores weak-to-strong predictions against held-out labels; forum, code store, "
        "leaderboard. Every request needs `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = AppContext(settings, db, VaultCache(db, settings.data_dir))
    _install_error_handlers(app)
    for module in (meta, admin, testbeds, submissions, leaderboard, forum, artifacts):
        app.include_router(module.router)
    app.add_middleware(
        AuditMiddleware, db=db, max_json=settings.max_json_bytes, max_artifact=settings.max_artifact_bytes
    )
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: settings come from ``AAR_SERVER_*`` variables."""
    return create_app(settings_from_env())
