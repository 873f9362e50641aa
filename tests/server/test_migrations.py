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
        _audits_append_only(engine)
    finally:
        engine.dispose()


def _audits_append_only(engine) -> None:
    """Audit verdicts (migration 0002) are append-only too; new columns have their defaults."""
    rows = [
        "INSERT INTO agents (id, name, token_sha256, created_at, n_submissions) VALUES (1, 'a', 't', 0, 0)",
        "INSERT INTO testbeds (id, description, n_test, n_public, n_private, bundle_sha256, "
        "weak_public, weak_private, ceiling_public, ceiling_private, created_at) "
        "VALUES ('tb', '', 2, 1, 1, 's', 0.5, 0.5, 0.9, 0.9, 0)",
        "INSERT INTO artifacts (sha256, size, name, kind, created_at) VALUES ('h', 1, 'n', 'code', 0)",
        "INSERT INTO submissions (id, agent_id, testbed_id, artifact_sha256, method, description, "
        "created_at, predictions, public_acc, private_acc, public_pgr, private_pgr, released_acc, "
        "released_pgr, improved) VALUES (1, 1, 'tb', 'h', 'm', '', 0, :blob, 0.5, 0.5, 0, 0, 0.5, 0, :t)",
        "INSERT INTO audits (submission_id, verdict, reasons, figures, checks, created_at) "
        "VALUES (1, 'ok', '[]', '{}', '{}', 0)",
    ]
    with engine.begin() as conn:
        for stmt in rows:
            conn.execute(text(stmt), {"blob": b"\0" * 16, "t": True} if ":blob" in stmt else {})
    with engine.connect() as conn:
        flags = conn.execute(text("SELECT flags FROM submissions")).scalar()
        assert flags in ("[]", [])
        n_final, teacher_on_test = conn.execute(text("SELECT n_final, teacher_on_test FROM testbeds")).one()
        assert n_final == 0 and not teacher_on_test
    for stmt in ("UPDATE audits SET verdict = 'disqualified'", "DELETE FROM audits"):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(stmt))


def test_sqlite_schema(tmp_path):
    _check(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_schema():
    from .conftest import throwaway_pg_database

    with throwaway_pg_database() as url:
        _check(url)
