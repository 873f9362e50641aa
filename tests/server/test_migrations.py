"""Schema migrations match the models on SQLite and PostgreSQL; the audit log is append-only."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from aar.server.db import migrate
from aar.server.models import Base


def _check(url: str) -> None:
    migrate(url)
    migrate(url)  # idempotent
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (at, actor, method, path, status, outcome, client) "
                    "VALUES (1, 'a', 'GET', '/', 200, 'ok', 'x')"
                )
            )
        for stmt in ("UPDATE audit_log SET status = 500", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError), engine.begin() as conn:
                conn.execute(text(stmt))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_schema(tmp_path):
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_schema():
    import uuid

    import psycopg

    from .conftest import PG_ADMIN_URL, _pg_reachable

    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    name = f"aar_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _check(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
