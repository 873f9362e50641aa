"""Fixtures: the real app served by uvicorn over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from aar.client import Client
from aar.server.config import Settings

from .helpers import ADMIN_TOKEN, ServerThread, make_bundle, unique

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as e:  # any failure means: skip with the reason
        return f"PostgreSQL at 127.0.0.1:5432 unreachable: {e}"


@contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards (skips the test when PostgreSQL is
    unreachable)."""
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"aar_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test run, dropped afterwards."""
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_db_url(request) -> Iterator[str | None]:
    """None (the server's own SQLite file) or a PostgreSQL database made for this test alone."""
    if request.param == "sqlite":
        yield None
        return
    with throwaway_pg_database() as url:
        yield url


@dataclass
class Harness:
    """A running server plus helpers to make agents, testbeds and artifacts."""

    srv: ServerThread
    admin: Client

    def agent(
        self, budget_per_hour: int | None = None, budget_total: int | None = None
    ) -> tuple[Client, str]:
        name = unique("agent")
        created = self.admin.create_agent(name, budget_per_hour, budget_total)
        return self.srv.client(created.token), name

    def testbed(self, n: int = 200, seed: int | None = None):
        bundle = make_bundle(n=n, seed=seed if seed is not None else uuid.uuid4().int % 10_000)
        self.admin.register_testbed(bundle)
        return bundle

    @staticmethod
    def code(client: Client, text: str = "def method(): ...") -> str:
        info = client.upload_artifact(text.encode(), name="method.py")
        assert info.sha256 == hashlib.sha256(text.encode()).hexdigest()
        return info.sha256


def settings_for(data_dir: Path, db_url: str | None, **kw) -> Settings:
    """Test settings: generous budgets unless a test sets its own, small body limits."""
    values = {
        "budget_per_hour": 10_000,
        "budget_total": 100_000,
        "max_json_bytes": 1_000_000,
        "max_artifact_bytes": 64_000,
    }
    values.update(kw)
    return Settings(data_dir=data_dir, db_url=db_url, admin_token=ADMIN_TOKEN, **values)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request) -> str:
    """Database backend of the module's server."""
    return request.param


@pytest.fixture(scope="module")
def harness(backend, tmp_path_factory, request) -> Iterator[Harness]:
    """The real app on 127.0.0.1 (a free port), on SQLite or on the run's PostgreSQL database."""
    data_dir = tmp_path_factory.mktemp("server")
    db_url = request.getfixturevalue("pg_database") if backend == "postgres" else None
    srv = ServerThread(settings_for(data_dir, db_url)).start()
    admin = srv.client()
    yield Harness(srv, admin)
    admin.close()
    srv.stop()
